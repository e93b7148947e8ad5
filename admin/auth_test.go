package admin

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// sign signs claims with method and secret, bypassing IssueToken's checks, to forge tokens.
func sign(t *testing.T, method jwt.SigningMethod, secret any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestServer_Auth covers every way a bearer token is refused, over real HTTP.
func TestServer_Auth(t *testing.T) {
	t.Parallel()
	_, fx := setup(t, ServerOptions{})
	valid := fx.token(t, ScopeRead)
	parts := strings.Split(valid, ".")
	exp := jwt.NewNumericDate(fx.now.Add(time.Hour))

	// A signature byte flipped; a payload changed to claim write access under the old signature.
	sig := []byte(parts[2])
	sig[3] = map[bool]byte{true: 'B', false: 'A'}[sig[3] == 'A'] // a middle character: still canonical base64url
	tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)
	raw, _ := base64.RawURLEncoding.DecodeString(parts[2])
	truncated := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(raw[:len(raw)-4])
	tamperedPayload := parts[0] + "." + b64(`{"scope":"scaling:read scaling:write","sub":"shoal-admin","exp":9999999999}`) + "." + parts[2]

	noneToken := b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(`{"scope":"scaling:read","exp":9999999999}`) + "."
	noneUpper := b64(`{"alg":"NONE","typ":"JWT"}`) + "." + b64(`{"scope":"scaling:read","exp":9999999999}`) + "."
	hs512 := sign(t, jwt.SigningMethodHS512, fx.key.secret, Claims{Scope: Scopes{ScopeRead}, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp}})
	// Alg confusion: an RS256 header with an HMAC made from the server key, as if the key were
	// an RSA public key handed to the verifier.
	hmacPart := strings.Split(sign(t, jwt.SigningMethodHS256, fx.key.secret, Claims{Scope: Scopes{ScopeRead}, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp}}), ".")
	rs256 := b64(`{"alg":"RS256","typ":"JWT"}`) + "." + hmacPart[1] + "." + hmacPart[2]
	noAlg := b64(`{"typ":"JWT"}`) + "." + hmacPart[1] + "." + hmacPart[2]

	otherKey := GenerateKey()
	wrongKey, _, err := IssueToken(otherKey, TokenOptions{Scopes: []string{ScopeRead}, TTL: time.Hour, Now: func() time.Time { return fx.now }})
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := IssueToken(fx.key, TokenOptions{Scopes: []string{ScopeRead}, TTL: 7 * 24 * time.Hour,
		Now: func() time.Time { return fx.now.Add(-8 * 24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	noExp := sign(t, jwt.SigningMethodHS256, fx.key.secret, Claims{Scope: Scopes{ScopeRead}})
	notYet := sign(t, jwt.SigningMethodHS256, fx.key.secret, Claims{Scope: Scopes{ScopeRead},
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp, NotBefore: jwt.NewNumericDate(fx.now.Add(time.Minute))}})

	cases := []struct {
		name, auth string
		code, msg  string
	}{
		{"missing", "", CodeMissingToken, "no admin token; send `Authorization: Bearer <token>`"},
		{"basic scheme", "Basic dXNlcjpwYXNz", CodeMalformedToken, "must be `Bearer <token>`"},
		{"bearer without token", "Bearer ", CodeMalformedToken, "holds no token"},
		{"not a JWT", "Bearer hello", CodeMalformedToken, "not a well-formed JWT"},
		{"bad base64", "Bearer a.b!.c", CodeMalformedToken, "not a well-formed JWT"},
		{"huge", "Bearer " + strings.Repeat("a", 5000), CodeMalformedToken, "longer than 4096 bytes"},
		{"tampered signature", "Bearer " + tamperedSig, CodeInvalidSignature, "altered or truncated"},
		{"tampered payload", "Bearer " + tamperedPayload, CodeInvalidSignature, "altered or truncated"},
		{"truncated signature", "Bearer " + truncated, CodeInvalidSignature, "altered or truncated"},
		{"non-canonical base64", "Bearer " + parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + "_", CodeMalformedToken, "not a well-formed JWT"},
		{"alg none", "Bearer " + noneToken, CodeUnsupportedAlgorithm, `signed with "none"`},
		{"alg NONE", "Bearer " + noneUpper, CodeUnsupportedAlgorithm, `signed with "NONE"`},
		{"alg HS512", "Bearer " + hs512, CodeUnsupportedAlgorithm, `signed with "HS512"`},
		{"alg RS256 confusion", "Bearer " + rs256, CodeUnsupportedAlgorithm, `signed with "RS256"`},
		{"no alg", "Bearer " + noAlg, CodeMalformedToken, "names no algorithm"},
		{"wrong key", "Bearer " + wrongKey, CodeInvalidSignature, "signed with a different key"},
		{"expired", "Bearer " + expired, CodeExpiredToken, "has expired (at 2025-05-31T12:00:00Z)"},
		{"no exp", "Bearer " + noExp, CodeInvalidToken, "has no expiry"},
		{"not valid yet", "Bearer " + notYet, CodeInvalidToken, "not valid yet"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			status, h, body := fx.call(t, "GET", "/v1/status", c.auth, "")
			wantError(t, status, h, body, http.StatusUnauthorized, c.code, c.msg)
			www := h.Get("WWW-Authenticate")
			if !strings.HasPrefix(www, `Bearer realm="shoal-admin"`) {
				t.Errorf("WWW-Authenticate %q", www)
			}
			if c.code == CodeMissingToken {
				if strings.Contains(www, "error=") || !strings.Contains(www, `scope="scaling:read"`) {
					t.Errorf("a missing token gets a challenge without an error code: %q", www)
				}
			} else if !strings.Contains(www, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q", www)
			}
		})
	}
	t.Run("two Authorization headers", func(t *testing.T) {
		t.Parallel()
		req, _ := http.NewRequest("GET", fx.url+"/v1/status", nil)
		req.Header.Add("Authorization", "Bearer "+valid)
		req.Header.Add("Authorization", "Bearer "+valid)
		resp, err := fx.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		t.Parallel()
		if status, _, body := fx.call(t, "GET", "/v1/status", "bearer "+valid, ""); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
	})
	t.Run("scope list form", func(t *testing.T) {
		t.Parallel()
		type listClaims struct {
			Scope []string `json:"scope"`
			jwt.RegisteredClaims
		}
		tok := sign(t, jwt.SigningMethodHS256, fx.key.secret, listClaims{Scope: []string{ScopeRead}, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp}})
		if status, _, body := fx.call(t, "GET", "/v1/status", "Bearer "+tok, ""); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
	})
}

