package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHabits_Typos checks what a typo gets at every level: the nearest names, and a pointer
// at the help of the command it is about.
func TestHabits_Typos(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args       []string
		want, help string
	}{
		{[]string{"scaling", "stauts"}, "did you mean `shoal scaling status`?", "shoal scaling"},
		{[]string{"scaling", "scaleup"}, "did you mean `shoal scaling scale-up`", "shoal scaling"},
		// One level down; other groups' subcommands as near (events stats, jobs stats) may be
		// offered beside it.
		{[]string{"stauts"}, "`shoal scaling status`", "shoal"},
		{[]string{"genrate", "kubernetes"}, "did you mean `shoal generate`?", "shoal"},
		{[]string{"config", "prnt"}, "did you mean `shoal config print`?", "shoal config"},
		{[]string{"generate", "kubernets", "-f", seed}, `"kubernets" is not a target (did you mean kubernetes?)`, "shoal generate"},
		{[]string{"scaling", "scale-up", "--instnaces", "4"}, "unknown flag --instnaces (did you mean --instances?)", "shoal scaling scale-up"},
		{[]string{"scaling", "scale-up", "--instances", "four"}, `--instances takes a whole number, not "four"`, "shoal scaling scale-up"},
		{[]string{"scaling", "metrics", "--points", "many"}, `--points takes a whole number, not "many"`, "shoal scaling metrics"},
		{[]string{"scaling", "test-lb", "--timeout", "soon"}, `--timeout takes a duration such as 500ms, 30s or 5m, not "soon"`, "shoal scaling test-lb"},
		{[]string{"validate", "-f"}, "-f needs a value", "shoal validate"},
	} {
		code, out, errs := run(t, nil, c.args...)
		if code != ExitInvalid || out != "" || !strings.Contains(errs, c.want) || !strings.HasSuffix(errs, "Run '"+c.help+" --help' for usage.\n") {
			t.Errorf("%v: code %d\nstderr %q\nwant %q and the help of %q", c.args, code, errs, c.want, c.help)
		}
		if strings.Contains(errs, "strconv") || strings.Contains(errs, "time: invalid duration") {
			t.Errorf("%v leaks a Go parse error: %q", c.args, errs)
		}
	}
	// A group without a subcommand shows its help, as before.
	if code, out, _ := run(t, nil, "scaling"); code != ExitOK || !strings.Contains(out, "scale-up") {
		t.Errorf("shoal scaling: %d %q", code, out)
	}
}

func TestHabits_Version(t *testing.T) {
	t.Parallel()
	code, flag, _ := run(t, nil, "--version")
	_, cmd, _ := run(t, nil, "version")
	if code != ExitOK || flag != cmd || !strings.HasPrefix(flag, "shoal ") {
		t.Errorf("--version %q, version %q", flag, cmd)
	}
}

// TestHabits_Completion asks cobra's completion for flag values and arguments, as the shells
// do (`shoal __complete ARGS… ”`).
func TestHabits_Completion(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"generate", ""}, []string{"kubernetes", "helm", "keda", "all"}},
		{[]string{"generate", "kubernetes", "-o", ""}, []string{"yaml", "json"}},
		{[]string{"scaling", "status", "-o", ""}, []string{"table", "json", "yaml"}},
		{[]string{"validate", "-f", seed, "--env", ""}, []string{"development", "staging", "production"}},
		{[]string{"scaling", "status", "-f", seed, "--env", ""}, []string{"development", "staging", "production"}},
		{[]string{"up", "-f", seed, "--env", "prod"}, []string{"production"}},
	} {
		code, out, errs := run(t, nil, append([]string{"__complete"}, c.args...)...)
		if code != ExitOK {
			t.Errorf("%v: %d %s", c.args, code, errs)
			continue
		}
		got := strings.Fields(out)
		for _, w := range c.want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				t.Errorf("completing %v offers %q, not %s", c.args, out, w)
			}
		}
	}
}

func TestHabits_AdminFromEnvironment(t *testing.T) {
	t.Parallel()
	fx := startAdmin(t)
	code, out, errs := run(t, map[string]string{"SHOAL_ADMIN": fx.url, "SHOAL_TOKEN": fx.read}, "scaling", "status")
	if code != ExitOK || !strings.Contains(out, "demo-1") {
		t.Fatalf("SHOAL_ADMIN: %d %s %s", code, out, errs)
	}
}

func TestHabits_GenerateTokenSaysReadOnly(t *testing.T) {
	t.Parallel()
	fx := startAdmin(t)
	code, _, errs := run(t, map[string]string{"SHOAL_ADMIN_KEY": fx.keyText}, "scaling", "generate-token")
	if code != ExitOK || !strings.Contains(errs, "this token is read-only") || !strings.Contains(errs, "--scopes scaling:read,scaling:write") {
		t.Fatalf("%d %q", code, errs)
	}
	_, _, errs = run(t, map[string]string{"SHOAL_ADMIN_KEY": fx.keyText}, "scaling", "generate-token", "--scopes", "scaling:read,scaling:write")
	if strings.Contains(errs, "read-only") {
		t.Errorf("a read-write token is called read-only: %q", errs)
	}
}

func TestHabits_ReachableBanner(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"[::]:3000":      "http://127.0.0.1:3000 (listening on every interface)",
		"0.0.0.0:3000":   "http://127.0.0.1:3000 (listening on every interface)",
		"127.0.0.1:3000": "http://127.0.0.1:3000",
		"[::1]:3000":     "http://[::1]:3000",
	} {
		if got := reachURL(addr) + everywhere(addr); got != want {
			t.Errorf("%s: %q, want %q", addr, got, want)
		}
	}
}

func TestInit_GitIgnore(t *testing.T) {
	t.Parallel()
	t.Run("new directory", func(t *testing.T) {
		dir := t.TempDir()
		code, out, errs := run(t, nil, "init", dir)
		b, _ := os.ReadFile(filepath.Join(dir, ".gitignore"))
		if code != ExitOK || !strings.Contains(string(b), "\n.shoal/\n") || !strings.Contains(out, "wrote "+filepath.Join(dir, ".gitignore")) {
			t.Fatalf("%d %q %q\n.gitignore: %q", code, out, errs, b)
		}
	})
	t.Run("existing .gitignore gets the line once", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("bin/"), 0o644)
		for range 2 {
			if code, _, errs := run(t, nil, "init", dir, "--force"); code != ExitOK {
				t.Fatal(errs)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(dir, ".gitignore")); string(b) != "bin/\n.shoal/\n" {
			t.Errorf(".gitignore: %q", b)
		}
	})
}
