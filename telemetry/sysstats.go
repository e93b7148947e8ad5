package telemetry

import (
	"math"
	"runtime"
	"sync"
	"time"
)

// cpuSampler turns the process's CPU time into a utilization between two reads.
type cpuSampler struct {
	mu      sync.Mutex
	lastT   time.Time
	lastCPU float64
	value   float64
}

func newCPUSampler() *cpuSampler {
	s := &cpuSampler{value: math.NaN()}
	if cpu, ok := processCPUSeconds(); ok {
		s.lastT, s.lastCPU = time.Now(), cpu
	}
	return s
}

// utilization returns the CPU used since the previous call over the CPU available
// (GOMAXPROCS, which follows the cgroup CPU limit), 0-1. Calls less than a second apart return
// the previous value, so a burst of scrapes does not measure noise.
func (s *cpuSampler) utilization() float64 {
	cpu, ok := processCPUSeconds()
	if !ok {
		return math.NaN()
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	elapsed := now.Sub(s.lastT).Seconds()
	if s.lastT.IsZero() {
		s.lastT, s.lastCPU = now, cpu
		return s.value
	}
	if elapsed < 1 && !math.IsNaN(s.value) {
		return s.value
	}
	if elapsed > 0 {
		s.value = min(1, max(0, (cpu-s.lastCPU)/elapsed/float64(runtime.GOMAXPROCS(0))))
	}
	s.lastT, s.lastCPU = now, cpu
	return s.value
}

// memoryUtilization returns resident memory over the memory limit, or NaN when either is unknown.
func memoryUtilization() float64 {
	rss, ok := residentBytes()
	if !ok {
		return math.NaN()
	}
	limit, ok := memoryLimitBytes()
	if !ok || limit <= 0 {
		return math.NaN()
	}
	return float64(rss) / float64(limit)
}
