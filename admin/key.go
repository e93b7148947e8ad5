package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/shoal-sh/shoal/config"
)

// Key locations and size.
const (
	// KeyEnv names the environment variable holding the signing key, hex or base64.
	KeyEnv = "SHOAL_ADMIN_KEY"
	// KeyFileName is the key file in the state directory, created on first use.
	KeyFileName = "admin.key"
	// MinKeyBytes is the shortest key accepted: HS256 wants at least the hash size.
	MinKeyBytes = 32
)

// Key is the secret that signs and verifies admin tokens with HMAC-SHA256. Its zero value
// verifies nothing. It never prints its bytes: %v, %s and %#v show where it came from.
type Key struct {
	secret []byte
	source string
}

// NewKey returns a key of secret, which must be at least MinKeyBytes long. The key keeps
// its own copy.
func NewKey(secret []byte) (Key, error) {
	if len(secret) < MinKeyBytes {
		return Key{}, fmt.Errorf("an admin key needs at least %d bytes, this one has %d", MinKeyBytes, len(secret))
	}
	return Key{secret: append([]byte(nil), secret...), source: "a key given in code"}, nil
}

// GenerateKey returns a new random key of MinKeyBytes.
func GenerateKey() Key {
	b := make([]byte, MinKeyBytes)
	rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return Key{secret: b, source: "a generated key"}
}

// ParseKey reads a key written in hex or base64 (standard or URL alphabet, padded or not), as
// SHOAL_ADMIN_KEY and the key file hold it. `openssl rand -hex 32` makes one.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Key{}, errors.New("the admin key is empty")
	}
	b, ok := decodeSecret(s)
	if !ok {
		return Key{}, errors.New("the admin key is neither hex nor base64; create one with `openssl rand -hex 32`")
	}
	if len(b) < MinKeyBytes {
		return Key{}, fmt.Errorf("the admin key decodes to %d bytes but needs at least %d; create one with `openssl rand -hex 32`", len(b), MinKeyBytes)
	}
	return Key{secret: b, source: "a parsed key"}, nil
}

// decodeSecret decodes hex (preferred when the text is all hex digits) or base64.
func decodeSecret(s string) ([]byte, bool) {
	if len(s)%2 == 0 && strings.Trim(s, "0123456789abcdefABCDEF") == "" {
		b, err := hex.DecodeString(s)
		return b, err == nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// IsZero reports whether k holds no secret.
func (k Key) IsZero() bool { return len(k.secret) == 0 }

// Source says where the key came from, e.g. "SHOAL_ADMIN_KEY" or ".shoal/admin.key".
func (k Key) Source() string { return k.source }

// ID is a short public fingerprint of the key (the first 8 bytes of its SHA-256, in hex).
// Tokens carry it as their kid header so a server can tell "signed with another key" from
// "tampered"; it reveals nothing usable about the secret.
func (k Key) ID() string {
	if k.IsZero() {
		return ""
	}
	sum := sha256.Sum256(k.secret)
	return hex.EncodeToString(sum[:8])
}

// String names the key without its secret.
func (k Key) String() string {
	if k.IsZero() {
		return "no admin key"
	}
	return "admin key " + k.ID() + " from " + k.source
}

// GoString is String, so that %#v does not print the secret either.
func (k Key) GoString() string { return k.String() }

// StateDir returns the configuration's admin.state_dir, relative to the directory of the
// configuration file unless absolute.
func StateDir(c *config.Config) string {
	if filepath.IsAbs(c.Admin.StateDir) {
		return c.Admin.StateDir
	}
	return filepath.Join(c.Meta.Dir, c.Admin.StateDir)
}

// LoadKey returns the signing key: SHOAL_ADMIN_KEY when it is set and not empty (looked up
// with lookupEnv, os.LookupEnv when nil), else the key in stateDir/admin.key, which is created
// with 0600 permissions (and stateDir with 0700) on first use. Processes racing to create the
// file all end up with the same key. A key file that other users can read is refused.
func LoadKey(stateDir string, lookupEnv func(string) (string, bool)) (Key, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if v, ok := lookupEnv(KeyEnv); ok && strings.TrimSpace(v) != "" {
		k, err := ParseKey(v)
		if err != nil {
			return Key{}, fmt.Errorf("%s: %w", KeyEnv, err)
		}
		k.source = KeyEnv
		return k, nil
	}
	if stateDir == "" {
		return Key{}, fmt.Errorf("no admin key: set %s or give a configuration whose admin.state_dir keeps %s", KeyEnv, KeyFileName)
	}
	path := filepath.Join(stateDir, KeyFileName)
	k, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err = createKeyFile(stateDir, path)
	}
	return k, err
}

func readKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("reading the admin key: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return Key{}, fmt.Errorf("the admin key %s can be read by other users (mode %04o); run `chmod 600 %s`", path, fi.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return Key{}, fmt.Errorf("reading the admin key %s: %w", path, err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return Key{}, fmt.Errorf("%s does not hold a usable key (%w); delete it to create a new one, which invalidates every token signed with it", path, err)
	}
	k.source = path
	return k, nil
}

// createKeyFile writes a new key to a temporary file and links it into place, so that no
// reader ever sees a partial key and a concurrent creator's key wins without being overwritten.
func createKeyFile(dir, path string) (Key, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Key{}, fmt.Errorf("creating the state directory for the admin key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".admin.key-*")
	if err != nil {
		return Key{}, fmt.Errorf("creating the admin key: %w", err)
	}
	defer os.Remove(tmp.Name())
	k := GenerateKey()
	_, err = tmp.WriteString(hex.EncodeToString(k.secret) + "\n")
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Key{}, fmt.Errorf("writing the admin key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKeyFile(path)
		}
		return Key{}, fmt.Errorf("creating the admin key %s: %w", path, err)
	}
	k.source = path
	return k, nil
}
