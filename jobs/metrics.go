package jobs

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stats counts what this client did, by kind. Outcomes are counted once the database has
// recorded them.
type stats struct {
	mu                                       sync.Mutex
	enq, start, completed, failed, discarded counter
	snoozed, cancelled, rescued, lost        counter
	runTime                                  *prometheus.HistogramVec
}

type counter struct{ byKind map[string]*atomic.Int64 }

func (s *stats) init() {
	for _, c := range []*counter{&s.enq, &s.start, &s.completed, &s.failed, &s.discarded, &s.snoozed, &s.cancelled, &s.rescued, &s.lost} {
		c.byKind = map[string]*atomic.Int64{}
	}
	s.runTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shoal_jobs_run_seconds",
		Help:    "How long one run of a job took, by kind.",
		Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 60, 300},
	}, []string{"kind"})
}

func (s *stats) add(c *counter, kind string) { s.addN(c, kind, 1) }

func (s *stats) addN(c *counter, kind string, n int64) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	v := c.byKind[kind]
	if v == nil {
		v = &atomic.Int64{}
		c.byKind[kind] = v
	}
	s.mu.Unlock()
	v.Add(n)
}

func (s *stats) enqueued(kind, _ string) { s.add(&s.enq, kind) }
func (s *stats) started(kind, _ string)  { s.add(&s.start, kind) }
func (s *stats) ran(kind string, d time.Duration) {
	s.runTime.WithLabelValues(kind).Observe(d.Seconds())
}
func (s *stats) rescuedN(n int64) { s.addN(&s.rescued, "", n) }

// completedBatch counts a recorded batch: n of its jobs still held their lease.
func (s *stats) completedBatch(batch []done, n int64) {
	if int(n) == len(batch) {
		by := map[string]int64{}
		for _, d := range batch {
			by[d.kind]++
		}
		for k, v := range by {
			s.addN(&s.completed, k, v)
		}
		return
	}
	// Some had lost their lease and the batch does not say which: count totals without a kind.
	s.addN(&s.completed, "", n)
	s.addN(&s.lost, "", int64(len(batch))-n)
}

func (c *counter) total() int64 {
	var t int64
	for _, v := range c.byKind {
		t += v.Load()
	}
	return t
}

// Stats are this client's totals since it was built.
type Stats struct {
	Enqueued, Started, Completed, Failed, Discarded, Snoozed, Cancelled, Rescued, Lost int64
}

// Stats returns this client's totals. Completed counts jobs whose success is recorded in the
// database; Lost counts runs whose outcome was not recorded because the job's lease had passed
// to another worker.
func (c *Client) Stats() Stats {
	s := &c.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Enqueued: s.enq.total(), Started: s.start.total(), Completed: s.completed.total(), Failed: s.failed.total(),
		Discarded: s.discarded.total(), Snoozed: s.snoozed.total(), Cancelled: s.cancelled.total(), Rescued: s.rescued.total(), Lost: s.lost.total()}
}

var (
	descEvents = prometheus.NewDesc("shoal_jobs_total", "Jobs by what happened to them in this process (enqueued, started, completed, failed, discarded, snoozed, cancelled, rescued, lost) and kind.", []string{"event", "kind"}, nil)
	descDepth  = prometheus.NewDesc("job_queue_depth", "Jobs available to run now, by queue: the backlog the autoscaler scales workers on.", []string{"queue"}, nil)
	descState  = prometheus.NewDesc("shoal_jobs_state", "Jobs in the database by queue and state.", []string{"queue", "state"}, nil)
	descAge    = prometheus.NewDesc("shoal_jobs_available_age_seconds", "How long the oldest available job of each queue has waited past its run time.", []string{"queue"}, nil)
)

// Collector returns the client's Prometheus metrics: event counters, the run time histogram and,
// read from the database at each scrape, job_queue_depth per queue, the jobs by state and the
// age of the oldest available job.
func (c *Client) Collector() prometheus.Collector { return collector{c} }

type collector struct{ c *Client }

func (m collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEvents
	ch <- descDepth
	ch <- descState
	ch <- descAge
	m.c.stats.runTime.Describe(ch)
}

func (m collector) Collect(ch chan<- prometheus.Metric) {
	s := &m.c.stats
	s.mu.Lock()
	for _, e := range []struct {
		name string
		c    *counter
	}{{"enqueued", &s.enq}, {"started", &s.start}, {"completed", &s.completed}, {"failed", &s.failed},
		{"discarded", &s.discarded}, {"snoozed", &s.snoozed}, {"cancelled", &s.cancelled}, {"rescued", &s.rescued}, {"lost", &s.lost}} {
		for k, v := range e.c.byKind {
			ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(v.Load()), e.name, k)
		}
	}
	s.mu.Unlock()
	s.runTime.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	depths, err := m.c.Depths(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descDepth, err)
		return
	}
	now := m.c.now()
	seen := map[string]bool{}
	for _, d := range depths {
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, float64(d.Count), d.Queue, string(d.State))
		if d.State == StateAvailable {
			seen[d.Queue] = true
			ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(d.Count), d.Queue)
			if d.OldestAvailable != nil {
				ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, now.Sub(*d.OldestAvailable).Seconds(), d.Queue)
			}
		}
	}
	for q := range m.c.cfg.Queues {
		if !seen[q] {
			ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, 0, q)
		}
	}
}
