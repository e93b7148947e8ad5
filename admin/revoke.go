package admin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// RevokedFileName is the list of revoked token IDs in the state directory, next to the key.
const RevokedFileName = "revoked-tokens"

var (
	// ErrTokenRevoked is returned for a token whose ID is on the revocation list.
	ErrTokenRevoked = errors.New("the admin token was revoked")
	// ErrBadTokenID is returned by RevokeToken for text that cannot be a token ID.
	ErrBadTokenID = errors.New("not a token ID")
)

// revocationRecheck is how often the list is looked at again: a revocation takes effect
// within this time, and a busy admin server reads the file's metadata at most this often.
const revocationRecheck = time.Second

// Revocations is a revocation list: a file with one token ID per line, as `shoal scaling
// revoke-token` writes it. Text after a # is a comment; blank lines are ignored. The file is
// read again when it changes. A missing file revokes nothing; a file that cannot be read
// refuses every token, since what it revokes is unknown.
type Revocations struct {
	path string

	mu      sync.Mutex
	checked time.Time // when the file's metadata was last looked at
	stamp   fileStamp // the file as last read
	ids     map[string]bool
	err     error // why the file could not be read
}

type fileStamp struct {
	mod  time.Time
	size int64
	ok   bool // the file existed
}

// NewRevocations returns the revocation list of the state directory dir.
func NewRevocations(dir string) *Revocations {
	return &Revocations{path: filepath.Join(dir, RevokedFileName)}
}

// Revoked reports whether the token id is revoked at the time now, or why that cannot be told.
func (r *Revocations) Revoked(id string, now time.Time) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checked.IsZero() || now.Sub(r.checked) >= revocationRecheck || now.Before(r.checked) {
		r.checked = now
		r.reload()
	}
	if r.err != nil {
		return false, r.err
	}
	return r.ids[id], nil
}

// reload reads the file again if it changed.
func (r *Revocations) reload() {
	fi, err := os.Stat(r.path)
	var stamp fileStamp
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		r.err = fmt.Errorf("the revocation list %s cannot be read (%w), so no admin token is accepted; fix its permissions or remove it", r.path, err)
		return
	default:
		stamp = fileStamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
	}
	if stamp == r.stamp && r.err == nil && r.ids != nil {
		return
	}
	ids := map[string]bool{}
	if stamp.ok {
		b, err := os.ReadFile(r.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.err = fmt.Errorf("the revocation list %s cannot be read (%w), so no admin token is accepted; fix its permissions or remove it", r.path, err)
			return
		}
		ids = parseRevocations(b)
	}
	r.stamp, r.ids, r.err = stamp, ids, nil
}

// parseRevocations reads the IDs of a revocation list.
func parseRevocations(b []byte) map[string]bool {
	ids := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if f := strings.Fields(line); len(f) > 0 {
			ids[f[0]] = true
		}
	}
	return ids
}

// RevokeToken adds id to the revocation list of the state directory dir, with reason as its
// comment, and reports whether it was not there yet. The file is created with 0600
// permissions.
func RevokeToken(dir, id, reason string, now time.Time) (added bool, err error) {
	if id == "" || strings.ContainsAny(id, " \t\r\n#") {
		return false, fmt.Errorf("%w: %q; `shoal scaling generate-token` prints the ID of each token it makes (\"id …\")", ErrBadTokenID, id)
	}
	path := filepath.Join(dir, RevokedFileName)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reading the revocation list: %w", err)
	}
	if parseRevocations(b)[id] {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("creating the state directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return false, fmt.Errorf("opening the revocation list: %w", err)
	}
	line := id + " # revoked " + now.UTC().Format(time.RFC3339)
	if reason = strings.Join(strings.Fields(reason), " "); reason != "" {
		line += ": " + reason
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		line = "\n" + line
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return false, fmt.Errorf("writing the revocation list: %w", err)
	}
	return true, f.Close()
}
