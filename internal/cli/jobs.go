package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/jobs"
)

type jobsFlags struct {
	configFlags
	output string
}

func (f *jobsFlags) register(cmd *cobra.Command) {
	f.configFlags.register(cmd)
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
}

func (f *jobsFlags) check() error {
	if f.output != "table" && f.output != "json" {
		return usagef("-o %q is not a format; use -o table or -o json", f.output)
	}
	return nil
}

func (a *app) jobsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List, inspect, retry, cancel and enqueue background jobs",
		Long: `Work with the job queue of shoal.yml's jobs block: jobs.url, or for the sqlite driver the
jobs.db file in the state directory, or database.url for the postgres driver.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.jobsListCommand(), a.jobsInspectCommand(), a.jobsRetryCommand(), a.jobsCancelCommand(),
		a.jobsStatsCommand(), a.jobsEnqueueCommand(), a.jobsMigrateCommand())
	return cmd
}

// jobsDatabase is the database block the jobs commands open.
func jobsDatabase(c *config.Config) (config.Database, error) {
	j := c.Jobs
	switch j.Driver {
	case config.JobsMemory:
		return config.Database{}, errors.New("jobs.driver is memory: those jobs live inside the service's process and the CLI cannot reach them; use sqlite or postgres")
	case config.JobsSQLite, config.JobsPostgres, "":
	default:
		return config.Database{}, fmt.Errorf("jobs.driver %q is not a driver; use sqlite or postgres", j.Driver)
	}
	db := c.Database
	db.Type = ""
	db.ReadReplicas = nil
	db.URL = j.URL
	if db.URL == "" {
		if j.Driver == config.JobsPostgres {
			return config.Database{}, errors.New("jobs.driver is postgres but neither jobs.url nor database.url is set")
		}
		dir := admin.StateDir(c)
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		db.URL = "sqlite://" + filepath.ToSlash(filepath.Join(dir, "jobs.db"))
	}
	return db, nil
}

// openJobs opens the job store and a client that may enqueue any kind.
func (a *app) openJobs(ctx context.Context, f *jobsFlags) (*jobs.Client, func(), error) {
	if err := f.check(); err != nil {
		return nil, nil, err
	}
	c, err := a.load(&f.configFlags)
	if err != nil {
		return nil, nil, err
	}
	dbc, err := jobsDatabase(c)
	if err != nil {
		return nil, nil, err
	}
	db, err := database.Open(ctx, dbc, database.WithManualReplicaChecks())
	if err != nil {
		return nil, nil, err
	}
	cl, err := jobs.New(db, jobs.Options{Config: c.Jobs, AnyKind: true, WorkerID: "shoal-cli"})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return cl, func() { db.Close() }, nil
}

func parseJobID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("%q is not a job ID; IDs are positive numbers, as shoal jobs list prints them", s)
	}
	return id, nil
}

func printJobs(w io.Writer, output string, list []*jobs.JobRow) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		for _, j := range list {
			if err := enc.Encode(j); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tQUEUE\tSTATE\tATTEMPT\tPRIORITY\tRUN AT\tLAST ERROR")
	for _, j := range list {
		last := ""
		if n := len(j.Errors); n > 0 {
			last = jobsOneLine(j.Errors[n-1].Error, 60)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", j.ID, j.Kind, j.Queue, j.State, j.Attempt, j.MaxAttempts, j.Priority, j.RunAt.Local().Format(time.DateTime), last)
	}
	return tw.Flush()
}

func jobsOneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n-1] + "…"
	}
	return s
}

func printJob(w io.Writer, output string, j *jobs.JobRow) error {
	if output == "json" {
		return json.NewEncoder(w).Encode(j)
	}
	fmt.Fprintf(w, "job %d: %s in queue %s, %s, attempt %d of %d, priority %d\n", j.ID, j.Kind, j.Queue, j.State, j.Attempt, j.MaxAttempts, j.Priority)
	fmt.Fprintf(w, "  args:     %s\n", j.Args)
	fmt.Fprintf(w, "  created:  %s\n  run at:   %s\n", j.CreatedAt.Local().Format(time.RFC3339), j.RunAt.Local().Format(time.RFC3339))
	if j.AttemptedAt != nil {
		fmt.Fprintf(w, "  last run: %s on %s\n", j.AttemptedAt.Local().Format(time.RFC3339), j.Worker)
	}
	if j.FinalizedAt != nil {
		fmt.Fprintf(w, "  finished: %s\n", j.FinalizedAt.Local().Format(time.RFC3339))
	}
	if j.UniqueKey != "" {
		fmt.Fprintf(w, "  unique:   %s\n", j.UniqueKey)
	}
	if len(j.Tags) > 0 {
		fmt.Fprintf(w, "  tags:     %s\n", strings.Join(j.Tags, ", "))
	}
	for k, v := range j.Metadata {
		fmt.Fprintf(w, "  meta:     %s=%s\n", k, v)
	}
	for _, e := range j.Errors {
		fmt.Fprintf(w, "  error (attempt %d, %s): %s\n", e.Attempt, e.At.Local().Format(time.RFC3339), e.Error)
	}
	return nil
}

func (a *app) jobsListCommand() *cobra.Command {
	var f jobsFlags
	var p jobs.ListParams
	var state string
	cmd := &cobra.Command{
		Use:   "list [--state S] [--kind K] [--queue Q] [--limit N] [-o json]",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state != "" {
				st, err := jobs.ParseState(state)
				if err != nil {
					return usagef("--state: %v", strings.TrimPrefix(err.Error(), "jobs: "))
				}
				p.State = st
			}
			cl, done, err := a.openJobs(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer done()
			list, err := cl.List(cmd.Context(), p)
			if err != nil {
				return err
			}
			return printJobs(a.stdout, f.output, list)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&state, "state", "", "only jobs in this state: available, running, completed, cancelled, discarded")
	cmd.Flags().StringVar(&p.Kind, "kind", "", "only jobs of this kind")
	cmd.Flags().StringVar(&p.Queue, "queue", "", "only jobs of this queue")
	cmd.Flags().IntVar(&p.Limit, "limit", 100, "at most this many jobs (up to 10000)")
	return cmd
}

func (a *app) jobsInspectCommand() *cobra.Command {
	var f jobsFlags
	cmd := &cobra.Command{
		Use:   "inspect ID",
		Short: "Show one job with every attempt's error",
		Args:  jobsExactArgs(1, "a job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(args[0])
			if err != nil {
				return err
			}
			cl, done, err := a.openJobs(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer done()
			j, err := cl.Get(cmd.Context(), id)
			if err != nil {
				return err
			}
			return printJob(a.stdout, f.output, j)
		},
	}
	f.register(cmd)
	return cmd
}

func (a *app) jobsActionCommand(use, short string, act func(*jobs.Client, context.Context, int64) (*jobs.JobRow, error), verb string) *cobra.Command {
	var f jobsFlags
	cmd := &cobra.Command{
		Use:   use + " ID",
		Short: short,
		Args:  jobsExactArgs(1, "a job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(args[0])
			if err != nil {
				return err
			}
			cl, done, err := a.openJobs(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer done()
			j, err := act(cl, cmd.Context(), id)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJob(a.stdout, f.output, j)
			}
			fmt.Fprintf(a.stdout, "job %d (%s): %s, now %s\n", j.ID, j.Kind, verb, j.State)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func (a *app) jobsRetryCommand() *cobra.Command {
	return a.jobsActionCommand("retry", "Run a finished or waiting job again now", (*jobs.Client).Retry, "retried")
}

func (a *app) jobsCancelCommand() *cobra.Command {
	return a.jobsActionCommand("cancel", "Cancel a job (a running job's handler sees its context cancelled)", (*jobs.Client).Cancel,
		"cancel requested")
}

func (a *app) jobsStatsCommand() *cobra.Command {
	var f jobsFlags
	cmd := &cobra.Command{
		Use:   "stats [-o json]",
		Short: "Count jobs by queue and state; the available count is job_queue_depth",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, done, err := a.openJobs(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer done()
			d, err := cl.Depths(cmd.Context())
			if err != nil {
				return err
			}
			if f.output == "json" {
				return json.NewEncoder(a.stdout).Encode(d)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "QUEUE\tSTATE\tJOBS\tOLDEST WAITING")
			for _, x := range d {
				age := ""
				if x.OldestAvailable != nil {
					age = time.Since(*x.OldestAvailable).Round(time.Second).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", x.Queue, x.State, x.Count, age)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	return cmd
}

func (a *app) jobsEnqueueCommand() *cobra.Command {
	var f jobsFlags
	var args, queue string
	var priority int
	var delay time.Duration
	cmd := &cobra.Command{
		Use:   "enqueue KIND [--args JSON] [--queue Q] [--priority N] [--delay D]",
		Short: "Enqueue a job of KIND with JSON arguments",
		Args:  jobsExactArgs(1, "a job kind"),
		RunE: func(cmd *cobra.Command, pos []string) error {
			if !json.Valid([]byte(args)) {
				return usagef("--args %q is not JSON; pass an object such as --args '{\"to\":\"a@b.c\"}'", args)
			}
			cl, done, err := a.openJobs(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer done()
			if err := cl.Migrate(cmd.Context()); err != nil {
				return err
			}
			opts := []jobs.EnqueueOption{jobs.Priority(priority)}
			if queue != "" {
				opts = append(opts, jobs.Queue(queue))
			}
			if delay > 0 {
				opts = append(opts, jobs.Delay(delay))
			}
			r, err := cl.EnqueueRaw(cmd.Context(), pos[0], json.RawMessage(args), opts...)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return json.NewEncoder(a.stdout).Encode(r)
			}
			fmt.Fprintf(a.stdout, "enqueued job %d (%s)\n", r.ID, pos[0])
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&args, "args", "{}", "the job's arguments as JSON")
	cmd.Flags().StringVar(&queue, "queue", "", "queue (one of jobs.queues; default: default)")
	cmd.Flags().IntVar(&priority, "priority", 0, "priority within the queue (higher runs first)")
	cmd.Flags().DurationVar(&delay, "delay", 0, "run after this long, e.g. 10m")
	return cmd
}

func (a *app) jobsMigrateCommand() *cobra.Command {
	var f jobsFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or update the jobs tables (shoal_jobs_migrations)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, done, err := a.openJobs(cmd.Context(), &f)
			if err != nil {
				return err
			}
			defer done()
			if err := cl.Migrate(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "the jobs schema is up to date")
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// jobsExactArgs wants n arguments and names what is missing.
func jobsExactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s needs %s (got %d arguments); see shoal %s --help", cmd.CommandPath(), what, len(args), cmd.Name())
		}
		return nil
	}
}
