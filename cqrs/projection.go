package cqrs

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/eventstore"
)

//go:embed migrations
var migrations embed.FS

// Projection folds events into a read model: SQL tables in a database of package database
// (the event store's, or another).
type Projection struct {
	// Name identifies the projection and its checkpoint.
	Name string
	// Table is the read model's main table. A rebuild builds a fresh one and swaps it in
	// under this name.
	Table string
	// Filter selects the events Apply gets.
	Filter eventstore.Filter
	// Setup creates the read model's table named table (Table, or a fresh one for a
	// rebuild), in tx.
	Setup func(ctx context.Context, tx *sql.Tx, table string) error
	// Apply folds one event into the read model table, in tx. It runs exactly once per
	// event: the checkpoint moves in the same transaction.
	Apply func(ctx context.Context, tx *sql.Tx, table string, e eventstore.RecordedEvent) error
}

var plainName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// ProjectorOptions configure a Projector.
type ProjectorOptions struct {
	// BatchSize is how many events one transaction applies. Defaults to 500.
	BatchSize int
	// Registerer receives shoal_projection_lag_events and shoal_projection_position.
	Registerer prometheus.Registerer
	// Logger receives errors of Run. Defaults to slog.Default().
	Logger *slog.Logger
	// Backoff is the wait after a failed step in Run. Defaults to 500ms.
	Backoff time.Duration
}

// Projector runs a projection: asynchronously (Run, from its checkpoint in the read model's
// database, at least once delivered and exactly once applied, idempotent by position) or
// inline ([Projector.ApplyTx] from an append's transaction), and rebuilds it.
type Projector struct {
	db    *database.DB
	store eventstore.Store
	p     Projection
	opts  ProjectorOptions
	lag   prometheus.Gauge
	pos   prometheus.Gauge
}

// NewProjector migrates the projections table in db, creates the projection's checkpoint
// and table on first use, and returns its projector. store is where the events are read.
func NewProjector(ctx context.Context, db *database.DB, store eventstore.Store, p Projection, opts ProjectorOptions) (*Projector, error) {
	switch {
	case db == nil || store == nil:
		return nil, errors.New("cqrs: a projector needs a database and an event store")
	case eventstore.ValidateName("projection", p.Name) != nil:
		return nil, fmt.Errorf("cqrs: projection name %q must be 1 to 200 bytes", p.Name)
	case !plainName.MatchString(p.Table):
		return nil, fmt.Errorf("cqrs: projection %s: table %q is not a plain SQL name; use letters, digits and '_' (at most 63)", p.Name, p.Table)
	case p.Setup == nil || p.Apply == nil:
		return nil, fmt.Errorf("cqrs: projection %s needs Setup and Apply", p.Name)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 500 * time.Millisecond
	}
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shoal_projection_lag_events",
		Help: "Events appended after the last one a projection applied, at its last step."}, []string{"projection"})
	pos := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shoal_projection_position",
		Help: "The global position a projection has applied up to."}, []string{"projection"})
	if opts.Registerer != nil {
		lag = eventstore.RegisterOrExisting(opts.Registerer, lag)
		pos = eventstore.RegisterOrExisting(opts.Registerer, pos)
	}
	if err := MigrateProjections(ctx, db); err != nil {
		return nil, err
	}
	pr := &Projector{db: db, store: store, p: p, opts: opts, lag: lag.WithLabelValues(p.Name), pos: pos.WithLabelValues(p.Name)}
	err := db.WithTx(ctx, nil, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.Rebind("INSERT INTO shoal_projections (name, position, tbl) VALUES ($1, 0, $2) ON CONFLICT (name) DO NOTHING"), p.Name, p.Table)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return p.Setup(ctx, tx, p.Table)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cqrs: projection %s: setting up: %w", p.Name, err)
	}
	return pr, nil
}

// MigrateProjections creates the projections table (version table shoal_projections_migrations).
func MigrateProjections(ctx context.Context, db *database.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	if err := database.Migrate(ctx, db, sub, database.WithTable("shoal_projections_migrations")); err != nil {
		return fmt.Errorf("cqrs: migrating the projections table: %w", err)
	}
	return nil
}

// lock reads the projection's checkpoint in tx, locking it until tx ends.
func (pr *Projector) lock(ctx context.Context, tx *sql.Tx) (eventstore.Position, error) {
	q := "SELECT position FROM shoal_projections WHERE name = $1"
	if pr.db.Dialect() != database.SQLite {
		q += " FOR UPDATE"
	}
	var p int64
	if err := tx.QueryRowContext(ctx, pr.db.Rebind(q), pr.p.Name).Scan(&p); err != nil {
		return 0, fmt.Errorf("reading the checkpoint of projection %s: %w", pr.p.Name, err)
	}
	return eventstore.Position(p), nil
}

