package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

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
			ignore, err := ignoreStateDir(dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "wrote %s for service %q (and %s for your editor)\n", target, config.ServiceName(name), schema)
			if ignore != "" {
				fmt.Fprintf(a.stdout, "%s %s: .shoal/ holds the admin signing key, logs and builds, and stays out of git\n", ignore, filepath.Join(dir, ".gitignore"))
			}
			fmt.Fprintf(a.stdout, "next: check app.command (a Go package directory such as \".\" is built for you), then run `shoal validate -f %s` and `shoal up -f %s`\n",
				target, target)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "service name (default: the directory's name)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing shoal.yml")
	return cmd
}

// stateDirIgnore is the .gitignore line for shoal's state directory (admin.state_dir's default).
const stateDirIgnore = ".shoal/"

// ignoreStateDir makes dir/.gitignore ignore the state directory, which holds the admin
// signing key: it creates the file, or adds the line to one that lacks it. It returns what it
// did ("wrote", "added .shoal/ to"), or "" when the line was there already.
func ignoreStateDir(dir string) (string, error) {
	p := filepath.Join(dir, ".gitignore")
	data, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.WriteFile(p, []byte("# shoal's state: the admin signing key, instance logs, builds, metrics\n"+stateDirIgnore+"\n"), 0o644); err != nil {
			return "", fmt.Errorf("cannot write %s: %w", p, err)
		}
		return "wrote", nil
	case err != nil:
		return "", fmt.Errorf("cannot read %s: %w", p, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		switch strings.TrimSpace(line) {
		case ".shoal", ".shoal/", "/.shoal", "/.shoal/":
			return "", nil
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	if err := os.WriteFile(p, append(data, stateDirIgnore+"\n"...), 0o644); err != nil {
		return "", fmt.Errorf("cannot write %s: %w", p, err)
	}
	return "added " + stateDirIgnore + " to", nil
}
