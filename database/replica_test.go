package database_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
)

// fakeClock is a clock the test moves by hand; its tickers never tick (checks are manual).
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
func (c *fakeClock) NewTicker(time.Duration) (<-chan time.Time, func()) { return nil, func() {} }

// servedByCtx returns the port of the server that answered a read made with ctx.
func servedByCtx(t *testing.T, db *database.DB, ctx context.Context) int {
	t.Helper()
	var port int
	if err := db.QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
		t.Fatalf("read: %v", err)
	}
	return port
}

// TestReplicas runs against a real streaming replica of a test-owned primary: reads land on
// the replica, writes on the primary, read-your-writes holds, a stopped replica fails no read
// and is used again once it is back, and a replica lagging past the bound gets no reads.
func TestReplicas(t *testing.T) {
	c := startPGCluster(t)
	c.exec(c.primaryURL(""), "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)")

	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := databasetest.Config(c.primaryURL(""))
	cfg.ReadReplicas = []string{c.replicaURL("")}
	cfg.ReplicaMaxLag = config.Duration(time.Second)
	cfg.ReadYourWrites = config.Duration(3 * time.Second)
	cfg.ConnectTimeout = config.Duration(3 * time.Second)
	reg := prometheus.NewPedanticRegistry()
	db := databasetest.Open(t, cfg, database.WithClock(clock), database.WithManualReplicaChecks())
	reg.MustRegister(db.Collector())
	ctx := context.Background()

	st := db.ReplicaStatus()
	if len(st) != 1 || !st[0].Healthy || !st[0].Routable || st[0].Pool != "replica 1" {
		t.Fatalf("replica after Open: %+v", st)
	}

	t.Run("reads go to the replica, writes to the primary", func(t *testing.T) {
		for range 5 {
			if p := servedByCtx(t, db, ctx); p != c.replicaPort {
				t.Fatalf("read served by port %d, want the replica's %d", p, c.replicaPort)
			}
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO kv VALUES ($1, $2)", "a", "1"); err != nil {
			t.Fatalf("write: %v", err)
		}
		var port int
		if err := db.QueryRowContext(ctx, "INSERT INTO kv VALUES ($1, $2) RETURNING inet_server_port()", "b", "2").Scan(&port); err != nil || port != c.primaryPort {
			t.Fatalf("INSERT … RETURNING on port %d (%v), want the primary's %d", port, err, c.primaryPort)
		}
		if p := servedByCtx(t, db, database.OnPrimary(ctx)); p != c.primaryPort {
			t.Errorf("OnPrimary read on port %d", p)
		}
		if err := db.WithTx(ctx, nil, func(tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&port)
		}); err != nil || port != c.primaryPort {
			t.Errorf("read in a transaction on port %d (%v), want the primary", port, err)
		}
	})

	t.Run("read your writes", func(t *testing.T) {
		sess := database.NewSession(ctx)
		if p := servedByCtx(t, db, sess); p != c.replicaPort {
			t.Fatalf("before a write: port %d", p)
		}
		if _, err := db.ExecContext(sess, "INSERT INTO kv VALUES ($1, $2)", "c", "3"); err != nil {
			t.Fatal(err)
		}
		if p := servedByCtx(t, db, sess); p != c.primaryPort {
			t.Fatalf("right after the session's write: port %d, want the primary", p)
		}
		if p := servedByCtx(t, db, ctx); p != c.replicaPort {
			t.Errorf("another request's read went to port %d, want the replica", p)
		}
		clock.Advance(2 * time.Second)
		if p := servedByCtx(t, db, sess); p != c.primaryPort {
			t.Errorf("2s after the write (window 3s): port %d", p)
		}
		clock.Advance(2 * time.Second)
		if p := servedByCtx(t, db, sess); p != c.replicaPort {
			t.Errorf("after the window: port %d, want the replica", p)
		}
	})

	t.Run("a stopped replica fails no read", func(t *testing.T) {
		c.stopReplica()
		for i := range 20 {
			if p := servedByCtx(t, db, ctx); p != c.primaryPort {
				t.Fatalf("read %d after the replica stopped: port %d", i, p)
			}
		}
		st := db.ReplicaStatus()[0]
		if st.Healthy || st.Err == "" {
			t.Errorf("replica status after a failed read: %+v", st)
		}
		if got := metricValue(t, reg, "shoal_db_replica_up", "replica 1"); got != 0 {
			t.Errorf("shoal_db_replica_up = %v", got)
		}
		db.CheckReplicas(ctx) // still down: stays down
		if db.ReplicaStatus()[0].Healthy {
			t.Fatal("a stopped replica passed its check")
		}
		c.startReplica()
		c.waitReady(c.replicaURL(""))
		db.CheckReplicas(ctx)
		if st := db.ReplicaStatus()[0]; !st.Healthy {
			t.Fatalf("replica back but not healthy: %+v", st)
		}
		if p := servedByCtx(t, db, ctx); p != c.replicaPort {
			t.Errorf("replica back, read on port %d", p)
		}
	})

	t.Run("lag above the bound routes to the primary", func(t *testing.T) {
		c.exec(c.replicaURL(""), "SELECT pg_wal_replay_pause()")
		c.exec(c.primaryURL(""), "INSERT INTO kv VALUES ('lag', 'x')")
		deadline := time.Now().Add(30 * time.Second)
		for {
			db.CheckReplicas(ctx)
			st := db.ReplicaStatus()[0]
			if st.Lag > time.Second {
				if st.Routable {
					t.Fatalf("lagging %s past the 1s bound but routable: %+v", st.Lag, st)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lag never passed 1s with replay paused: %+v", st)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if p := servedByCtx(t, db, ctx); p != c.primaryPort {
			t.Errorf("read with the replica lagging: port %d, want the primary", p)
		}
		if lag := metricValue(t, reg, "shoal_db_replica_lag_seconds", "replica 1"); lag <= 1 {
			t.Errorf("shoal_db_replica_lag_seconds = %v", lag)
		}
		c.exec(c.replicaURL(""), "SELECT pg_wal_replay_resume()")
		deadline = time.Now().Add(30 * time.Second)
		for db.CheckReplicas(ctx); !db.ReplicaStatus()[0].Routable; db.CheckReplicas(ctx) {
			if time.Now().After(deadline) {
				t.Fatalf("replica never caught up: %+v", db.ReplicaStatus()[0])
			}
			time.Sleep(50 * time.Millisecond)
		}
		if p := servedByCtx(t, db, ctx); p != c.replicaPort {
			t.Errorf("caught up, read on port %d", p)
		}
	})

	if n := metricValue(t, reg, "shoal_db_reads_total", "replica 1"); n == 0 {
		t.Error("shoal_db_reads_total of the replica is 0")
	}
}

// TestReplicas_RoundRobinAndFallback routes over two replica pools of independent databases
// — no replication needed to check the spreading and the fallback when none is healthy.
func TestReplicas_RoundRobinAndFallback(t *testing.T) {
	primary := databasetest.PostgresURL(t)
	cfg := databasetest.Config(primary)
	cfg.ReadReplicas = []string{primary + "&application_name=r1", primary + "&application_name=r2"}
	db := databasetest.Open(t, cfg, database.WithManualReplicaChecks())
	ctx := context.Background()
	seen := map[string]int{}
	for range 10 {
		var app string
		if err := db.QueryRowContext(ctx, "SELECT current_setting('application_name')").Scan(&app); err != nil {
			t.Fatal(err)
		}
		seen[app]++
	}
	if seen["r1"] != 5 || seen["r2"] != 5 {
		t.Errorf("round robin: %v", seen)
	}

	// Replicas that cannot be reached: Open still succeeds, reads fall back to the primary.
	cfg.ReadReplicas = []string{strings.Replace(primary, "127.0.0.1:5432", closedPort(t), 1)}
	cfg.ConnectTimeout = config.Duration(time.Second)
	db2 := databasetest.Open(t, cfg, database.WithManualReplicaChecks())
	if st := db2.ReplicaStatus()[0]; st.Healthy || !strings.Contains(st.Err, "cannot be reached") {
		t.Errorf("unreachable replica: %+v", st)
	}
	var one int
	if err := db2.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("read with no healthy replica: %v", err)
	}
	if st := db2.Stats(); st.Pools[0].Reads != 1 {
		t.Errorf("the read did not go to the primary: %+v", st.Pools)
	}

	// A replica of another kind is refused.
	cfg.ReadReplicas = []string{"mysql://root@127.0.0.1/test"}
	if _, err := database.Open(ctx, cfg); !errors.Is(err, database.ErrBadURL) {
		t.Errorf("mysql replica of postgres: %v", err)
	}
}

// metricValue gathers reg and returns the value of the series name{pool=pool}.
func metricValue(t *testing.T, reg *prometheus.Registry, name, pool string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "pool" && l.GetValue() == pool {
					switch {
					case m.Gauge != nil:
						return m.GetGauge().GetValue()
					case m.Counter != nil:
						return m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	t.Fatalf("no series %s{pool=%q}", name, pool)
	return 0
}
