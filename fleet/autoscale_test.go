package fleet

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
	"github.com/shoal-sh/shoal/proxy"
)

// TestFleet_AutoscalesOnCPU runs the real quickstart at 2 instances under a steady CPU load
// from /work?ms= (an open loop: the same work per second whatever the fleet's size), waits for
// proportional control to grow the fleet, stops the load, and waits for it to shrink back to 2
// once the (shortened) scale-down window has passed. Not one request may fail meanwhile, and
// every change must be an applied decision of the log.
func TestFleet_AutoscalesOnCPU(t *testing.T) {
	t.Parallel()
	src := `
name: qs
scaling:
  service_discovery:
    health_check: {endpoint: /health, interval: 1s, timeout: 1s}
  load_balancer:
    algorithm: least_connections
    health_check_interval: 1s
  instances:
    min_instances: 2
    max_instances: 8
    target_cpu_utilization: 10
    target_memory_utilization: 100
    scale_up_cooldown: 0s
    scale_down_cooldown: 4s
    startup: {initial_delay: 10s, readiness_probe: /ready, liveness_probe: /live}
    shutdown: {drain_timeout: 2s, graceful_timeout: 5s, force_timeout: 8s}
observability:
  auto_scaling:
    enabled: true
    interval: 1s
`
	cfg, err := config.Parse([]byte(src), "shoal.yml", config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, cfg, []string{quickstart}, func(o *Options) { o.Autoscale = true; o.SampleInterval = 200 * time.Millisecond })
	ctx := context.Background()
	if err := h.f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st := h.f.Status(ctx); !st.Autoscaling || !strings.HasPrefix(st.AutoscalingReason, "on:") {
		t.Fatalf("autoscaling should be on: %v %q", st.Autoscaling, st.AutoscalingReason)
	}

	// 40 requests a second of 20 ms of CPU each: 80% of one CPU in all, 40% on each of 2
	// instances against a target of 10%, so ⌈2 × 40/10⌉ = 8 are needed — fewer when the
	// machine is busy with other tests and the instances get less CPU than they ask for, which
	// is why the target is low: even a starved instance measures well above it.
	var sent, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		var inflight sync.WaitGroup
		defer inflight.Wait()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				sent.Add(1)
				resp, err := client.Get(h.url + "/work?ms=20")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, err.Error())
				}
			}()
		}
	}()
	peak := 0
	defer func() {
		if t.Failed() {
			for _, d := range h.f.Decisions(ctx, time.Hour, 0).Decisions {
				t.Logf("%s %s %+v", d.Time.Format("15:04:05.000"), d.Reason, d.Metrics)
			}
		}
	}()
	waitFor(t, "the autoscaler to grow the fleet beyond 2", func() bool {
		peak = max(peak, h.f.Status(ctx).Desired)
		return readyCount(h) > 2
	})
	// Let it settle on the count the load needs, then stop the load.
	time.Sleep(3 * time.Second)
	peak = max(peak, h.f.Status(ctx).Desired)
	close(stop)
	wg.Wait()
	waitFor(t, "the autoscaler to shrink the fleet back to 2", func() bool {
		if h.f.Status(ctx).Desired != 2 || readyCount(h) != 2 {
			return false
		}
		ds := h.f.Decisions(ctx, time.Hour, 0).Decisions
		for i := len(ds) - 1; i >= 0; i-- {
			if ds[i].Change != autoscale.ChangeNone {
				return ds[i].Applied // the scale-down has returned: its instances drained
			}
		}
		return false
	})

	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed while the fleet scaled; the first: %v", n, sent.Load(), firstFailure.Load())
	}
	t.Logf("%d requests, peak %d instances", sent.Load(), peak)

	rep := h.f.Decisions(ctx, time.Hour, 0)
	applied := map[[2]int]int{}
	none := 0
	for _, d := range rep.Decisions {
		switch {
		case d.Change == autoscale.ChangeNone:
			none++
		case d.Applied:
			applied[[2]int{d.Current, d.Desired}]++
			if d.Change == autoscale.ChangeUp && !strings.Contains(d.Winner, config.MetricCPUUtilization) {
				t.Errorf("a scale-up not made by the CPU target: %+v", d)
			}
		}
	}
	if none == 0 {
		t.Errorf("no 'no change' decision logged among %d", len(rep.Decisions))
	}
	ups, downs := 0, 0
	for _, e := range h.f.Status(ctx).Events {
		if !strings.HasPrefix(e.Kind, "autoscale") {
			continue
		}
		if e.Kind == "autoscale_up" {
			ups++
		} else {
			downs++
		}
		if applied[[2]int{e.From, e.To}] == 0 {
			t.Errorf("event %+v has no applied decision in the log", e)
		}
	}
	if ups == 0 || downs == 0 {
		t.Errorf("%d autoscale-ups and %d downs, want at least one of each", ups, downs)
	}
	if st := h.f.Status(ctx); len(st.Decisions) == 0 || len(st.Decisions) > 5 || !st.Decisions[0].Time.After(st.Decisions[len(st.Decisions)-1].Time) && len(st.Decisions) > 1 {
		t.Errorf("status carries the latest decisions, newest first: %d", len(st.Decisions))
	}
}

