package health

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
)

// pingDB is a database check over a pool it does not own.
func pingDB(db Pinger) Func {
	return func(ctx context.Context) error {
		if err := db.PingContext(ctx); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		return nil
	}
}

// databaseCheck checks a database from its URL through package database: a one-connection
// pool, opened on the first run (so a database that is down when the service starts fails the
// check, not the start), kept between runs so a run costs a round trip, not a handshake; each
// run asks the database a query (SELECT 1) within the check's timeout.
type databaseCheck struct {
	cfg config.Database
	mu  sync.Mutex
	db  *database.DB
}

// newDatabaseCheck validates dsn now, so a URL no check can use is a startup error.
func newDatabaseCheck(dsn string, interval, timeout time.Duration) (*databaseCheck, error) {
	d, err := database.DialectOf(dsn)
	if err != nil {
		return nil, err
	}
	if d == database.MongoDB {
		return nil, errors.New("a MongoDB is checked through its client: pass the *mongo.Client of github.com/shoal-sh/shoal/database/mongo with health.WithDB(name, client)")
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &databaseCheck{cfg: config.Database{
		URL: dsn, MaxConnections: 1, ConnectTimeout: config.Duration(timeout), AcquireTimeout: config.Duration(timeout),
		// Closed after two idle intervals, so a check that was disabled does not hold it.
		IdleTimeout: config.Duration(max(2*interval, time.Minute)), MaxLifetime: config.Duration(30 * time.Minute),
	}}, nil
}

func (c *databaseCheck) run(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		db, err := database.Open(ctx, c.cfg, database.WithManualReplicaChecks())
		if err != nil {
			return err
		}
		c.db = db
	}
	var one int
	if err := c.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("database %s: SELECT 1: %w", c.db.Name(), err)
	}
	return nil
}

func (c *databaseCheck) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		return nil
	}
	err := c.db.Close()
	c.db = nil
	return err
}
