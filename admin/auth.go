package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// realm names the protection space in WWW-Authenticate.
const realm = "shoal-admin"

type claimsKey struct{}

// ClaimsFrom returns the claims of the token that authorized the request whose context is
// ctx, inside the admin server's handlers.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// require wraps h so that it runs only for a request bearing a valid token with scope:
// 401 for a missing or invalid token, 403 for a valid one without the scope. action names
// what h does, for the 403 message ("scale the fleet").
func (s *Server) require(scope, action string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		claims, err := s.authenticate(r)
		if err != nil {
			s.log.Debug("admin: refused a token", "path", r.URL.Path, "remote", r.RemoteAddr, "error", err.Code())
			challenge := fmt.Sprintf(`Bearer realm=%q, scope=%q`, realm, scope)
			if err.Kind != ErrTokenMissing {
				// The description is the sentinel's fixed text: nothing from the request.
				challenge = fmt.Sprintf(`Bearer realm=%q, error="invalid_token", error_description=%q`, realm, err.Kind.Error())
			}
			w.Header().Set("WWW-Authenticate", challenge)
			s.writeError(w, &APIError{StatusCode: http.StatusUnauthorized, Code: err.Code(), Message: err.Reason})
			return
		}
		if !claims.Has(scope) {
			s.log.Debug("admin: token lacks a scope", "path", r.URL.Path, "sub", claims.Subject, "jti", claims.ID, "need", scope)
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope=%q`, realm, scope))
			has := "no scope"
			if len(claims.Scope) > 0 {
				has = "only " + strings.Join(claims.Scope, " and ")
			}
			s.writeError(w, &APIError{StatusCode: http.StatusForbidden, Code: CodeInsufficientScope,
				Message: fmt.Sprintf("this token grants %s, but to %s it needs %s; create one with `shoal scaling generate-token --scopes %s,%s`",
					has, action, scope, ScopeRead, ScopeWrite)})
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
	}
}

// authenticate verifies the request's bearer token.
func (s *Server) authenticate(r *http.Request) (*Claims, *TokenError) {
	values := r.Header.Values("Authorization")
	if len(values) > 1 {
		return nil, &TokenError{Kind: ErrTokenMalformed, Reason: "the request has more than one Authorization header; send one: `Authorization: Bearer <token>`"}
	}
	var token string
	if len(values) == 1 {
		v := strings.TrimSpace(values[0])
		scheme, rest, _ := strings.Cut(v, " ")
		switch {
		case v == "":
		case !strings.EqualFold(scheme, "Bearer"):
			return nil, &TokenError{Kind: ErrTokenMalformed, Reason: "the Authorization header must be `Bearer <token>`; other schemes such as Basic are not accepted"}
		default:
			token = strings.TrimSpace(rest)
			if token == "" {
				return nil, &TokenError{Kind: ErrTokenMalformed, Reason: "the Authorization header says Bearer but holds no token; send `Authorization: Bearer <token>`"}
			}
		}
	}
	claims, err := VerifyToken(s.key, token, s.now())
	if err != nil {
		var terr *TokenError
		if errors.As(err, &terr) {
			return nil, terr
		}
		return nil, &TokenError{Kind: ErrTokenInvalid, Reason: err.Error(), Err: err}
	}
	if s.revoked != nil {
		revoked, err := s.revoked.Revoked(claims.ID, s.now())
		switch {
		case err != nil:
			return nil, &TokenError{Kind: ErrTokenInvalid, Reason: err.Error(), Err: err}
		case revoked:
			return nil, &TokenError{Kind: ErrTokenRevoked, Reason: fmt.Sprintf(
				"the admin token %s (for %s) was revoked; create a new one with `shoal scaling generate-token`", claims.ID, claims.Subject)}
		}
	}
	return claims, nil
}
