package admin

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRevocations_ReadAndReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := NewRevocations(dir)
	if revoked, err := r.Revoked("a1", now); revoked || err != nil {
		t.Fatalf("no list yet: %v, %v", revoked, err)
	}
	added, err := RevokeToken(dir, "a1", "leaked\nin a  log", now)
	if err != nil || !added {
		t.Fatalf("RevokeToken: %v, %v", added, err)
	}
	if added, err := RevokeToken(dir, "a1", "", now); err != nil || added {
		t.Fatalf("revoking twice: %v, %v; want no change", added, err)
	}
	fi, err := os.Stat(filepath.Join(dir, RevokedFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the list's permissions: %v, %v; want 0600", fi.Mode(), err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, RevokedFileName))
	if string(b) != "a1 # revoked 2026-01-01T00:00:00Z: leaked in a log\n" {
		t.Fatalf("the list reads %q", b)
	}
	// Checked at most once a second: the change shows up at the next check.
	if revoked, _ := r.Revoked("a1", now.Add(500*time.Millisecond)); revoked {
		t.Fatal("the list was read again before a second passed")
	}
	if revoked, err := r.Revoked("a1", now.Add(time.Second)); !revoked || err != nil {
		t.Fatalf("a1 after a second: %v, %v; want revoked", revoked, err)
	}
	if revoked, _ := r.Revoked("b2", now.Add(time.Second)); revoked {
		t.Fatal("b2 is revoked but was never listed")
	}
	// Edited by hand: comments, blank lines, a last line without a newline.
	list := "# tokens we stopped trusting\n\n  a1   # the first\nb2# no space\nc3"
	if err := os.WriteFile(filepath.Join(dir, RevokedFileName), []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a1", "b2", "c3"} {
		if revoked, err := r.Revoked(id, now.Add(3*time.Second)); !revoked || err != nil {
			t.Errorf("%s: %v, %v; want revoked", id, revoked, err)
		}
	}
	if revoked, _ := r.Revoked("#", now.Add(3*time.Second)); revoked {
		t.Error("a comment was taken for an ID")
	}
	if added, err := RevokeToken(dir, "d4", "", now); err != nil || !added {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, RevokedFileName)); !strings.HasSuffix(string(b), "c3\nd4 # revoked 2026-01-01T00:00:00Z\n") {
		t.Fatalf("appending after a last line without a newline gave %q", b)
	}
	// Removed: nothing is revoked any more.
	os.Remove(filepath.Join(dir, RevokedFileName))
	if revoked, err := r.Revoked("a1", now.Add(5*time.Second)); revoked || err != nil {
		t.Fatalf("after the list was removed: %v, %v", revoked, err)
	}
}

// A list that cannot be read refuses every token: what it revokes is unknown.
func TestRevocations_UnreadableFailsClosed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, RevokedFileName), 0o700); err != nil { // a directory: reading it fails
		t.Fatal(err)
	}
	_, err := NewRevocations(dir).Revoked("a1", time.Now())
	if err == nil || !strings.Contains(err.Error(), "no admin token is accepted") {
		t.Fatalf("got %v; want an error that says every token is refused", err)
	}
}

func TestRevokeToken_RefusesNonIDs(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"", "a b", "a#b", "a\nb"} {
		if _, err := RevokeToken(t.TempDir(), id, "", time.Now()); !errors.Is(err, ErrBadTokenID) {
			t.Errorf("RevokeToken(%q): %v; want ErrBadTokenID", id, err)
		}
	}
}

// Over HTTP: a revoked token gets 401 revoked_token; another token of the same key still works.
func TestServer_RevokedToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, fx := setup(t, ServerOptions{Revocations: NewRevocations(dir)})
	revokedTok, claims, err := IssueToken(fx.key, TokenOptions{Scopes: []string{ScopeRead}, TTL: time.Hour, Subject: "ci",
		Now: func() time.Time { return fx.now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RevokeToken(dir, claims.ID, "leaked", fx.now); err != nil {
		t.Fatal(err)
	}
	status, h, body := fx.call(t, "GET", "/v1/status", "Bearer "+revokedTok, "")
	wantError(t, status, h, body, http.StatusUnauthorized, CodeRevokedToken, "was revoked")
	if !strings.Contains(body, claims.ID) || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("the refusal should name the token and challenge: %s %q", body, h.Get("WWW-Authenticate"))
	}
	if status, _, body := fx.call(t, "GET", "/v1/status", "Bearer "+fx.token(t, ScopeRead), ""); status != 200 {
		t.Fatalf("another token: %d %s", status, body)
	}
}
