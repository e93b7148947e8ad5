package main

// The README's "Installing shoal, and using its packages from your own service" section, run
// exactly as written: the blocks after each `<!-- readme_test: NAME -->` marker.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/internal/servicetest"
)

// repoRoot is the clone's top directory, where README.md and go.mod are.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

var fence = regexp.MustCompile("(?s)<!-- readme_test: ([^ >]+)[^>]*-->\\s*```[a-z]*\\n(.*?)```")

// readmeBlocks returns the README's marked code blocks by name.
func readmeBlocks(t *testing.T, root string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{}
	for _, m := range fence.FindAllStringSubmatch(string(b), -1) {
		blocks[m[1]] = m[2]
	}
	for _, name := range []string{"install", "replace", "work", "main.go"} {
		if blocks[name] == "" {
			t.Fatalf("README.md has no block marked <!-- readme_test: %s -->", name)
		}
	}
	return blocks
}

// sh runs a README block as a user would paste it, stopping at the first failing command.
func sh(t *testing.T, dir, script string, env ...string) string {
	t.Helper()
	cmd := exec.Command("sh", "-e", "-x", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if offline(out) && !servicetest.Required() {
			t.Skipf("the Go module proxy is unreachable, so the README's commands cannot fetch shoal's dependencies (set SHOAL_TEST_SERVICES=required to fail instead):\n%s", out)
		}
		t.Fatalf("the README's block failed in %s: %v\n%s\n%s", dir, err, script, out)
	}
	return string(out)
}

func offline(out []byte) bool {
	for _, s := range []string{"dial tcp", "no such host", "i/o timeout", "network is unreachable"} {
		if bytes.Contains(out, []byte(s)) {
			return true
		}
	}
	return false
}

func TestREADME_Install(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("links the shoal binary twice; skipped with -short")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	root := repoRoot(t)
	blocks := readmeBlocks(t, root)
	bin := t.TempDir()
	out := sh(t, root, blocks["install"], "GOBIN="+bin, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if !regexp.MustCompile(`(?m)^shoal \S+ \(go1\.`).MatchString(out) || !strings.Contains(out, "installed "+filepath.Join(bin, "shoal")) {
		t.Errorf("shoal version after make install:\n%s", out)
	}
	// make install stamps the version it computed, not "dev".
	v, err := exec.Command(filepath.Join(bin, "shoal"), "--version").Output()
	if err != nil || strings.HasPrefix(string(v), "shoal dev ") {
		t.Errorf("shoal --version after make install: %q %v", v, err)
	}
}

// TestREADME_OutsideModule builds the README's service in a module of its own beside a
// "clone" (a link to this tree), once with a replace and once with a workspace, and checks
// that it answers shoal's probes.
func TestREADME_OutsideModule(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds a service outside the repository twice; skipped with -short")
	}
	root := repoRoot(t)
	blocks := readmeBlocks(t, root)
	for _, way := range []string{"replace", "work"} {
		t.Run(way, func(t *testing.T) {
			t.Parallel()
			top := t.TempDir()
			if err := os.Symlink(root, filepath.Join(top, "shoal")); err != nil {
				t.Fatal(err)
			}
			svc := filepath.Join(top, "myservice")
			if err := os.Mkdir(svc, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(svc, "main.go"), []byte(blocks["main.go"]), 0o644); err != nil {
				t.Fatal(err)
			}
			// GOWORK=off for the replace: a go.work above the temporary directory must not
			// stand in for it.
			gowork := "GOWORK="
			if way == "replace" {
				gowork = "GOWORK=off"
			}
			sh(t, svc, "go mod init example.com/myservice", gowork)
			sh(t, top, blocks[way], gowork)
			if way == "replace" {
				mod, _ := os.ReadFile(filepath.Join(svc, "go.mod"))
				if !strings.Contains(string(mod), "replace github.com/shoal-sh/shoal => ../shoal") ||
					!strings.Contains(string(mod), "github.com/shoal-sh/shoal v0.0.0-00010101000000-000000000000") {
					t.Errorf("go.mod after the README's commands:\n%s", mod)
				}
			}
			probe(t, filepath.Join(svc, "myservice"))
		})
	}
}

// probe starts the built service on a free port and waits for /live, /ready and / to answer.
func probe(t *testing.T, binary string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, binary)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "SHOAL_INSTANCE_ID=myservice-1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel() // kills it
		cmd.Wait()
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for _, path := range []string{"/live", "/ready", "/"} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			res, err := http.Get(base + path)
			if err == nil {
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					if path == "/" && string(body) != "hello from myservice-1\n" {
						t.Errorf("GET /: %q", body)
					}
					break
				}
				err = fmt.Errorf("%s: %s", res.Status, body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v\nservice output:\n%s", path, err, logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