func TestFleet_AutoscalingOnlyWhenEnabled(t *testing.T) {
	t.Parallel()
	cases := []struct {
		yaml      string
		autoscale bool
		want      string
	}{
		{"observability: {auto_scaling: {enabled: false}}", true, "off: observability.auto_scaling.enabled is false"},
		{"scaling: {enabled: false}\nobservability: {auto_scaling: {enabled: true}}", true, "off: scaling.enabled is false"},
		{"observability: {auto_scaling: {enabled: true, target: kubernetes}}", true, "off here: observability.auto_scaling.target is kubernetes, so `shoal autoscale` scales the Deployment"},
		{"observability: {auto_scaling: {enabled: true}}", false, "off: this fleet was started without autoscaling"},
		{"observability: {auto_scaling: {enabled: true}}", true, "on: every 30s, 1–10 instances, targets cpu 70%, memory 80%, 0 threshold rules"},
	}
	for _, c := range cases {
		cfg, err := config.Parse([]byte("name: qs\n"+c.yaml+"\n"), "shoal.yml", config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
		if err != nil {
			t.Fatal(err)
		}
		f, err := New(cfg, Options{Command: []string{quickstart}, Proxy: &proxy.Proxy{}, Instances: discovery.NewSet(),
			History: newMemHistory(), Autoscale: c.autoscale})
		if err != nil {
			t.Fatal(err)
		}
		on, why := f.autoscaleState()
		if why != c.want || on != strings.HasPrefix(c.want, "on:") {
			t.Errorf("%s: %v %q, want %q", c.yaml, on, why, c.want)
		}
		if r := f.Decisions(context.Background(), time.Hour, 0); r.Reason != c.want || len(r.Decisions) != 0 {
			t.Errorf("%s: decisions %+v", c.yaml, r)
		}
	}
}

// TestFleet_ObserveMetricSources: the fleet hands the autoscaler what its MetricSources supply
// (job_queue_depth from package jobs), and for a metric a rule names that nothing here measures,
// says why in the decision instead of a bare "no samples".
func TestFleet_ObserveMetricSources(t *testing.T) {
	t.Parallel()
	src := `
name: workers
observability:
  auto_scaling:
    enabled: true
    metrics:
      - {metric: job_queue_depth, target: 50}
      - {metric: request_queue_depth, threshold: 100, action: scale_up}
`
	cfg, err := config.Parse([]byte(src), "shoal.yml", config.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	depth := autoscale.Gauge(config.MetricJobQueueDepth, func(context.Context) (float64, error) { return 250, nil })
	for _, sources := range [][]autoscale.MetricSource{{depth}, nil} {
		f := start(t, cfg, []string{quickstart}, func(o *Options) { o.Autoscale, o.MetricSources = true, sources }).f
		f.inputs, f.autoscaler = newAutoscaleInputs(0), autoscale.New(autoscale.SettingsFrom(cfg)) // as Start makes them
		in, err := fleetSource{f}.Observe(context.Background(), time.Now(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(in.Unavailable[config.MetricRequestQueueDepth], "proxy does not queue") {
			t.Errorf("request_queue_depth: %q", in.Unavailable[config.MetricRequestQueueDepth])
		}
		if sources != nil {
			if in.Values[config.MetricJobQueueDepth] != 250 {
				t.Errorf("job_queue_depth from the source: %v", in.Values)
			}
		} else if why := in.Unavailable[config.MetricJobQueueDepth]; !strings.Contains(why, "nothing supplies job_queue_depth") {
			t.Errorf("job_queue_depth without a source: %q", why)
		}
	}
}
