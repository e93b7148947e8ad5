package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
)

func (a *app) dbCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Check the database and run the service's migrations",
		Long: `Check the database of shoal.yml (database.url, or DATABASE_URL) and run the service's goose
migrations from database.migrations. With no database configured, the commands use the SQLite
file in the state directory that shoal up gives every instance.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.dbPingCommand(), a.dbMigrateCommand())
	return cmd
}

// dbConfig is the database block the db commands use: the configured one, or shoal up's
// embedded SQLite default.
func (a *app) dbConfig(c *config.Config) (config.Database, bool) {
	db := c.Database
	if db.URL != "" {
		return db, false
	}
	db.URL = embeddedDatabaseURL(c)
	db.Type = config.DatabaseSQLite
	return db, true
}

// embeddedDatabaseURL is the SQLite file in the state directory that shoal up hands every
// instance (as DATABASE_URL) when the configuration names no database.
func embeddedDatabaseURL(c *config.Config) string {
	dir := admin.StateDir(c)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return "sqlite://" + filepath.ToSlash(filepath.Join(dir, "database.db"))
}

func (a *app) openDB(ctx context.Context, f *configFlags) (*config.Config, *database.DB, error) {
	c, err := a.load(f)
	if err != nil {
		return nil, nil, err
	}
	cfg, embedded := a.dbConfig(c)
	if embedded {
		fmt.Fprintf(a.stderr, "shoal: no database configured; using %s, the SQLite file shoal up gives every instance\n", database.Redact(cfg.URL))
	}
	db, err := database.Open(ctx, cfg, database.WithManualReplicaChecks())
	if err != nil {
		return nil, nil, err
	}
	return c, db, nil
}

func (a *app) dbPingCommand() *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:   "ping [-f FILE] [--env NAME]",
		Short: "Connect to the database and its replicas; print latency and pool state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			_, db, err := a.openDB(ctx, &f)
			if err != nil {
				return err
			}
			defer db.Close()
			start := time.Now()
			if err := db.Ping(ctx); err != nil {
				return err
			}
			took := time.Since(start)
			fmt.Fprintf(a.stdout, "%s (%s): ok, ping %s\n", db.Name(), db.Dialect(), took.Round(time.Microsecond))
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "POOL\tOPEN\tIN USE\tIDLE\tMAX\tWAITS\tWAITED")
			for _, p := range db.Stats().Pools {
				fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Pool, p.Open, p.InUse, p.Idle, p.Max, p.WaitCount, p.WaitDuration.Round(time.Microsecond))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			var down int
			for _, r := range db.ReplicaStatus() {
				state := fmt.Sprintf("healthy, lag %s", r.Lag.Round(time.Millisecond))
				switch {
				case !r.Healthy:
					state = "DOWN: " + r.Err
					down++
				case !r.Routable:
					state = fmt.Sprintf("healthy but lagging %s (more than replica_max_lag %s): gets no reads", r.Lag.Round(time.Millisecond), db.Config().ReplicaMaxLag.D())
				}
				fmt.Fprintf(a.stdout, "%s %s: %s\n", r.Pool, r.Database, state)
			}
			if down > 0 {
				return fmt.Errorf("%d of %d read replicas are down; their reads go to the others or the primary", down, len(db.ReplicaStatus()))
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

type migrateFlags struct {
	configFlags
	dir   string
	table string
}

func (m *migrateFlags) register(cmd *cobra.Command) {
	m.configFlags.register(cmd)
	cmd.Flags().StringVar(&m.dir, "dir", "", "migrations directory (default: database.migrations, relative to the configuration file)")
	cmd.Flags().StringVar(&m.table, "table", database.DefaultMigrationsTable, "goose version table")
}

// migrationsDir is --dir, else database.migrations relative to the configuration's directory.
func (m *migrateFlags) migrationsDir(c *config.Config) string {
	if m.dir != "" {
		return m.dir
	}
	d := c.Database.Migrations
	if d == "" {
		d = "migrations"
	}
	if !filepath.IsAbs(d) {
		d = filepath.Join(c.Meta.Dir, d)
	}
	return d
}

func (a *app) dbMigrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply, roll back, list or create the service's SQL migrations (goose)",
		Long: `Apply, roll back, list or create the service's goose SQL migrations: NNN_name.sql files with
-- +goose Up and -- +goose Down sections in database.migrations (default "migrations" beside
shoal.yml), or in its postgres/, mysql/ or sqlite/ sub-directory when the SQL differs per
database. Several instances migrating at once take turns.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.migrateRun("up", "Apply every pending migration, printing each"),
		a.migrateRun("down", "Roll back the latest applied migration"),
		a.migrateRun("status", "List every migration and whether it is applied"),
		a.migrateCreate())
	return cmd
}

func (a *app) migrateRun(action, short string) *cobra.Command {
	var f migrateFlags
	cmd := &cobra.Command{
		Use:   action + " [-f FILE] [--env NAME] [--dir DIR]",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, db, err := a.openDB(ctx, &f.configFlags)
			if err != nil {
				return err
			}
			defer db.Close()
			dir := f.migrationsDir(c)
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return fmt.Errorf("the migrations directory %s does not exist; create a migration with `shoal db migrate create NAME`, or set database.migrations or --dir", dir)
			}
			m, err := database.NewMigrator(db, os.DirFS(dir), database.WithTable(f.table),
				database.WithProgress(func(r database.MigrationResult) {
					verb := "applied"
					if r.Direction == "down" {
						verb = "rolled back"
					}
					fmt.Fprintf(a.stdout, "%s %s (%s)\n", verb, r.File, r.Duration.Round(time.Microsecond))
				}))
			if err != nil {
				return err
			}
			switch action {
			case "up":
				done, err := m.Up(ctx)
				if err != nil {
					return err
				}
				v, verr := m.Version(ctx)
				if verr != nil {
					return verr
				}
				if len(done) == 0 {
					fmt.Fprintf(a.stdout, "%s is up to date at version %d\n", db.Name(), v)
				} else {
					fmt.Fprintf(a.stdout, "%s is at version %d (%d applied)\n", db.Name(), v, len(done))
				}
			case "down":
				r, err := m.Down(ctx)
				if err != nil {
					return err
				}
				if r == nil {
					fmt.Fprintf(a.stdout, "%s has no applied migration to roll back\n", db.Name())
				}
			case "status":
				st, err := m.Status(ctx)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "VERSION\tFILE\tSTATE\tAPPLIED AT")
				for _, s := range st {
					state, at := "pending", "-"
					if s.Applied {
						state, at = "applied", s.AppliedAt.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", s.Version, s.File, state, at)
				}
				return w.Flush()
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func (a *app) migrateCreate() *cobra.Command {
	var f migrateFlags
	var dialect string
	cmd := &cobra.Command{
		Use:   "create NAME [-f FILE] [--dir DIR] [--dialect postgres|mysql|sqlite]",
		Short: "Write a new, empty migration file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := f.dir
			if dir == "" {
				if _, err := f.path(); err != nil {
					dir = "migrations" // no shoal.yml here: the default directory
				} else {
					c, err := a.load(&f.configFlags)
					if err != nil {
						return err
					}
					dir = f.migrationsDir(c)
				}
			}
			switch dialect {
			case "":
			case "postgres", "mysql", "sqlite":
				dir = filepath.Join(dir, dialect)
			default:
				return usagef("--dialect %q is not one of postgres, mysql, sqlite", dialect)
			}
			p, err := database.CreateMigration(dir, args[0], time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "created %s\n", p)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&dialect, "dialect", "", "write it in the dialect's sub-directory, for SQL that differs per database")
	return cmd
}
