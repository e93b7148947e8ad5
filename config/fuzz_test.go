package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/config"
)

// FuzzParse feeds arbitrary documents to the loader: no input may panic or hang, and a
// failure is always a *config.Error or a plain error, never a crash.
// Run it with: go test ./config -run '^$' -fuzz FuzzParse -fuzztime 5m
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/invalid/*.yml")
	seeds = append(seeds, "../testdata/rustform.yml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b, "production")
		}
	}
	f.Add([]byte("a: &a [*a, *a]\nb: &b [*a, *a]\nc: [*b, *b]\n"), "")
	f.Add([]byte("name: ${X:-${Y}}\nscaling: {instances: {min_instances: 0x10}}\n"), "")
	f.Add(config.Starter("x"), "development")
	f.Add([]byte("name: x\nv: &v \""+strings.Repeat("y", 4096)+"\"\nhealth: {checks: [*v, *v, *v, *v]}\n"), "")
	f.Add([]byte("name: x\napp: {env: {A: &a \"${SET}\", B: *a}, command: [*a]}\n"), "")
	lookup := func(k string) (string, bool) {
		if k == "SET" {
			return "3000", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte, env string) {
		c, err := config.Parse(data, "fuzz.yml", config.Options{Env: env, LookupEnv: lookup})
		if err == nil {
			_ = c.Redacted()
		} else if n := len(err.Error()); n > 64<<10+2*len(data) {
			t.Fatalf("a %d-byte document made a %d-byte error", len(data), n)
		}
		_, _ = config.ParseAll(data, "fuzz.yml", config.Options{LookupEnv: lookup})
	})
}
