package database_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
)

// The native pgx pool's waits are bounded by acquire_timeout too, through its acquire tracer.
func TestPool_AcquireTimeout(t *testing.T) {
	t.Parallel()
	cfg := databasetest.Config(databasetest.PostgresURL(t))
	cfg.MaxConnections = 2
	cfg.AcquireTimeout = config.Duration(200 * time.Millisecond)
	db := databasetest.Open(t, cfg)
	ctx := context.Background()
	var held []*pgxpool.Conn
	for range 2 {
		c, err := db.Pool().Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	if _, err := db.Pool().Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third acquire of a pool of 2: %v, want a deadline error", err)
	}
	err := db.WithPgxTx(ctx, pgx.TxOptions{}, func(pgx.Tx) error { return nil })
	var pe *database.PoolTimeoutError
	if !errors.As(err, &pe) || pe.Pool != "primary-pgx" {
		t.Fatalf("WithPgxTx on a full pool: %v", err)
	}
	var pgxStats database.PoolStats
	for _, p := range db.Stats().Pools {
		if p.Pool == "primary-pgx" {
			pgxStats = p
		}
	}
	if pgxStats.AcquireTimeouts != 2 || pgxStats.InUse != 2 {
		t.Errorf("pgx pool stats: %+v", pgxStats)
	}
	for _, c := range held {
		c.Release()
	}
	if err := db.WithPgxTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, "SELECT 1"); return err }); err != nil {
		t.Fatal(err)
	}
	// A caller's own, earlier deadline is the caller's: not counted as a pool timeout.
	short, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-short.Done()
	if _, err := db.Pool().Acquire(short); err == nil {
		t.Fatal("acquire with an expired context succeeded")
	}
}
