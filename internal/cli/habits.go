package cli

// What users of kubectl, git and other command lines expect: suggestions for typos at every
// level, usage errors that point at the command's own help, flag errors in words rather than
// Go's strconv messages, --version, and completion of flag values.

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/agnivade/levenshtein"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shoal-sh/shoal/config"
)

// usageAt is a usage error with the command whose help explains the usage.
type usageAt struct {
	usageError
	cmd *cobra.Command
}

// suggest returns the candidates nearest to s: within two edits, or starting with it.
func suggest(s string, candidates []string) []string {
	var out []string
	best := 3
	for _, c := range candidates {
		d := levenshtein.ComputeDistance(strings.ToLower(s), strings.ToLower(c))
		switch {
		case d < best:
			best, out = d, []string{c}
		case d == best:
			out = append(out, c)
		case len(s) >= 3 && strings.HasPrefix(c, s) && !slices.Contains(out, c):
			out = append(out, c)
		}
	}
	return out
}

// didYouMean returns " (did you mean x?)" for the nearest candidates, or "".
func didYouMean(s string, candidates []string) string {
	if got := suggest(s, candidates); len(got) > 0 {
		return " (did you mean " + strings.Join(got, " or ") + "?)"
	}
	return ""
}

// subcommandsOnly is the Args of a command that only groups subcommands: a word that is not
// one of them is refused with the nearest names, here or one level down.
func subcommandsOnly(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
			names = append(names, c.Aliases...)
		}
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if got := suggest(args[0], names); len(got) > 0 {
		for i, g := range got {
			got[i] = "`" + cmd.CommandPath() + " " + g + "`"
		}
		msg += "; did you mean " + strings.Join(got, " or ") + "?"
	} else {
		// `shoal status` is most likely `shoal scaling status`.
		var deeper []string
		for _, c := range cmd.Commands() {
			for _, cc := range c.Commands() {
				if cc.IsAvailableCommand() && len(suggest(args[0], []string{cc.Name()})) > 0 {
					deeper = append(deeper, "`"+cc.CommandPath()+"`")
				}
			}
		}
		if len(deeper) > 0 {
			msg += "; did you mean " + strings.Join(deeper, " or ") + "?"
		}
	}
	return usageAt{usageError{msg}, cmd}
}

// groupCommand makes cmd a command that groups subcommands: without one it prints its help,
// with an unknown one it says which were meant.
func groupCommand(cmd *cobra.Command) {
	cmd.Args = subcommandsOnly
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// pflag's messages, which name Go's parsers.
var (
	invalidFlagArg = regexp.MustCompile(`^invalid argument "(.*)" for "(?:-\w, )?--([^"]+)" flag: `)
	unknownFlag    = regexp.MustCompile(`^unknown flag: --([^ ]+)`)
	unknownShort   = regexp.MustCompile(`^unknown shorthand flag: '(.)' in -`)
	needsArg       = regexp.MustCompile(`^flag needs an argument: (?:'(.)' in -.|--(.+))$`)
)

// flagError turns pflag's errors into sentences that say what the flag takes, and suggests
// the flag meant for an unknown one.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	var names []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) { names = append(names, "--"+f.Name) })
	cmd.InheritedFlags().VisitAll(func(f *pflag.Flag) { names = append(names, "--"+f.Name) })
	switch {
	case invalidFlagArg.MatchString(msg):
		m := invalidFlagArg.FindStringSubmatch(msg)
		takes := "another value"
		if f := cmd.Flags().Lookup(m[2]); f != nil {
			takes = flagTakes(f.Value.Type())
		}
		msg = fmt.Sprintf("--%s takes %s, not %q", m[2], takes, m[1])
	case unknownFlag.MatchString(msg):
		m := unknownFlag.FindStringSubmatch(msg)
		name, _, _ := strings.Cut(m[1], "=")
		msg = "unknown flag --" + name + didYouMean("--"+name, names)
	case unknownShort.MatchString(msg):
		msg = fmt.Sprintf("unknown flag -%s", unknownShort.FindStringSubmatch(msg)[1])
	case needsArg.MatchString(msg):
		m := needsArg.FindStringSubmatch(msg)
		name := "--" + m[2]
		var f *pflag.Flag
		if m[1] != "" {
			name = "-" + m[1]
			f = cmd.Flags().ShorthandLookup(m[1])
		} else {
			f = cmd.Flags().Lookup(m[2])
		}
		takes := "a value"
		if f != nil {
			takes = flagTakes(f.Value.Type())
		}
		msg = fmt.Sprintf("%s needs a value: %s", name, takes)
	}
	return usageAt{usageError{msg}, cmd}
}

// flagTakes says in words what a flag of pflag's type takes.
func flagTakes(typ string) string {
	switch typ {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "count":
		return "a whole number"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "duration":
		return "a duration such as 500ms, 30s or 5m"
	case "stringSlice", "stringArray":
		return "a comma-separated list"
	default:
		return "a value"
	}
}

// helpHint is the line after a usage error: the help of the command it is about.
func helpHint(err error, cmd *cobra.Command) string {
	var at usageAt
	if errors.As(err, &at) && at.cmd != nil {
		cmd = at.cmd
	}
	path := "shoal"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	return fmt.Sprintf("Run '%s --help' for usage.", path)
}

// fixedCompletion completes a flag's value from a fixed list.
func fixedCompletion(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// envCompletion completes --env with the environments of the configuration the command
// would read (-f, else shoal.yml or rustform.yml here).
func (a *app) envCompletion(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	path, _ := cmd.Flags().GetString("file")
	if path == "" {
		p, err := config.Find(".")
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		path = p
	}
	c, err := config.LoadAll(path, config.Options{LookupEnv: a.getenv})
	if err != nil || c == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return c.Meta.Environments, cobra.ShellCompDirectiveNoFileComp
}

// configFileCompletion completes -f with YAML files.
func configFileCompletion(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"yml", "yaml"}, cobra.ShellCompDirectiveFilterFileExt
}

// completeConfigFlags registers the completions of -f and --env wherever a command has them.
func (a *app) completeConfigFlags(cmd *cobra.Command) {
	for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.PersistentFlags()} {
		if fs.Lookup("file") != nil {
			cmd.RegisterFlagCompletionFunc("file", configFileCompletion)
		}
		if fs.Lookup("env") != nil {
			cmd.RegisterFlagCompletionFunc("env", a.envCompletion)
		}
	}
	for _, c := range cmd.Commands() {
		a.completeConfigFlags(c)
	}
}

// commandLineHabits gives the whole command tree what habits.go provides: --version on the
// root, group commands that suggest their subcommands, and completion of -f and --env.
func (a *app) commandLineHabits(root *cobra.Command) {
	root.Version = versionLine()
	root.SetVersionTemplate("shoal {{.Version}}\n")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() {
			groupCommand(c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	a.completeConfigFlags(root)
}
