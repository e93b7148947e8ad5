package deploy

import (
	"bytes"
	"flag"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// fixture is a configuration the tests generate from, and the variables set while loading it.
type fixture struct {
	name, file, env string
	vars            map[string]string
}

// fixtures are the seed sample in each of its environments, and two configurations that use
// what the seed does not.
var fixtures = []fixture{
	{"seed-development", "../testdata/rustform.yml", "development", seedVars},
	{"seed-staging", "../testdata/rustform.yml", "staging", seedVars},
	{"seed-production", "../testdata/rustform.yml", "production", seedVars},
	{"full-production", "testdata/full.yml", "production", map[string]string{
		"DATABASE_URL":   "postgres://orders:pw-4c2f1e@db.prod:5432/orders",
		"DB_PASSWORD":    "pw-4c2f1e",
		"UPSTREAM_TOKEN": "upstream-token-77ab",
	}},
	{"static", "testdata/static.yml", "", nil},
}

// seedVars sets the seed's one variable, which it does not use under kubernetes discovery.
var seedVars = map[string]string{"CONSUL_TOKEN": "consul-token-d0e1a9"}

// load reads a fixture's configuration with its variables as the whole environment.
func load(t testing.TB, fx fixture) *config.Config {
	t.Helper()
	c, err := config.Load(fx.file, config.Options{Env: fx.env, NoDotEnv: true,
		LookupEnv: func(k string) (string, bool) { v, ok := fx.vars[k]; return v, ok }})
	if err != nil {
		t.Fatalf("loading %s: %v", fx.file, err)
	}
	return c
}

// generate runs Generate for a fixture and target.
func generate(t testing.TB, fx fixture, target string) *Output {
	t.Helper()
	out, err := Generate(load(t, fx), target, Options{})
	if err != nil {
		t.Fatalf("%s %s: %v", fx.name, target, err)
	}
	return out
}

// report is the golden text of a target's warnings and notes.
func report(out *Output) []byte {
	var b bytes.Buffer
	for _, w := range out.Warnings {
		b.WriteString("warning: " + w.String() + "\n")
	}
	for _, n := range out.Notes {
		b.WriteString("note: " + n + "\n")
	}
	return b.Bytes()
}

// TestGenerate_Golden compares every generated file, and each target's warnings and notes,
// with testdata/golden/<fixture>/<target>/. `go test ./deploy -update` rewrites them.
func TestGenerate_Golden(t *testing.T) {
	for _, fx := range fixtures {
		for _, target := range Targets {
			out := generate(t, fx, target)
			dir := filepath.Join("testdata", "golden", fx.name, target)
			want := map[string][]byte{target + ".report": report(out)}
			for _, f := range out.Files {
				want[filepath.FromSlash(f.Path)] = f.Data
			}
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				for p, data := range want {
					if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, p), data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, p := range slices.Sorted(maps.Keys(want)) {
				t.Run(fx.name+"/"+target+"/"+filepath.ToSlash(p), func(t *testing.T) {
					got, err := os.ReadFile(filepath.Join(dir, p))
					if err != nil {
						t.Fatalf("%v; run go test ./deploy -update", err)
					}
					if !bytes.Equal(got, want[p]) {
						t.Errorf("%s differs from the golden file; run go test ./deploy -update and review the diff\n%s",
							p, firstDiff(got, want[p]))
					}
				})
			}
			t.Run(fx.name+"/"+target+"/no stale golden files", func(t *testing.T) {
				filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
					if err == nil && !e.IsDir() {
						rel, _ := filepath.Rel(dir, p)
						if _, ok := want[rel]; !ok {
							t.Errorf("%s is no longer generated; run go test ./deploy -update", p)
						}
					}
					return nil
				})
			})
		}
	}
}

// TestGenerate_Deterministic generates every target several times: the files must be
// byte-identical, although Go randomises map iteration on each run.
func TestGenerate_Deterministic(t *testing.T) {
	t.Parallel()
	for _, fx := range fixtures {
		for _, target := range Targets {
			first := generate(t, fx, target)
			for range 5 {
				again := generate(t, fx, target)
				if len(again.Files) != len(first.Files) || !bytes.Equal(report(again), report(first)) {
					t.Fatalf("%s %s: files or warnings differ between runs", fx.name, target)
				}
				for i, f := range again.Files {
					if f.Path != first.Files[i].Path || !bytes.Equal(f.Data, first.Files[i].Data) {
						t.Fatalf("%s %s: %s differs between runs\n%s", fx.name, target, f.Path, firstDiff(first.Files[i].Data, f.Data))
					}
				}
			}
		}
	}
}

// TestGenerate_NeverWritesSecrets checks that no generated file holds the value of a variable
// the configuration read, nor a password written into it.
func TestGenerate_NeverWritesSecrets(t *testing.T) {
	t.Parallel()
	for _, fx := range fixtures {
		leaks := []string{"hunter2"}
		for _, v := range fx.vars {
			leaks = append(leaks, v)
		}
		for _, target := range Targets {
			out := generate(t, fx, target)
			for _, f := range out.Files {
				for _, v := range leaks {
					if bytes.Contains(f.Data, []byte(v)) {
						t.Errorf("%s %s/%s contains the secret %q", fx.name, target, f.Path, v)
					}
				}
				if by, ok := GeneratedBy(f.Data); !ok || by != target {
					t.Errorf("%s %s/%s does not start with the generated-file header", fx.name, target, f.Path)
				}
			}
		}
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n  golden:    " + gl + "\n  generated: " + wl
		}
	}
	return "(same lines)"
}
