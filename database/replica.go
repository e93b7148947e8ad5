package database

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// replicaState is what the checks and failed reads know of one replica.
type replicaState struct {
	healthy   atomic.Bool
	lag       atomic.Int64 // nanoseconds; -1 when not measured
	checkedAt atomic.Int64 // UnixNano
	mu        sync.Mutex
	lastErr   string
}

// ReplicaStatus describes one read replica as its latest check or failed read left it.
type ReplicaStatus struct {
	// Pool is the replica's label, "replica 1", … in the order of database.read_replicas.
	Pool string
	// Database is the replica's URL, password masked.
	Database string
	// Healthy is true when the replica answered its latest check; Routable when it is also
	// within replica_max_lag, so it gets reads.
	Healthy, Routable bool
	// Lag is the replication lag measured on the replica (PostgreSQL; 0 elsewhere).
	Lag time.Duration
	// Err is why the replica is unhealthy.
	Err string
	// CheckedAt is the time of the latest check.
	CheckedAt time.Time
}

// ReplicaStatus returns the state of every read replica, in configuration order.
func (db *DB) ReplicaStatus() []ReplicaStatus {
	out := make([]ReplicaStatus, 0, len(db.replicas))
	for _, e := range db.replicas {
		s := e.replica
		s.mu.Lock()
		msg := s.lastErr
		s.mu.Unlock()
		out = append(out, ReplicaStatus{Pool: e.label, Database: e.name, Healthy: s.healthy.Load(),
			Routable: db.routable(e), Lag: time.Duration(max(s.lag.Load(), 0)), Err: msg,
			CheckedAt: time.Unix(0, s.checkedAt.Load())})
	}
	return out
}

func (db *DB) routable(e *endpoint) bool {
	s := e.replica
	if !s.healthy.Load() {
		return false
	}
	maxLag := db.cfg.ReplicaMaxLag.D()
	return maxLag <= 0 || time.Duration(s.lag.Load()) <= maxLag
}

// route picks where a read goes: a routable replica (round robin), else the primary's read
// pool. The replica's endpoint is returned so a failed read can mark it down.
func (db *DB) route(ctx context.Context) (*endpoint, *sqlPool) {
	if len(db.replicas) == 0 || db.toPrimary(ctx) {
		return nil, db.primary.read
	}
	n := uint64(len(db.replicas))
	start := db.rr.Add(1)
	for i := range n {
		if e := db.replicas[(start+i)%n]; db.routable(e) {
			return e, e.read
		}
	}
	return nil, db.primary.read
}

func (db *DB) readPool(ctx context.Context) *sqlPool {
	_, p := db.route(ctx)
	return p
}

// failed handles a read on replica e that returned err: a connection error marks the replica
// down until its next check passes, and the read is tried again elsewhere (true).
func (db *DB) failed(ctx context.Context, e *endpoint, err error) bool {
	if ctx.Err() != nil || !isConnError(err) {
		return false
	}
	db.setHealth(e, false, -1, "a read failed: "+innermost(err))
	return true
}

func (db *DB) setHealth(e *endpoint, healthy bool, lag time.Duration, msg string) {
	s := e.replica
	was := s.healthy.Swap(healthy)
	if lag >= 0 {
		s.lag.Store(int64(lag))
	}
	s.checkedAt.Store(db.clock.Now().UnixNano())
	s.mu.Lock()
	prev := s.lastErr
	s.lastErr = msg
	s.mu.Unlock()
	switch {
	case was && !healthy:
		db.log.Warn("database: read replica is down; its reads go elsewhere", "replica", e.label, "database", e.name, "error", msg)
	case !was && healthy && prev != "":
		db.log.Info("database: read replica is back", "replica", e.label, "database", e.name)
	}
}

// startChecks checks every replica once now, then every replica_check_interval in the
// background (unless checks are manual).
func (db *DB) startChecks(ctx context.Context, manual bool) {
	db.CheckReplicas(ctx)
	if manual {
		return
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	db.stop = cancel
	db.checkers.Add(1)
	go func() {
		defer db.checkers.Done()
		tick, stop := db.clock.NewTicker(db.cfg.ReplicaCheckInterval.D())
		defer stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-tick:
				db.CheckReplicas(cctx)
			}
		}
	}()
}

// CheckReplicas checks every replica now, concurrently, each within connect_timeout: a ping,
// and on PostgreSQL its replication lag. It returns when all checks are done.
func (db *DB) CheckReplicas(ctx context.Context) {
	var wg sync.WaitGroup
	for _, e := range db.replicas {
		wg.Go(func() { db.checkReplica(ctx, e) })
	}
	wg.Wait()
}

// lagQuery measures replication lag on a PostgreSQL standby: 0 when it has replayed all it
// received, else the age of the last transaction it replayed. A server that is not in
// recovery (not a standby) reports 0.
const lagQuery = `SELECT CASE
  WHEN NOT pg_is_in_recovery() THEN 0
  WHEN pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
  ELSE COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0)::float8 END`

func (db *DB) checkReplica(ctx context.Context, e *endpoint) {
	ctx, cancel := context.WithTimeout(ctx, db.cfg.ConnectTimeout.D())
	defer cancel()
	if err := e.ping(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return // shutting down
		}
		db.setHealth(e, false, -1, err.Error())
		return
	}
	lag := time.Duration(0)
	if e.dialect == Postgres {
		var secs float64
		if err := e.read.db.QueryRowContext(ctx, lagQuery).Scan(&secs); err != nil {
			db.setHealth(e, false, -1, "measuring replication lag: "+err.Error())
			return
		}
		lag = time.Duration(secs * float64(time.Second))
	}
	db.setHealth(e, true, lag, "")
}
