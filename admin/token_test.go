package admin

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseScopes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"scaling:read,scaling:write":      {ScopeRead, ScopeWrite},
		" scaling:write  scaling:read ":   {ScopeWrite, ScopeRead},
		"scaling:read, scaling:read,":     {ScopeRead},
		"scaling:write\tscaling:write\n ": {ScopeWrite},
	} {
		got, err := ParseScopes(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseScopes(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"":                        "no scopes given",
		" , ":                     "no scopes given",
		"scaling:read,admin":      `unknown scope "admin"; the scopes are scaling:read and scaling:write`,
		"scaling:read:write":      `unknown scope "scaling:read:write"`,
		"SCALING:READ":            `unknown scope "SCALING:READ"`,
		"scaling:read;scaling:wr": `unknown scope "scaling:read;scaling:wr"`,
	} {
		if _, err := ParseScopes(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseScopes(%q) = %v, want %q", in, err, msg)
		}
	}
}

func TestIssueToken(t *testing.T) {
	t.Parallel()
	key := GenerateKey()
	now := time.Date(2025, 6, 1, 12, 0, 0, 500, time.UTC)
	clock := func() time.Time { return now }
	tok, claims, err := IssueToken(key, TokenOptions{Scopes: []string{ScopeRead, ScopeWrite}, TTL: 7 * 24 * time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != DefaultSubject || len(claims.ID) != 32 || !claims.IssuedAt.Equal(now.Truncate(time.Second)) ||
		!claims.ExpiresAt.Equal(now.Truncate(time.Second).Add(7*24*time.Hour)) {
		t.Errorf("claims %+v", claims)
	}
	parts := strings.Split(tok, ".")
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var h map[string]any
	var p map[string]any
	if json.Unmarshal(header, &h) != nil || json.Unmarshal(payload, &p) != nil {
		t.Fatalf("not a JWT: %s", tok)
	}
	if h["alg"] != "HS256" || h["kid"] != key.ID() || h["typ"] != "JWT" {
		t.Errorf("header %v", h)
	}
	if p["scope"] != "scaling:read scaling:write" || p["sub"] != "shoal-admin" || p["jti"] == nil || p["iat"] == nil || p["exp"] == nil {
		t.Errorf("payload %v", p)
	}
	got, err := VerifyToken(key, tok, now.Add(time.Hour))
	if err != nil || !got.Has(ScopeRead) || !got.Has(ScopeWrite) || got.ID != claims.ID {
		t.Fatalf("verify: %+v %v", got, err)
	}
	if _, err := VerifyToken(key, tok, now.Add(8*24*time.Hour)); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("a week and a day later: %v", err)
	}
	other, _, _ := IssueToken(key, TokenOptions{Scopes: []string{ScopeRead}, TTL: time.Hour, Now: clock, Subject: "ci-bot"})
	if c, err := VerifyToken(key, other, now); err != nil || c.Subject != "ci-bot" || c.ID == claims.ID {
		t.Errorf("subject or jti: %+v %v", c, err)
	}

	for name, tc := range map[string]struct {
		key  Key
		opts TokenOptions
		msg  string
	}{
		"no key":         {Key{}, TokenOptions{Scopes: []string{ScopeRead}, TTL: time.Hour}, "no admin key"},
		"no scope":       {key, TokenOptions{TTL: time.Hour}, "at least one scope"},
		"unknown scope":  {key, TokenOptions{Scopes: []string{"root"}, TTL: time.Hour}, `unknown scope "root"`},
		"no expiry":      {key, TokenOptions{Scopes: []string{ScopeRead}}, "a token must expire"},
		"negative":       {key, TokenOptions{Scopes: []string{ScopeRead}, TTL: -time.Hour}, "above zero, not -1h0m0s"},
		"control in sub": {key, TokenOptions{Scopes: []string{ScopeRead}, TTL: time.Hour, Subject: "a\nb"}, "control characters"},
	} {
		if _, _, err := IssueToken(tc.key, tc.opts); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %q", name, err, tc.msg)
		}
	}
}

func TestVerifyToken_Errors(t *testing.T) {
	t.Parallel()
	key := GenerateKey()
	now := time.Now()
	tok, _, _ := IssueToken(key, TokenOptions{Scopes: []string{ScopeRead}, TTL: time.Hour})
	for name, tc := range map[string]struct {
		key   Key
		token string
		kind  error
		code  string
	}{
		"empty":    {key, "", ErrTokenMissing, CodeMissingToken},
		"garbage":  {key, "x.y", ErrTokenMalformed, CodeMalformedToken},
		"zero key": {Key{}, tok, ErrTokenSignature, CodeInvalidSignature},
	} {
		_, err := VerifyToken(tc.key, tc.token, now)
		var te *TokenError
		if !errors.Is(err, tc.kind) || !errors.As(err, &te) || te.Code() != tc.code {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestScopes_JSON(t *testing.T) {
	t.Parallel()
	var s Scopes
	for in, want := range map[string]Scopes{
		`"scaling:read scaling:write"`: {ScopeRead, ScopeWrite},
		`["scaling:write"]`:            {ScopeWrite},
		`""`:                           {},
	} {
		if err := json.Unmarshal([]byte(in), &s); err != nil || !slices.Equal(s, want) {
			t.Errorf("%s: %v %v", in, s, err)
		}
	}
	if err := json.Unmarshal([]byte(`42`), &s); err == nil {
		t.Error("a number is not a scope")
	}
	if b, _ := json.Marshal(Scopes{ScopeRead, ScopeWrite}); string(b) != `"scaling:read scaling:write"` {
		t.Errorf("marshal %s", b)
	}
}

// FuzzVerifyToken feeds arbitrary text to the token parser and the Authorization header
// parser: neither may panic, every refusal is a *TokenError, and nothing verifies that was
// not signed with the key.
func FuzzVerifyToken(f *testing.F) {
	key := GenerateKey()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	valid, _, _ := IssueToken(key, TokenOptions{Scopes: []string{ScopeRead}, TTL: time.Hour, Now: func() time.Time { return now }})
	for _, seed := range []string{valid, valid[:len(valid)-1], "", "a.b.c", "..", "Bearer x",
		b64(`{"alg":"none"}`) + "." + b64(`{"exp":9999999999}`) + ".",
		b64(`{"alg":"HS256"}`) + "." + b64(`{"scope":[1,2],"exp":"soon"}`) + ".sig",
		b64(`{"alg":"HS256","kid":{}}`) + "." + b64(`{"scope":null,"exp":1e400}`) + "." + strings.Split(valid, ".")[2]} {
		f.Add(seed)
	}
	s := NewServer(newMemFleet(), ServerOptions{Key: key, Clock: func() time.Time { return now }})
	f.Fuzz(func(t *testing.T, token string) {
		c, err := VerifyToken(key, token, now)
		if err == nil {
			if token != valid && !strings.HasPrefix(token, strings.Join(strings.Split(valid, ".")[:2], ".")) {
				t.Fatalf("verified a token that shoal did not sign: %q (%+v)", token, c)
			}
		} else if !errors.As(err, new(*TokenError)) {
			t.Fatalf("error %T %v is not a *TokenError", err, err)
		}
		req := httptest.NewRequest("GET", "/v1/status", nil)
		req.Header["Authorization"] = []string{token}
		s.authenticate(req)
	})
}
