package database

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names; docs/observability.md lists them. Every series has the labels database (the
// dialect) and pool ("primary", "primary-read" for SQLite's read pool, "primary-pgx" for the
// native pgx pool, "replica 1", …).
const (
	metricOpen            = "shoal_db_pool_open_connections"
	metricInUse           = "shoal_db_pool_in_use_connections"
	metricIdle            = "shoal_db_pool_idle_connections"
	metricMax             = "shoal_db_pool_max_connections"
	metricWaits           = "shoal_db_pool_waits_total"
	metricWaitSeconds     = "shoal_db_pool_wait_seconds_total"
	metricAcquire         = "shoal_db_pool_acquire_seconds"
	metricAcquireTimeouts = "shoal_db_pool_acquire_timeouts_total"
	metricReads           = "shoal_db_reads_total"
	metricReplicaUp       = "shoal_db_replica_up"
	metricReplicaLag      = "shoal_db_replica_lag_seconds"
	metricTxRetries       = "shoal_db_tx_retries_total"
)

var (
	descOpen            = prometheus.NewDesc(metricOpen, "Connections open in the pool, in use or idle.", []string{"database", "pool"}, nil)
	descInUse           = prometheus.NewDesc(metricInUse, "Connections of the pool in use.", []string{"database", "pool"}, nil)
	descIdle            = prometheus.NewDesc(metricIdle, "Idle connections of the pool.", []string{"database", "pool"}, nil)
	descMax             = prometheus.NewDesc(metricMax, "Most connections the pool opens (max_connections).", []string{"database", "pool"}, nil)
	descWaits           = prometheus.NewDesc(metricWaits, "Times a caller had to wait for a connection because the pool was busy.", []string{"database", "pool"}, nil)
	descWaitSeconds     = prometheus.NewDesc(metricWaitSeconds, "Total time callers waited for a connection.", []string{"database", "pool"}, nil)
	descAcquireTimeouts = prometheus.NewDesc(metricAcquireTimeouts, "Callers that gave up after acquire_timeout without a connection.", []string{"database", "pool"}, nil)
	descReads           = prometheus.NewDesc(metricReads, "Reads routed to the pool by DB's query methods.", []string{"database", "pool"}, nil)
	descReplicaUp       = prometheus.NewDesc(metricReplicaUp, "1 when the replica passed its latest check and lags less than replica_max_lag, else 0.", []string{"database", "pool"}, nil)
	descReplicaLag      = prometheus.NewDesc(metricReplicaLag, "Replication lag measured on the replica at its latest check (PostgreSQL).", []string{"database", "pool"}, nil)
	descTxRetries       = prometheus.NewDesc(metricTxRetries, "Transactions run again by WithTx after a conflict (serialization failure, deadlock, SQLITE_BUSY).", []string{"database"}, nil)
)

// metrics are a DB's own counters; pool gauges are read from the pools at scrape time.
type metrics struct {
	dialect   string
	acquire   *prometheus.HistogramVec
	txRetries atomic.Uint64

	mu    sync.Mutex
	pools map[string]*poolMetrics
}

type poolMetrics struct {
	acquireTimeouts atomic.Uint64
	reads           atomic.Uint64
	hist            prometheus.Observer
}

func newMetrics(d Dialect) *metrics {
	return &metrics{
		dialect: string(d),
		acquire: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: metricAcquire,
			Help: "Time from asking for a connection to getting one, for calls through DB's methods and the pgx pool.",
			// 10µs … ~10s: a free connection is handed over in microseconds, a full pool makes
			// callers wait up to acquire_timeout.
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 11),
		}, []string{"database", "pool"}),
		pools: map[string]*poolMetrics{},
	}
}

func (m *metrics) pool(label string) *poolMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.pools[label]; ok {
		return p
	}
	p := &poolMetrics{hist: m.acquire.WithLabelValues(m.dialect, label)}
	m.pools[label] = p
	return p
}

func (p *poolMetrics) observeAcquire(d time.Duration) { p.hist.Observe(d.Seconds()) }

// Collector returns the Prometheus collector of the DB's pools, replicas and transactions.
// Register it once: prometheus.MustRegister(db.Collector()).
func (db *DB) Collector() prometheus.Collector { return collector{db} }

type collector struct{ db *DB }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOpen, descInUse, descIdle, descMax, descWaits, descWaitSeconds,
		descAcquireTimeouts, descReads, descReplicaUp, descReplicaLag, descTxRetries} {
		ch <- d
	}
	c.db.metrics.acquire.Describe(ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	db := c.db
	dl := string(db.dialect)
	gauge := func(d *prometheus.Desc, v float64, pool string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, dl, pool)
	}
	counter := func(d *prometheus.Desc, v float64, pool string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, dl, pool)
	}
	for _, st := range db.Stats().Pools {
		gauge(descOpen, float64(st.Open), st.Pool)
		gauge(descInUse, float64(st.InUse), st.Pool)
		gauge(descIdle, float64(st.Idle), st.Pool)
		gauge(descMax, float64(st.Max), st.Pool)
		counter(descWaits, float64(st.WaitCount), st.Pool)
		counter(descWaitSeconds, st.WaitDuration.Seconds(), st.Pool)
		counter(descAcquireTimeouts, float64(st.AcquireTimeouts), st.Pool)
		counter(descReads, float64(st.Reads), st.Pool)
	}
	for _, r := range db.ReplicaStatus() {
		up := 0.0
		if r.Healthy {
			up = 1
		}
		gauge(descReplicaUp, up, r.Pool)
		gauge(descReplicaLag, r.Lag.Seconds(), r.Pool)
	}
	ch <- prometheus.MustNewConstMetric(descTxRetries, prometheus.CounterValue, float64(db.metrics.txRetries.Load()), dl)
	db.metrics.acquire.Collect(ch)
}
