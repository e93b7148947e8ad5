package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// Scopes a token can carry. scaling:write does not imply scaling:read: a token for a script
// that only scales cannot read the fleet, and a token for a dashboard that only watches cannot
// change it. Give both for a person.
const (
	ScopeRead  = "scaling:read"  // GET /v1/status, GET /v1/metrics, GET /metrics
	ScopeWrite = "scaling:write" // POST /v1/scale, /v1/restart, /v1/health-checks/{name}
)

// KnownScopes returns every scope, in the order help text lists them.
func KnownScopes() []string { return []string{ScopeRead, ScopeWrite} }

// DefaultSubject is the sub claim of a token when TokenOptions.Subject is empty.
const DefaultSubject = "shoal-admin"

// maxTokenBytes bounds the work spent on a bearer token; shoal's tokens are about 300 bytes.
const maxTokenBytes = 4096

// signingMethod is the only algorithm tokens are signed or accepted with.
var signingMethod = jwt.SigningMethodHS256

// Sentinel errors of VerifyToken, matched by errors.Is on the *TokenError it returns.
var (
	// ErrTokenMissing is returned when there is no token at all.
	ErrTokenMissing = errors.New("no admin token")
	// ErrTokenMalformed is returned for text that is not a JWT, or one too large.
	ErrTokenMalformed = errors.New("the admin token is malformed")
	// ErrTokenAlgorithm is returned for a token not signed with HS256, including alg "none".
	ErrTokenAlgorithm = errors.New("the admin token uses an unsupported algorithm")
	// ErrTokenSignature is returned when the signature does not verify: the token was changed,
	// or signed with another key.
	ErrTokenSignature = errors.New("the admin token's signature is invalid")
	// ErrTokenExpired is returned when the token's exp has passed.
	ErrTokenExpired = errors.New("the admin token has expired")
	// ErrTokenInvalid is returned when the claims are unusable: no exp, not valid yet.
	ErrTokenInvalid = errors.New("the admin token's claims are invalid")
)

// TokenError says why a token was refused. Kind is one of the ErrToken sentinels, Reason a
// sentence for people saying what is wrong and how to fix it.
type TokenError struct {
	Kind   error
	Reason string
	Err    error // the underlying error, when there is one
}

func (e *TokenError) Error() string { return e.Reason }

// Is reports whether target is e's Kind.
func (e *TokenError) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying error.
func (e *TokenError) Unwrap() error { return e.Err }

// Code returns the APIError code for e.
func (e *TokenError) Code() string {
	switch e.Kind {
	case ErrTokenMissing:
		return CodeMissingToken
	case ErrTokenMalformed:
		return CodeMalformedToken
	case ErrTokenAlgorithm:
		return CodeUnsupportedAlgorithm
	case ErrTokenSignature:
		return CodeInvalidSignature
	case ErrTokenExpired:
		return CodeExpiredToken
	case ErrTokenRevoked:
		return CodeRevokedToken
	default:
		return CodeInvalidToken
	}
}

// Scopes is the scope claim. It is written as one space-separated string (the OAuth form,
// RFC 8693 §4.2) and read from that or from a JSON list.
type Scopes []string

// MarshalJSON writes the scopes space-separated.
func (s Scopes) MarshalJSON() ([]byte, error) { return json.Marshal(strings.Join(s, " ")) }

// UnmarshalJSON reads a space-separated string or a list of strings.
func (s *Scopes) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = strings.Fields(one)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("scope must be a string or a list of strings")
	}
	*s = list
	return nil
}

// Claims are the claims of an admin token: scope, plus sub, exp, iat and jti.
type Claims struct {
	Scope Scopes `json:"scope"`
	jwt.RegisteredClaims
}

// Has reports whether the token grants scope.
func (c *Claims) Has(scope string) bool { return slices.Contains(c.Scope, scope) }

