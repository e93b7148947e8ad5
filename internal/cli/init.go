package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/shoal-sh/shoal/config"
)

func (a *app) initCommand() *cobra.Command {
	var name string
	var force bool
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Write a commented starter shoal.yml (and its JSON Schema for editors)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("cannot create %s: %w", dir, err)
			}
			if name == "" {
				abs, err := filepath.Abs(dir)
				if err != nil {
					return err
				}
				name = filepath.Base(abs)
			}
			target := filepath.Join(dir, "shoal.yml")
			if !force {
				if _, err := os.Stat(target); err == nil {
					return fmt.Errorf("%s already exists; pass --force to overwrite it", target)
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			if err := os.WriteFile(target, config.Starter(name), 0o644); err != nil {
				return fmt.Errorf("cannot write %s: %w", target, err)
			}
			schema := filepath.Join(dir, "shoal.schema.json")
			if err := os.WriteFile(schema, config.Schema(), 0o644); err != nil {
				return fmt.Errorf("cannot write %s: %w", schema, err)
			}
			fmt.Fprintf(a.stdout, "wrote %s for service %q (and %s for your editor)\nnext: edit app.command, then run `shoal validate -f %s`\n",
				target, config.ServiceName(name), schema, target)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "service name (default: the directory's name)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing shoal.yml")
	return cmd
}
