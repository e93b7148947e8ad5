package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/shoal-sh/shoal/config"
)

// Command is a resolved app.command: what to exec, and where.
type Command struct {
	Args []string
	Dir  string
	// Package is the Go package directory that was built, or "" when the command is a program.
	Package string
}

// ResolveCommand turns app.command into something to exec. A first word that is a directory
// holding Go files (relative to app.working_dir, itself relative to the config file) is
// built with `go build` into stateDir/bin first; anything else must be a program on PATH or
// a path to one.
func ResolveCommand(ctx context.Context, cfg *config.Config, stateDir string) (Command, error) {
	args := []string(cfg.App.Command)
	if len(args) == 0 {
		return Command{}, errors.New("app.command is empty: set it to the program that runs one instance, or to a Go package directory such as \".\"")
	}
	dir := cfg.Meta.Dir
	if wd := cfg.App.WorkingDir; wd != "" {
		if filepath.IsAbs(wd) {
			dir = wd
		} else {
			dir = filepath.Join(cfg.Meta.Dir, wd)
		}
	}
	first := args[0]
	pkg := first
	if !filepath.IsAbs(pkg) {
		pkg = filepath.Join(dir, pkg)
	}
	if isGoPackage(pkg) {
		abs, err := filepath.Abs(filepath.Join(stateDir, "bin", cfg.Name))
		if err != nil {
			return Command{}, err
		}
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			return Command{}, fmt.Errorf("creating %s: %w", filepath.Dir(abs), err)
		}
		build := exec.CommandContext(ctx, "go", "build", "-o", abs, ".")
		build.Dir = pkg
		var out bytes.Buffer
		build.Stdout, build.Stderr = &out, &out
		if err := build.Run(); err != nil {
			return Command{}, fmt.Errorf("building the Go package %s failed: %v\n%s", first, err, strings.TrimSpace(out.String()))
		}
		return Command{Args: append([]string{abs}, args[1:]...), Dir: dir, Package: pkg}, nil
	}
	if strings.ContainsRune(first, filepath.Separator) {
		if !filepath.IsAbs(first) {
			first = pkg
		}
		if _, err := os.Stat(first); err != nil {
			return Command{}, fmt.Errorf("app.command: %s does not exist (paths are relative to app.working_dir, which defaults to the config file's directory)", first)
		}
		return Command{Args: append([]string{first}, args[1:]...), Dir: dir}, nil
	}
	path, err := exec.LookPath(first)
	if err != nil {
		return Command{}, fmt.Errorf("app.command: %q is not a program on PATH nor a Go package directory", first)
	}
	return Command{Args: append([]string{path}, args[1:]...), Dir: dir}, nil
}

func isGoPackage(dir string) bool {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return false
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	return len(matches) > 0
}
