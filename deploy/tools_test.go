package deploy

import (
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/shoal-sh/shoal/internal/servicetest"
)

// tool returns the path of a command a test needs: on PATH or in one of dirs. When it is
// missing the test is skipped with how to install it — or fails, when
// SHOAL_TEST_SERVICES=required (CI, whose .ci/run installs it).
func tool(t *testing.T, name, install string, dirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if servicetest.Required() {
		t.Fatalf("%s is required (SHOAL_TEST_SERVICES=required) but not installed; install it with: %s", name, install)
	}
	t.Skipf("%s is not installed; skipping. Install it with: %s — or set SHOAL_TEST_SERVICES=required to make this a failure", name, install)
	return ""
}

// goBins are the directories `go install` writes to.
func goBins() []string {
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, p := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}
	return dirs
}

// writeFiles writes generated files under dir.
func writeFiles(t *testing.T, dir string, files []File) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
