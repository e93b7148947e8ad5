package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/shoal-sh/shoal/config"
)

func (a *app) validateCommand() *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:   "validate [-f FILE] [--env NAME]",
		Short: "Check a configuration and report every problem",
		Long: `Check a configuration and report every problem at once, each as file:line:col: path: message.
Without --env (or SHOAL_ENV) the base configuration and every environment overlay are checked.
Exits 0 when valid, 2 when not.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := f.path()
			if err != nil {
				return err
			}
			env := a.environment(&f)
			opts := config.Options{Env: env, LookupEnv: a.getenv}
			var c *config.Config
			if env == "" {
				c, err = config.LoadAll(path, opts)
			} else {
				c, err = config.Load(path, opts)
			}
			if err != nil {
				return err
			}
			switch {
			case env != "":
				fmt.Fprintf(a.stdout, "%s is valid for environment %s: %s, %d-%d instances, %s balancing, %s discovery\n",
					path, env, c.Name, c.Scaling.Instances.MinInstances, c.Scaling.Instances.MaxInstances,
					c.Scaling.LoadBalancer.Algorithm, c.Scaling.ServiceDiscovery.Method)
			case len(c.Meta.Environments) > 0:
				fmt.Fprintf(a.stdout, "%s is valid, with environments %s: %s, %d-%d instances, %s balancing, %s discovery\n",
					path, strings.Join(c.Meta.Environments, ", "), c.Name, c.Scaling.Instances.MinInstances,
					c.Scaling.Instances.MaxInstances, c.Scaling.LoadBalancer.Algorithm, c.Scaling.ServiceDiscovery.Method)
			default:
				fmt.Fprintf(a.stdout, "%s is valid: %s, %d-%d instances, %s balancing, %s discovery\n",
					path, c.Name, c.Scaling.Instances.MinInstances, c.Scaling.Instances.MaxInstances,
					c.Scaling.LoadBalancer.Algorithm, c.Scaling.ServiceDiscovery.Method)
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func (a *app) configCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the effective configuration or its JSON Schema",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var f configFlags
	var output string
	var showSecrets bool
	print := &cobra.Command{
		Use:   "print [-f FILE] [--env NAME] [-o yaml|json]",
		Short: "Print the effective configuration: merged, defaulted, secrets redacted",
		Long: `Print the effective configuration: the environment merged, defaults filled in, and secrets
redacted — fields that hold secrets, passwords and user names in URLs, secret-looking query
parameters, app.env values with secret-looking names, and every value that came from ${VAR}
(shown as the variable it came from). --show-secrets prints everything as it is.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "yaml" && output != "json" {
				return usagef("-o %q is not a format; use -o yaml or -o json", output)
			}
			c, err := a.load(&f)
			if err != nil {
				return err
			}
			r := c.Redacted()
			if showSecrets {
				r = c // asked for by name: every value as it is
			}
			r.Environments = nil
			if output == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			if c.Meta.Env != "" {
				fmt.Fprintf(a.stdout, "# effective configuration of %s for environment %s\n", c.Meta.File, c.Meta.Env)
			} else {
				fmt.Fprintf(a.stdout, "# effective configuration of %s\n", c.Meta.File)
			}
			enc := yaml.NewEncoder(a.stdout)
			enc.SetIndent(2)
			if err := enc.Encode(r); err != nil {
				return err
			}
			return enc.Close()
		},
	}
	f.register(print)
	print.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	print.Flags().BoolVar(&showSecrets, "show-secrets", false, "print secrets and the values of ${VAR} as they are, instead of redacted")
	schema := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of shoal.yml (for yaml-language-server and editors)",
		Long: `Print the JSON Schema of shoal.yml. Save it beside your config and point your editor at it:

  shoal config schema > shoal.schema.json
  # first line of shoal.yml:
  # yaml-language-server: $schema=./shoal.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := a.stdout.Write(config.Schema())
			return err
		},
	}
	cmd.AddCommand(print, schema)
	return cmd
}
