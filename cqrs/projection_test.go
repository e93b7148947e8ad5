package cqrs_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/cqrs"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/eventstore/sqlstore"
)

var quiet = slog.New(slog.DiscardHandler)

// balances is the suite's projection: the balance and event count of each account.
func balances(failOn int64) cqrs.Projection {
	return cqrs.Projection{
		Name: "balances", Table: "balances",
		Filter: eventstore.Filter{StreamPrefixes: []string{"acc-"}, Types: []string{"Deposited"}},
		Setup: func(ctx context.Context, tx *sql.Tx, table string) error {
			_, err := tx.ExecContext(ctx, "CREATE TABLE "+table+" (account VARCHAR(100) PRIMARY KEY, balance BIGINT NOT NULL, events BIGINT NOT NULL)")
			return err
		},
		Apply: func(ctx context.Context, tx *sql.Tx, table string, e eventstore.RecordedEvent) error {
			var d struct{ Amount int64 }
			if err := json.Unmarshal(e.Data, &d); err != nil {
				return err
			}
			if d.Amount == failOn {
				return errors.New("the projection refuses 13")
			}
			q := "INSERT INTO " + table + ` (account, balance, events) VALUES ($1, $2, 1)
				ON CONFLICT (account) DO UPDATE SET balance = ` + table + `.balance + excluded.balance, events = ` + table + `.events + 1`
			_, err := tx.ExecContext(ctx, q, e.Stream, d.Amount)
			return err
		},
	}
}

func readModel(t testing.TB, db *database.DB) map[string][2]int64 {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "SELECT account, balance, events FROM balances")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][2]int64{}
	for rows.Next() {
		var a string
		var b, n int64
		if err := rows.Scan(&a, &b, &n); err != nil {
			t.Fatal(err)
		}
		out[a] = [2]int64{b, n}
	}
	return out
}