func (pr *Projector) setPos(ctx context.Context, tx *sql.Tx, p eventstore.Position) error {
	_, err := tx.ExecContext(ctx, pr.db.Rebind("UPDATE shoal_projections SET position = $1 WHERE name = $2"), int64(p), pr.p.Name)
	return err
}

// catchUp applies, in tx, the selected events after from up to head into table, and returns
// the position reached. With all, it goes on until the head it reads is reached.
func (pr *Projector) catchUp(ctx context.Context, tx *sql.Tx, table string, from eventstore.Position, all bool) (eventstore.Position, eventstore.Position, error) {
	pos := from
	for {
		sl, err := pr.store.ReadAll(ctx, eventstore.ReadAllOptions{From: pos + 1, Limit: pr.opts.BatchSize, Filter: pr.p.Filter})
		if err != nil {
			return pos, 0, err
		}
		for _, e := range sl.Events {
			if err := pr.p.Apply(ctx, tx, table, e); err != nil {
				return pos, 0, fmt.Errorf("projection %s: applying event %d (%s of %s): %w", pr.p.Name, e.Position, e.Type, e.Stream, err)
			}
		}
		pos = max(pos, sl.Next-1)
		if !all || pos >= sl.Head {
			return pos, sl.Head, nil
		}
	}
}

// Step applies the next batch of events in one transaction with the checkpoint, and reports
// how far it got and whether it has caught up.
func (pr *Projector) Step(ctx context.Context) (pos eventstore.Position, caughtUp bool, err error) {
	var head eventstore.Position
	err = pr.db.WithTx(ctx, nil, func(tx *sql.Tx) error {
		from, err := pr.lock(ctx, tx)
		if err != nil {
			return err
		}
		if pos, head, err = pr.catchUp(ctx, tx, pr.p.Table, from, false); err != nil {
			return err
		}
		if pos == from {
			return nil
		}
		return pr.setPos(ctx, tx, pos)
	})
	if err != nil {
		return 0, false, err
	}
	pr.lag.Set(float64(max(head-pos, 0)))
	pr.pos.Set(float64(pos))
	return pos, pos >= head, nil
}

// Run applies events as they are appended until ctx ends. Each step holds a connection of
// db for its transaction while it reads the store (through another connection when the store
// is on db too): size the pool for it. Several instances may run the same
// projection: the checkpoint's row lock makes them take turns, and each event is applied once.
func (pr *Projector) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		pos, caughtUp, err := pr.Step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			pr.opts.Logger.Warn("projection step failed; retrying", "projection", pr.p.Name, "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(pr.opts.Backoff):
			}
			continue
		}
		if caughtUp {
			if pr.rebuildRequested(ctx) {
				if _, err := pr.Rebuild(ctx); err != nil && ctx.Err() == nil {
					pr.opts.Logger.Warn("projection rebuild asked for failed", "projection", pr.p.Name, "error", err)
				} else if err == nil {
					pr.opts.Logger.Info("projection rebuilt as asked", "projection", pr.p.Name)
				}
				continue
			}
			// Wake at least every second to see a rebuild request.
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			err := pr.store.WaitForAppend(wctx, pos)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				continue
			}
			if err != nil && ctx.Err() == nil {
				if errors.Is(err, eventstore.ErrClosed) {
					return err
				}
				pr.opts.Logger.Warn("projection cannot wait for appends", "projection", pr.p.Name, "error", err)
				select {
				case <-ctx.Done():
				case <-time.After(pr.opts.Backoff):
				}
			}
		}
	}
	return nil
}

// ApplyTx is the projection inline: it applies events in tx, the transaction that appended
// them, so the read model commits with the events (use it as a sqlstore.Options.Inline
// hook when the read model is in the event store's database). Events before them that the
// projection has not applied yet are applied first; events at or below its checkpoint are
// passed over.
func (pr *Projector) ApplyTx(ctx context.Context, tx *sql.Tx, events []eventstore.RecordedEvent) error {
	if len(events) == 0 {
		return nil
	}
	from, err := pr.lock(ctx, tx)
	if err != nil {
		return err
	}
	first := events[0].Position
	if from < first-1 {
		// Catch up on what came before, up to just below these events (not yet committed,
		// so not readable).
		for from < first-1 {
			sl, err := pr.store.ReadAll(ctx, eventstore.ReadAllOptions{From: from + 1, Limit: pr.opts.BatchSize, Filter: pr.p.Filter})
			if err != nil {
				return err
			}
			for _, e := range sl.Events {
				if e.Position >= first {
					break
				}
				if err := pr.p.Apply(ctx, tx, pr.p.Table, e); err != nil {
					return err
				}
			}
			from = min(max(from, sl.Next-1), first-1)
			if sl.Next > sl.Head {
				break
			}
		}
	}
	last := from
	for _, e := range events {
		if e.Position <= from {
			continue
		}
		if pr.p.Filter.Match(e.Stream, e.Type) {
			if err := pr.p.Apply(ctx, tx, pr.p.Table, e); err != nil {
				return fmt.Errorf("projection %s: applying event %d: %w", pr.p.Name, e.Position, err)
			}
		}
		last = e.Position
	}
	return pr.setPos(ctx, tx, last)
}

