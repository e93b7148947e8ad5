package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/config"
)

// run executes the command line in-process with a fixed environment.
func run(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	code = a.run(context.Background(), args)
	return code, out.String(), errb.String()
}

const seed = "../../testdata/rustform.yml"

func TestValidate(t *testing.T) {
	t.Parallel()
	t.Run("seed", func(t *testing.T) {
		code, out, errs := run(t, nil, "validate", "-f", seed)
		if code != ExitOK || !strings.Contains(out, "is valid, with environments development, staging, production") || errs != "" {
			t.Fatalf("code %d\nout %s\nerr %s", code, out, errs)
		}
	})
	t.Run("env", func(t *testing.T) {
		code, out, _ := run(t, map[string]string{"SHOAL_ENV": "production"}, "validate", "-f", seed)
		if code != ExitOK || !strings.Contains(out, "valid for environment production: scalable-app, 3-50 instances") {
			t.Fatalf("code %d out %s", code, out)
		}
	})
	t.Run("invalid exits 2 with every problem", func(t *testing.T) {
		code, out, errs := run(t, nil, "validate", "-f", "../../testdata/invalid/thresholds_out_of_range.yml")
		if code != ExitInvalid || out != "" {
			t.Fatalf("code %d out %q", code, out)
		}
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if len(lines) != 6 || !strings.HasPrefix(lines[0], "../../testdata/invalid/thresholds_out_of_range.yml:4:29: scaling.instances.target_cpu_utilization: ") ||
			lines[5] != "shoal: the configuration is invalid (5 problems); fix the lines above" {
			t.Fatalf("stderr:\n%s", errs)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		code, _, errs := run(t, nil, "validate", "-f", "nope.yml")
		if code != ExitFailure || errs != "shoal: config file nope.yml does not exist; pass -f FILE or run `shoal init`\n" {
			t.Fatalf("code %d err %q", code, errs)
		}
	})
	t.Run("bad flag exits 2", func(t *testing.T) {
		code, _, errs := run(t, nil, "validate", "--bogus")
		if code != ExitInvalid || !strings.Contains(errs, "unknown flag --bogus") || strings.Contains(errs, "goroutine") {
			t.Fatalf("code %d err %q", code, errs)
		}
	})
}

func TestConfigPrint(t *testing.T) {
	t.Parallel()
	code, out, errs := run(t, map[string]string{"CONSUL_TOKEN": "hunter2"}, "config", "print", "-f", seed, "--env", "production")
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errs)
	}
	for _, want := range []string{"min_instances: 3\n", "max_instances: 50\n", "token: '[redacted]'", "interval: 30s"} {
		if !strings.Contains(out, want) {
			t.Errorf("config print lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "environments:") {
		t.Errorf("config print leaked a secret or the overlays:\n%s", out)
	}
	code, out, _ = run(t, nil, "config", "print", "-f", seed, "-o", "json")
	var c map[string]any
	if code != ExitOK || json.Unmarshal([]byte(out), &c) != nil || c["name"] != "scalable-app" {
		t.Fatalf("json output: code %d %s", code, out)
	}
	if code, _, errs := run(t, nil, "config", "print", "-f", seed, "-o", "toml"); code != ExitInvalid || !strings.Contains(errs, `-o "toml" is not a format`) {
		t.Errorf("bad -o: code %d %s", code, errs)
	}
	// A value from the environment is never printed, whatever its name, unless asked for.
	dir := t.TempDir()
	path := filepath.Join(dir, "shoal.yml")
	os.WriteFile(path, []byte("name: shop\napp:\n  env: {DSN: \"${DSN}\"}\n"), 0o600)
	vars := map[string]string{"DSN": "postgres://app:hunter2@db/shop"}
	code, out, _ = run(t, vars, "config", "print", "-f", path)
	if code != ExitOK || strings.Contains(out, "hunter2") || !strings.Contains(out, "DSN: ${DSN}") {
		t.Errorf("an interpolated DSN: code %d\n%s", code, out)
	}
	code, out, _ = run(t, vars, "config", "print", "-f", path, "--show-secrets")
	if code != ExitOK || !strings.Contains(out, "hunter2") {
		t.Errorf("--show-secrets: code %d\n%s", code, out)
	}
}

func TestConfigSchema(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, nil, "config", "schema")
	var s map[string]any
	if code != ExitOK || json.Unmarshal([]byte(out), &s) != nil || s["$id"] != config.SchemaID {
		t.Fatalf("code %d, not the schema: %.200s", code, out)
	}
}

func TestInit(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "Billing API")
	code, out, errs := run(t, nil, "init", dir)
	if code != ExitOK || !strings.Contains(out, `for service "billing-api"`) {
		t.Fatalf("code %d out %s err %s", code, out, errs)
	}
	if code, _, errs := run(t, nil, "validate", "-f", filepath.Join(dir, "shoal.yml")); code != ExitOK {
		t.Fatalf("the starter must validate: %s", errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "shoal.schema.json")); err != nil {
		t.Errorf("init must write the schema for the editor: %v", err)
	}
	if code, _, errs := run(t, nil, "init", dir); code != ExitFailure || !strings.Contains(errs, "already exists; pass --force") {
		t.Errorf("init must not overwrite: code %d %s", code, errs)
	}
	if code, _, _ := run(t, nil, "init", dir, "--force"); code != ExitOK {
		t.Errorf("--force must overwrite")
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, nil, "version")
	if code != ExitOK || !strings.HasPrefix(out, "shoal ") {
		t.Fatalf("code %d out %q", code, out)
	}
}
