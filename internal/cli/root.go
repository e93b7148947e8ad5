// Package cli holds every shoal command. cmd/shoal only calls Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shoal-sh/shoal/config"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and failed
	ExitInvalid = 2 // the command line or the configuration is invalid
)

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// app carries what every command shares.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) (string, bool)
}

// Main runs the shoal command line with args and returns the process exit code. It never
// panics on bad input and never prints a Go stack trace.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.LookupEnv}
	return a.run(ctx, args)
}

func (a *app) run(ctx context.Context, args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(a.stderr, "shoal: internal error: %v; please report this with the command you ran\n", r)
			code = ExitFailure
		}
	}()
	root := a.rootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var cerr *config.Error
	switch {
	case errors.As(err, &cerr):
		for _, p := range cerr.Problems {
			fmt.Fprintln(a.stderr, p.String())
		}
		n := len(cerr.Problems)
		fmt.Fprintf(a.stderr, "shoal: the configuration is invalid (%d %s); fix the lines above\n", n, plural(n, "problem", "problems"))
		return ExitInvalid
	case errors.As(err, new(usageError)), errors.As(err, new(usageAt)), isCobraUsage(err):
		fmt.Fprintf(a.stderr, "shoal: %s\n", err)
		fmt.Fprintln(a.stderr, helpHint(err, cmd))
		return ExitInvalid
	default:
		fmt.Fprintf(a.stderr, "shoal: %s\n", err)
		return ExitFailure
	}
}

// isCobraUsage recognises cobra's and pflag's own command-line errors, which are plain errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument",
		"invalid argument", "accepts ", "requires at least", "requires at most", "required flag",
		"if any flags in the group", "none of the others can be"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "shoal",
		Short: "Run, scale and deploy a service from one YAML file",
		Long: `shoal turns one YAML file (shoal.yml, or a rustform.yml) into a horizontally scaled service:
instances supervised on this machine behind shoal's load-balancing proxy, health-checked and
autoscaled, or the same service generated for Kubernetes.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetIn(a.stdin)
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(a.validateCommand(), a.configCommand(), a.initCommand(), a.proxyCommand(), a.upCommand(), a.scalingCommand(), a.generateCommand(), a.versionCommand(), a.autoscaleCommand(), a.messagingCommand(), a.dbCommand(), a.eventsCommand())
	root.AddCommand(a.jobsCommand())
	a.commandLineHabits(root)
	return root
}

// configFlags are the flags of every command that reads shoal.yml.
type configFlags struct {
	file string
	env  string
}

func (f *configFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "file", "f", "", "configuration file (default: shoal.yml, then rustform.yml, in the current directory)")
	cmd.Flags().StringVar(&f.env, "env", "", "environment overlay to apply (default: $SHOAL_ENV)")
}

// path returns the configuration file to read.
func (f *configFlags) path() (string, error) {
	if f.file != "" {
		return f.file, nil
	}
	return config.Find(".")
}

// environment returns the selected environment: --env, else SHOAL_ENV.
func (a *app) environment(f *configFlags) string {
	if f.env != "" {
		return f.env
	}
	v, _ := a.getenv("SHOAL_ENV")
	return strings.TrimSpace(v)
}

// load reads the configuration selected by the flags.
func (a *app) load(f *configFlags) (*config.Config, error) {
	path, err := f.path()
	if err != nil {
		return nil, err
	}
	return config.Load(path, config.Options{Env: a.environment(f), LookupEnv: a.getenv})
}
