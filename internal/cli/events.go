package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-sh/shoal/cqrs"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/eventstore/sqlstore"
)

type eventsFlags struct {
	configFlags
	output string
}

func (f *eventsFlags) register(cmd *cobra.Command) {
	f.configFlags.register(cmd)
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json (one object a line for events)")
}

func (f *eventsFlags) check() error {
	if f.output != "table" && f.output != "json" {
		return usagef("-o %q is not a format; use -o table or -o json", f.output)
	}
	return nil
}

func (a *app) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Read the event store: streams, $all, stats, projections",
		Long: `Read the service's event store (package eventstore/sqlstore) in the database of shoal.yml
(database.url, or DATABASE_URL; with none, the SQLite file shoal up gives every instance).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.eventsReadCommand(), a.eventsTailCommand(), a.eventsStatsCommand(), a.eventsProjectionsCommand(), a.eventsRebuildCommand())
	return cmd
}

// openEvents opens the configured database and the event store on it, without migrating: a
// database the service never ran on gets a clear error.
func (a *app) openEvents(ctx context.Context, f *eventsFlags) (*database.DB, *sqlstore.Store, error) {
	if err := f.check(); err != nil {
		return nil, nil, err
	}
	_, db, err := a.openDB(ctx, &f.configFlags)
	if err != nil {
		return nil, nil, err
	}
	if _, err := db.ExecContext(ctx, "SELECT 1 FROM shoal_events_head"); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("%s has no event store (%v); it is created when the service first opens sqlstore.New", db.Name(), err)
	}
	s, err := sqlstore.New(ctx, db, sqlstore.Options{SkipMigrate: true})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, s, nil
}

type eventJSON struct {
	Position int64               `json:"position"`
	Stream   string              `json:"stream"`
	Version  int64               `json:"version"`
	Type     string              `json:"type"`
	ID       string              `json:"id"`
	Time     time.Time           `json:"time"`
	Data     json.RawMessage     `json:"data"`
	Metadata eventstore.Metadata `json:"metadata"`
}

func printEvents(w io.Writer, output string, evs []eventstore.RecordedEvent, header bool) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		for _, e := range evs {
			if err := enc.Encode(eventJSON{int64(e.Position), e.Stream, e.Version, e.Type, e.ID, e.Time, e.Data, e.Metadata}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "POSITION\tSTREAM\tVERSION\tTYPE\tTIME\tDATA")
	}
	for _, e := range evs {
		data := string(e.Data)
		if len(data) > 80 {
			data = data[:77] + "..."
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", e.Position, e.Stream, e.Version, e.Type, e.Time.Format(time.RFC3339Nano), data)
	}
	return tw.Flush()
}

func (a *app) eventsReadCommand() *cobra.Command {
	var f eventsFlags
	var from int64
	var limit int
	var backward bool
	cmd := &cobra.Command{
		Use:   "read STREAM [--from V] [--limit N] [--backward] [-o table|json]",
		Short: "Print a stream's events in version order",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from < 0 || limit < 0 {
				return usagef("--from and --limit must not be negative")
			}
			ctx := cmd.Context()
			db, s, err := a.openEvents(ctx, &f)
			if err != nil {
				return err
			}
			defer db.Close()
			defer s.Close()
			evs, err := s.ReadStream(ctx, args[0], eventstore.ReadStreamOptions{From: from, Limit: limit, Backward: backward})
			if errors.Is(err, eventstore.ErrStreamNotFound) {
				return fmt.Errorf("stream %q has no events", args[0])
			}
			if err != nil {
				return err
			}
			return printEvents(a.stdout, f.output, evs, true)
		},
	}
	f.register(cmd)
	cmd.Flags().Int64Var(&from, "from", 0, "first version (inclusive)")
	cmd.Flags().IntVar(&limit, "limit", 0, "most events printed (0: all)")
	cmd.Flags().BoolVar(&backward, "backward", false, "newest first")
	return cmd
}

func (a *app) eventsTailCommand() *cobra.Command {
	var f eventsFlags
	var types, prefixes []string
	var from int64
	var follow bool
	cmd := &cobra.Command{
		Use:   "tail [--type T]... [--stream-prefix P]... [--from POSITION] [--no-follow] [-o table|json]",
		Short: "Print $all in global order, then follow new events (Ctrl-C stops)",
		Long: `Print the events of $all after --from (default: the last 20), filtered by type and stream prefix,
