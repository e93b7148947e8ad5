package admin

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-sh/shoal/config"
)

func noEnv(string) (string, bool) { return "", false }

func env(k, v string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if name == k {
			return v, true
		}
		return "", false
	}
}

func TestLoadKey_File(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state", ".shoal")
	k, err := LoadKey(dir, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFileName)
	if k.Source() != path || len(k.secret) != MinKeyBytes {
		t.Fatalf("source %q, %d bytes", k.Source(), len(k.secret))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
		}
		if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
			t.Errorf("state dir mode %04o, want 0700", di.Mode().Perm())
		}
	}
	again, err := LoadKey(dir, noEnv)
	if err != nil || again.ID() != k.ID() {
		t.Fatalf("the key must be reused: %v %v", again, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left temporary files behind: %v", entries)
	}
}

func TestLoadKey_Concurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			k, err := LoadKey(dir, noEnv)
			if err != nil {
				t.Error(err)
			}
			ids[i] = k.ID()
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("racing creators got different keys: %v", ids)
		}
	}
}

func TestLoadKey_Env(t *testing.T) {
	t.Parallel()
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i * 7)
	}
	want, _ := NewKey(secret)
	for name, v := range map[string]string{
		"hex":        hex.EncodeToString(secret),
		"HEX":        strings.ToUpper(hex.EncodeToString(secret)) + "\n",
		"base64":     base64.StdEncoding.EncodeToString(secret),
		"raw base64": base64.RawURLEncoding.EncodeToString(secret),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			k, err := LoadKey(dir, env(KeyEnv, v))
			if err != nil || k.ID() != want.ID() || k.Source() != KeyEnv {
				t.Fatalf("%v %v", k, err)
			}
			if _, err := os.Stat(filepath.Join(dir, KeyFileName)); !os.IsNotExist(err) {
				t.Errorf("SHOAL_ADMIN_KEY must not create a key file: %v", err)
			}
		})
	}
	t.Run("empty means unset", func(t *testing.T) {
		dir := t.TempDir()
		if k, err := LoadKey(dir, env(KeyEnv, "  ")); err != nil || k.Source() != filepath.Join(dir, KeyFileName) {
			t.Fatalf("%v %v", k, err)
		}
	})
	for name, tc := range map[string]struct{ v, msg string }{
		"short":    {hex.EncodeToString(secret[:16]), "SHOAL_ADMIN_KEY: the admin key decodes to 16 bytes but needs at least 32"},
		"not text": {"correct horse battery staple!", "SHOAL_ADMIN_KEY: the admin key is neither hex nor base64"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := LoadKey(t.TempDir(), env(KeyEnv, tc.v)); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("%v, want %q", err, tc.msg)
			}
		})
	}
	t.Run("no state dir", func(t *testing.T) {
		if _, err := LoadKey("", noEnv); err == nil || !strings.Contains(err.Error(), "set SHOAL_ADMIN_KEY") {
			t.Fatal(err)
		}
	})
}

func TestLoadKey_BadFile(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("permissions are Unix modes")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFileName)
	os.WriteFile(path, []byte(strings.Repeat("ab", 32)), 0o644)
	os.Chmod(path, 0o644)
	if _, err := LoadKey(dir, noEnv); err == nil || !strings.Contains(err.Error(), "can be read by other users (mode 0644); run `chmod 600") {
		t.Fatalf("%v", err)
	}
	os.Chmod(path, 0o600)
	if k, err := LoadKey(dir, noEnv); err != nil || k.Source() != path {
		t.Fatalf("%v %v", k, err)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := LoadKey(dir, noEnv); err == nil || !strings.Contains(err.Error(), "does not hold a usable key") {
		t.Fatalf("%v", err)
	}
}

func TestKey_NeverPrintsSecret(t *testing.T) {
	t.Parallel()
	k := GenerateKey()
	secret := hex.EncodeToString(k.secret)
	out := fmt.Sprintf("%v %s %+v %#v %x %q", k, k, k, k, k, k)
	for _, leak := range []string{secret, secret[:16], fmt.Sprint(k.secret)} {
		if strings.Contains(out, leak) {
			t.Fatalf("printed the secret: %s", out)
		}
	}
	if !strings.Contains(out, k.ID()) {
		t.Errorf("the key's ID identifies it: %s", out)
	}
	if _, err := NewKey(make([]byte, 31)); err == nil {
		t.Error("a 31-byte key must be refused")
	}
}

func TestStateDir(t *testing.T) {
	t.Parallel()
	c := &config.Config{Admin: config.Admin{StateDir: ".shoal"}, Meta: config.Meta{Dir: filepath.Join("srv", "app")}}
	if got := StateDir(c); got != filepath.Join("srv", "app", ".shoal") {
		t.Errorf("relative: %s", got)
	}
	abs := filepath.Join(t.TempDir(), "state")
	c.Admin.StateDir = abs
	if got := StateDir(c); got != abs {
		t.Errorf("absolute: %s", got)
	}
}