// TestServer_Scopes checks that reads need scaling:read and changes scaling:write, and that
// neither implies the other.
func TestServer_Scopes(t *testing.T) {
	t.Parallel()
	_, fx := setup(t, ServerOptions{Metrics: http.NotFoundHandler()})
	tokens := map[string]string{
		"read":  fx.token(t, ScopeRead),
		"write": fx.token(t, ScopeWrite),
		"both":  fx.token(t, ScopeRead, ScopeWrite),
	}
	none := sign(t, jwt.SigningMethodHS256, fx.key.secret, Claims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(fx.now.Add(time.Hour))}})
	endpoints := []struct {
		method, path, body, scope string
	}{
		{"GET", "/v1/status", "", ScopeRead},
		{"GET", "/v1/metrics", "", ScopeRead},
		{"GET", "/metrics", "", ScopeRead},
		{"POST", "/v1/scale", `{"instances": 3}`, ScopeWrite},
		{"POST", "/v1/restart", "", ScopeWrite},
		{"POST", "/v1/health-checks/cache", `{"enabled": true}`, ScopeWrite},
	}
	for _, e := range endpoints {
		for name, tok := range tokens {
			granted := name == "both" || (name == "read") == (e.scope == ScopeRead)
			status, h, body := fx.call(t, e.method, e.path, "Bearer "+tok, e.body)
			if granted {
				if status == 401 || status == 403 {
					t.Errorf("%s %s with %s: %d %s", e.method, e.path, name, status, body)
				}
				continue
			}
			wantError(t, status, h, body, http.StatusForbidden, CodeInsufficientScope, "it needs "+e.scope)
			if want := `Bearer realm="shoal-admin", error="insufficient_scope", scope="` + e.scope + `"`; h.Get("WWW-Authenticate") != want {
				t.Errorf("WWW-Authenticate %q, want %q", h.Get("WWW-Authenticate"), want)
			}
		}
		status, h, body := fx.call(t, e.method, e.path, "Bearer "+none, e.body)
		wantError(t, status, h, body, http.StatusForbidden, CodeInsufficientScope, "this token grants no scope")
	}
}