then keep printing new ones as they are appended, until interrupted (or at once with --no-follow).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			db, s, err := a.openEvents(ctx, &f)
			if err != nil {
				return err
			}
			defer db.Close()
			defer s.Close()
			next := eventstore.Position(from)
			if !cmd.Flags().Changed("from") {
				head, err := s.Head(ctx)
				if err != nil {
					return err
				}
				next = max(head-19, 1)
			}
			filter := eventstore.Filter{Types: types, StreamPrefixes: prefixes}
			header := true
			for {
				sl, err := s.ReadAll(ctx, eventstore.ReadAllOptions{From: next, Filter: filter})
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if len(sl.Events) > 0 {
					if err := printEvents(a.stdout, f.output, sl.Events, header); err != nil {
						return err
					}
					header = false
				}
				next = sl.Next
				if next <= sl.Head {
					continue
				}
				if !follow {
					return nil
				}
				if err := s.WaitForAppend(ctx, next-1); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
			}
		},
	}
	f.register(cmd)
	cmd.Flags().StringArrayVar(&types, "type", nil, "only events of this type (repeatable)")
	cmd.Flags().StringArrayVar(&prefixes, "stream-prefix", nil, "only events of streams starting with this (repeatable)")
	cmd.Flags().Int64Var(&from, "from", 0, "first position (default: the last 20 events)")
	cmd.Flags().BoolVar(&follow, "follow", true, "keep printing new events")
	return cmd
}

func (a *app) eventsStatsCommand() *cobra.Command {
	var f eventsFlags
	cmd := &cobra.Command{
		Use:   "stats [-o table|json]",
		Short: "Events, streams, head, subscriptions' checkpoints and lag, groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			db, s, err := a.openEvents(ctx, &f)
			if err != nil {
				return err
			}
			defer db.Close()
			defer s.Close()
			st, err := s.Stats(ctx)
			if err != nil {
				return err
			}
			cps, err := s.ListCheckpoints(ctx)
			if err != nil {
				return err
			}
			groups, err := s.ListGroups(ctx)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return json.NewEncoder(a.stdout).Encode(map[string]any{"store": st, "checkpoints": cps, "groups": groups})
			}
			fmt.Fprintf(a.stdout, "%s event store: %d events in %d streams, head %d, last append %s, %d snapshots\n",
				st.Backend, st.Events, st.Streams, st.Head, fmtTime(st.LastAppend), st.Snapshots)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			if len(cps) > 0 {
				fmt.Fprintln(tw, "SUBSCRIPTION\tCHECKPOINT\tLAG\tUPDATED")
				for _, c := range cps {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", c.Name, c.Position, max(st.Head-c.Position, 0), fmtTime(c.Updated))
				}
			}
			for _, g := range groups {
				fmt.Fprintf(tw, "GROUP %s\tPARTITION\tOWNER\tCHECKPOINT\tLAG\n", g.Group)
				for _, p := range g.Partitions {
					owner := p.Owner
					if owner == "" {
						owner = "(free)"
					}
					fmt.Fprintf(tw, "\t%d\t%s\t%d\t%d\n", p.Partition, owner, p.Checkpoint, max(st.Head-p.Checkpoint, 0))
				}
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	return cmd
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func (a *app) eventsProjectionsCommand() *cobra.Command {
	var f eventsFlags
	cmd := &cobra.Command{
		Use:   "projections [-o table|json]",
		Short: "The projections of the database: table, position, lag, last rebuild",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			db, s, err := a.openEvents(ctx, &f)
			if err != nil {
				return err
			}
			defer db.Close()
			defer s.Close()
			head, err := s.Head(ctx)
			if err != nil {
				return err
			}
			ps, err := listProjections(ctx, db)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return json.NewEncoder(a.stdout).Encode(map[string]any{"head": head, "projections": ps})
			}
			if len(ps) == 0 {
				fmt.Fprintln(a.stdout, "no projections in this database")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PROJECTION\tTABLE\tPOSITION\tLAG\tREBUILT")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", p.Name, p.Table, p.Position, max(head-p.Position, 0), fmtTime(p.Rebuilt))
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	return cmd
}

// listProjections is cqrs.ListProjections, with no table (no projector ever ran) as none.
func listProjections(ctx context.Context, db *database.DB) ([]cqrs.ProjectionInfo, error) {
	ps, err := cqrs.ListProjections(ctx, db)
	if err != nil && (strings.Contains(err.Error(), "no such table") || strings.Contains(err.Error(), "does not exist")) {
		return nil, nil
	}
	return ps, err
}

func (a *app) eventsRebuildCommand() *cobra.Command {
	var f eventsFlags
	cmd := &cobra.Command{
		Use:   "rebuild PROJECTION",
		Short: "Ask the service's running projector to rebuild a projection from $all",
		Long: `Ask for a rebuild: the service's running projector of PROJECTION folds $all from the start into a
fresh table while appends continue, then swaps it in. The command returns once the rebuild is
asked for; "shoal events projections" shows when it was done.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			db, s, err := a.openEvents(ctx, &f)
			if err != nil {
				return err
			}
			defer db.Close()
			defer s.Close()
			if err := cqrs.RequestRebuild(ctx, db, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "rebuild of %s asked for; a running projector does it within about a second\n", args[0])
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