// ParseScopes reads a comma- or space-separated list of scopes such as
// "scaling:read,scaling:write", refusing unknown ones and dropping repeats.
func ParseScopes(s string) ([]string, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(fields) == 0 {
		return nil, fmt.Errorf("no scopes given; use one or more of %s", strings.Join(KnownScopes(), ", "))
	}
	var out []string
	for _, f := range fields {
		if !slices.Contains(KnownScopes(), f) {
			return nil, fmt.Errorf("unknown scope %q; the scopes are %s", f, strings.Join(KnownScopes(), " and "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// TokenOptions says what IssueToken puts in a token.
type TokenOptions struct {
	// Scopes granted; at least one, each one of KnownScopes.
	Scopes []string
	// Subject is the sub claim, naming who the token is for. Defaults to "shoal-admin".
	Subject string
	// TTL is how long the token is valid. Required, above zero.
	TTL time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// IssueToken returns a JWT signed with key (HS256, with the key's ID as kid) granting
// opts.Scopes, and its claims.
func IssueToken(key Key, opts TokenOptions) (string, Claims, error) {
	if key.IsZero() {
		return "", Claims{}, errors.New("no admin key to sign the token with")
	}
	if len(opts.Scopes) == 0 {
		return "", Claims{}, fmt.Errorf("a token needs at least one scope: %s", strings.Join(KnownScopes(), ", "))
	}
	for _, s := range opts.Scopes {
		if !slices.Contains(KnownScopes(), s) {
			return "", Claims{}, fmt.Errorf("unknown scope %q; the scopes are %s", s, strings.Join(KnownScopes(), " and "))
		}
	}
	if opts.TTL <= 0 {
		return "", Claims{}, fmt.Errorf("a token must expire: the lifetime must be above zero, not %s", opts.TTL)
	}
	sub := strings.TrimSpace(opts.Subject)
	if sub == "" {
		sub = DefaultSubject
	}
	if len(sub) > 128 || strings.ContainsFunc(sub, unicode.IsControl) {
		return "", Claims{}, errors.New("the subject must be at most 128 characters, without control characters")
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	t := now().Truncate(time.Second)
	jti := make([]byte, 16)
	rand.Read(jti) // never fails
	claims := Claims{
		Scope: Scopes(slices.Clone(opts.Scopes)),
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub,
			IssuedAt:  jwt.NewNumericDate(t),
			ExpiresAt: jwt.NewNumericDate(t.Add(opts.TTL)),
			ID:        hex.EncodeToString(jti),
		},
	}
	tok := jwt.NewWithClaims(signingMethod, claims)
	tok.Header["kid"] = key.ID()
	signed, err := tok.SignedString(key.secret)
	if err != nil {
		return "", Claims{}, fmt.Errorf("signing the token: %w", err)
	}
	return signed, claims, nil
}

// VerifyToken checks token against key at the time now and returns its claims. The algorithm
// is pinned to HS256 (alg "none" and every other algorithm are refused before any key is
// used), the signature is compared in constant time, and exp is required. Any failure is a
// *TokenError.
func VerifyToken(key Key, token string, now time.Time) (*Claims, error) {
	if token == "" {
		return nil, &TokenError{Kind: ErrTokenMissing,
			Reason: "no admin token; send `Authorization: Bearer <token>` (create one with `shoal scaling generate-token`)"}
	}
	if len(token) > maxTokenBytes {
		return nil, &TokenError{Kind: ErrTokenMalformed,
			Reason: fmt.Sprintf("the admin token is longer than %d bytes, so it is not one shoal issued; create one with `shoal scaling generate-token`", maxTokenBytes)}
	}
	if key.IsZero() {
		return nil, &TokenError{Kind: ErrTokenSignature, Reason: "this admin server has no signing key, so it accepts no token"}
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{signingMethod.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithStrictDecoding(), // one spelling per token: no non-canonical base64 variants
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var claims Claims
	tok, err := p.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refused other algorithms; pinning the method object here
		// as well means no future option can hand the HMAC key to another verifier.
		if t.Method != signingMethod {
			return nil, ErrTokenAlgorithm
		}
		return key.secret, nil
	})
	if err == nil {
		return &claims, nil
	}
	return nil, classify(key, tok, err)
}

// classify turns the JWT library's error into a TokenError with advice.
func classify(key Key, tok *jwt.Token, err error) *TokenError {
	const fix = "create a new one with `shoal scaling generate-token`"
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return &TokenError{Kind: ErrTokenMalformed, Err: err,
			Reason: "the admin token is not a well-formed JWT (three base64url parts separated by dots); copy it again, or " + fix}
	case tok != nil && tok.Header["alg"] != signingMethod.Alg():
		alg, _ := tok.Header["alg"].(string)
		if alg == "" {
			return &TokenError{Kind: ErrTokenMalformed, Err: err,
				Reason: "the admin token's header names no algorithm (alg), so it is not one shoal issued; " + fix}
		}
		return &TokenError{Kind: ErrTokenAlgorithm, Err: err,
			Reason: fmt.Sprintf("the admin token is signed with %q but shoal accepts only HS256 tokens it issued; %s", alg, fix)}
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return &TokenError{Kind: ErrTokenMalformed, Err: err,
			Reason: "the admin token cannot be verified (its header names no usable algorithm); " + fix}
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if kid, _ := tok.Header["kid"].(string); kid != "" && subtle.ConstantTimeCompare([]byte(kid), []byte(key.ID())) != 1 {
			return &TokenError{Kind: ErrTokenSignature, Err: err,
				Reason: "the admin token was signed with a different key than this server's (another state directory or SHOAL_ADMIN_KEY); " + fix + " where `shoal up` runs"}
		}
		return &TokenError{Kind: ErrTokenSignature, Err: err,
			Reason: "the admin token's signature does not match its contents, so it was altered or truncated; copy it again, or " + fix}
	case errors.Is(err, jwt.ErrTokenExpired):
		reason := "the admin token has expired"
		if c, ok := tok.Claims.(*Claims); ok && c.ExpiresAt != nil {
			reason += " (at " + c.ExpiresAt.UTC().Format(time.RFC3339) + ")"
		}
		return &TokenError{Kind: ErrTokenExpired, Err: err, Reason: reason + "; " + fix}
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return &TokenError{Kind: ErrTokenInvalid, Err: err,
			Reason: "the admin token has no expiry (exp), and shoal accepts only tokens that expire; " + fix}
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return &TokenError{Kind: ErrTokenInvalid, Err: err,
			Reason: "the admin token is not valid yet; check the clocks of this machine and the one that issued it"}
	default:
		return &TokenError{Kind: ErrTokenInvalid, Err: err,
			Reason: "the admin token's claims are invalid (" + err.Error() + "); " + fix}
	}
}