// Rebuild folds every event from the start into a fresh table while appends (and Run)
// continue, then, in one transaction holding the checkpoint's lock, applies the last events,
// drops the old table, renames the fresh one to Table and moves the checkpoint: readers see
// the old read model until the swap and the rebuilt one after it.
func (pr *Projector) Rebuild(ctx context.Context) (eventstore.Position, error) {
	tmp := fmt.Sprintf("%s_r%d", pr.p.Table, time.Now().UnixNano()%1e9)
	if len(tmp) > 63 {
		tmp = fmt.Sprintf("shoal_r%d", time.Now().UnixNano())
	}
	err := pr.db.WithTx(ctx, nil, func(tx *sql.Tx) error { return pr.p.Setup(ctx, tx, tmp) })
	if err != nil {
		return 0, fmt.Errorf("cqrs: rebuilding %s: creating %s: %w", pr.p.Name, tmp, err)
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = pr.db.ExecContext(dctx, "DROP TABLE IF EXISTS "+tmp)
	}
	// Bulk of the history, batch by batch, without the lock.
	var pos, head eventstore.Position
	for {
		err := pr.db.WithTx(ctx, nil, func(tx *sql.Tx) error {
			var err error
			pos, head, err = pr.catchUp(ctx, tx, tmp, pos, false)
			return err
		})
		if err != nil {
			drop()
			return 0, fmt.Errorf("cqrs: rebuilding %s: %w", pr.p.Name, err)
		}
		if pos >= head {
			break
		}
	}
	// The swap.
	err = pr.db.WithTx(ctx, nil, func(tx *sql.Tx) error {
		if _, err := pr.lock(ctx, tx); err != nil {
			return err
		}
		var err error
		if pos, _, err = pr.catchUp(ctx, tx, tmp, pos, true); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DROP TABLE "+pr.p.Table); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+tmp+" RENAME TO "+pr.p.Table); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, pr.db.Rebind("UPDATE shoal_projections SET position = $1, rebuilt_ns = $2 WHERE name = $3"),
			int64(pos), time.Now().UnixNano(), pr.p.Name)
		return err
	})
	if err != nil {
		drop()
		return 0, fmt.Errorf("cqrs: rebuilding %s: swapping in the rebuilt table: %w", pr.p.Name, err)
	}
	return pos, nil
}

// rebuildRequested reports whether a rebuild was asked for since the last one.
func (pr *Projector) rebuildRequested(ctx context.Context) bool {
	var asked, done int64
	err := pr.db.QueryRowContext(ctx, "SELECT rebuild_requested_ns, rebuilt_ns FROM shoal_projections WHERE name = $1", pr.p.Name).Scan(&asked, &done)
	return err == nil && asked > done
}

// RequestRebuild asks the running Projectors of projection name (in the read-model
// database db) to rebuild it; one of them does within about a second. It returns an error
// naming the known projections when name is not one of them.
func RequestRebuild(ctx context.Context, db *database.DB, name string) error {
	if err := MigrateProjections(ctx, db); err != nil {
		return err
	}
	res, err := db.ExecContext(ctx, "UPDATE shoal_projections SET rebuild_requested_ns = $1 WHERE name = $2", time.Now().UnixNano(), name)
	if err != nil {
		return fmt.Errorf("cqrs: asking for a rebuild of %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		ps, _ := ListProjections(ctx, db)
		var names []string
		for _, p := range ps {
			names = append(names, p.Name)
		}
		return fmt.Errorf("cqrs: no projection %q in this database (known: %v); a projection is known once a Projector for it has run", name, names)
	}
	return nil
}

// ProjectionInfo describes a projection's checkpoint.
type ProjectionInfo struct {
	Name     string
	Table    string
	Position eventstore.Position
	// Rebuilt is when it was last rebuilt (zero: never).
	Rebuilt time.Time
}

// ListProjections lists the projections of the read-model database db.
func ListProjections(ctx context.Context, db *database.DB) ([]ProjectionInfo, error) {
	rows, err := db.QueryContext(ctx, "SELECT name, tbl, position, rebuilt_ns FROM shoal_projections ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("cqrs: listing projections: %w", err)
	}
	defer rows.Close()
	var out []ProjectionInfo
	for rows.Next() {
		var p ProjectionInfo
		var pos, ns int64
		if err := rows.Scan(&p.Name, &p.Table, &pos, &ns); err != nil {
			return nil, err
		}
		p.Position = eventstore.Position(pos)
		if ns > 0 {
			p.Rebuilt = time.Unix(0, ns).UTC()
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