// fold is the read model computed from $all directly.
func fold(t testing.TB, s eventstore.Store) map[string][2]int64 {
	t.Helper()
	out := map[string][2]int64{}
	f := balances(-1).Filter
	next := eventstore.Position(1)
	for {
		sl, err := s.ReadAll(context.Background(), eventstore.ReadAllOptions{From: next, Filter: f, Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range sl.Events {
			var d struct{ Amount int64 }
			json.Unmarshal(e.Data, &d)
			v := out[e.Stream]
			out[e.Stream] = [2]int64{v[0] + d.Amount, v[1] + 1}
		}
		next = sl.Next
		if next > sl.Head {
			return out
		}
	}
}

func equalModels(a, b map[string][2]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func deposit(t testing.TB, s eventstore.Store, acc int, amount int64) {
	t.Helper()
	if _, err := s.Append(context.Background(), fmt.Sprintf("acc-%d", acc), eventstore.Any,
		eventstore.NewEvent("Deposited", map[string]int64{"Amount": amount})); err != nil {
		t.Fatal(err)
	}
}

func backends(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, databasetest.SQLiteURL(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, databasetest.PostgresURL(t)) })
}

func openStore(t testing.TB, url string, inline ...sqlstore.InlineProjection) (*database.DB, *sqlstore.Store) {
	t.Helper()
	cfg := databasetest.Config(url)
	// A projector's step holds a connection for its transaction and reads the store through
	// another; with Run, Rebuild, a writer and the LISTEN connection at once, 4 is too few.
	cfg.MaxConnections = 12
	db := databasetest.Open(t, cfg)
	s, err := sqlstore.New(context.Background(), db, sqlstore.Options{Inline: inline, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return db, s
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestProjectionRebuildWhileAppending: an async projection runs while writers append; a
// rebuild mid-way swaps in a fresh table; afterwards the read model equals a fresh fold of
// $all.
func TestProjectionRebuildWhileAppending(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		db, s := openStore(t, url)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pr, err := cqrs.NewProjector(ctx, db, s, balances(-1), cqrs.ProjectorOptions{BatchSize: 50, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 300 {
			deposit(t, s, i%7, int64(i))
			if i%3 == 0 {
				s.Append(ctx, "other-1", eventstore.Any, eventstore.NewEvent("Noise", nil))
			}
		}
		runDone := make(chan error, 1)
		go func() { runDone <- pr.Run(ctx) }()
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				if _, err := s.Append(ctx, fmt.Sprintf("acc-%d", i%11), eventstore.Any,
					eventstore.NewEvent("Deposited", map[string]int64{"Amount": int64(i%17) + 1})); err != nil {
					t.Errorf("append while rebuilding: %v", err)
					return
				}
			}
		}()
		var rebuilt eventstore.Position
		for range 2 {
			if rebuilt, err = pr.Rebuild(ctx); err != nil {
				t.Fatal(err)
			}
		}
		stop.Store(true)
		wg.Wait()
		head, _ := s.Head(ctx)
		waitFor(t, "the projection to catch up", func() bool {
			ps, err := cqrs.ListProjections(ctx, db)
			return err == nil && len(ps) == 1 && ps[0].Position == head
		})
		if got, want := readModel(t, db), fold(t, s); !equalModels(got, want) {
			t.Fatalf("read model after rebuilds differs from a fresh fold:\n got %v\nwant %v", got, want)
		}
		ps, _ := cqrs.ListProjections(ctx, db)
		if ps[0].Rebuilt.IsZero() || rebuilt == 0 {
			t.Errorf("projection info %+v, rebuilt at %d", ps[0], rebuilt)
		}
		cancel()
		if err := <-runDone; err != nil {
			t.Fatal(err)
		}
	})
}

// TestInlineProjection: the read model commits with the append; a failing projection rolls
// the append back.
func TestInlineProjection(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		var pr *cqrs.Projector
		db, s := openStore(t, url, func(ctx context.Context, tx *sql.Tx, evs []eventstore.RecordedEvent) error {
			return pr.ApplyTx(ctx, tx, evs)
		})
		// Events before the projection exists are caught up by the first inline append.
		_, plain := openStore(t, url)
		deposit(t, plain, 1, 5)
		var err error
		if pr, err = cqrs.NewProjector(ctx, db, s, balances(13), cqrs.ProjectorOptions{Logger: quiet}); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			deposit(t, s, i%3, 10)
			if got, want := readModel(t, db), fold(t, s); !equalModels(got, want) {
				t.Fatalf("after append %d: read model %v, fold %v", i, got, want)
			}
		}
		_, err = s.Append(ctx, "acc-9", eventstore.Any, eventstore.NewEvent("Deposited", map[string]int64{"Amount": 13}))
		if err == nil || !strings.Contains(err.Error(), "inline projection") || !strings.Contains(err.Error(), "refuses 13") {
			t.Fatalf("an append whose projection failed: %v", err)
		}
		if v, _, _ := s.StreamVersion(ctx, "acc-9"); v != 0 {
			t.Fatalf("the refused append left version %d", v)
		}
		if _, ok := readModel(t, db)["acc-9"]; ok {
			t.Fatal("the refused append reached the read model")
		}
		// Rebuilding an inline projection gives the same model.
		before := readModel(t, db)
		if _, err := pr.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		if got := readModel(t, db); !equalModels(got, before) {
			t.Fatalf("rebuilt %v, was %v", got, before)
		}
		deposit(t, s, 1, 1)
		if got, want := readModel(t, db), fold(t, s); !equalModels(got, want) {
			t.Fatalf("after the rebuild: %v, fold %v", got, want)
		}
	})
}

func TestProjectorBadInput(t *testing.T) {
	db, s := openStore(t, databasetest.SQLiteURL(t))
	p := balances(-1)
	p.Table = "bad name; DROP"
	if _, err := cqrs.NewProjector(context.Background(), db, s, p, cqrs.ProjectorOptions{}); err == nil {
		t.Error("a bad table name was accepted")
	}
	p = balances(-1)
	p.Apply = nil
	if _, err := cqrs.NewProjector(context.Background(), db, s, p, cqrs.ProjectorOptions{}); err == nil {
		t.Error("a projection without Apply was accepted")
	}
}

// TestRequestRebuild: a rebuild asked for from outside (the CLI) is done by the running
// projector.
func TestRequestRebuild(t *testing.T) {
	db, s := openStore(t, databasetest.SQLiteURL(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, err := cqrs.NewProjector(ctx, db, s, balances(-1), cqrs.ProjectorOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		deposit(t, s, i%2, 3)
	}
	go pr.Run(ctx)
	if err := cqrs.RequestRebuild(ctx, db, "nope"); err == nil || !strings.Contains(err.Error(), `known: [balances]`) {
		t.Fatalf("unknown projection: %v", err)
	}
	if err := cqrs.RequestRebuild(ctx, db, "balances"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rebuild", func() bool {
		ps, err := cqrs.ListProjections(ctx, db)
		return err == nil && len(ps) == 1 && !ps[0].Rebuilt.IsZero()
	})
	if got, want := readModel(t, db), fold(t, s); !equalModels(got, want) {
		t.Fatalf("rebuilt %v, fold %v", got, want)
	}
}
