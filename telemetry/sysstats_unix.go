//go:build unix

package telemetry

import (
	"syscall"
	"time"
)

// processCPUSeconds returns the user and system CPU time of the process.
func processCPUSeconds() (float64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	d := time.Duration(ru.Utime.Nano()) + time.Duration(ru.Stime.Nano())
	return d.Seconds(), true
}
