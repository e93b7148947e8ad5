package admin

import (
	"fmt"
	"net/http"
)

// Scale directions of ScaleRequest.Direction.
const (
	DirectionUp   = "up"   // refuse a target below the current desired count
	DirectionDown = "down" // refuse a target above the current desired count
)

// ScaleRequest is the body of POST /v1/scale.
type ScaleRequest struct {
	// Instances is the target number of instances. Required, at least 0; the fleet refuses a
	// target outside scaling.instances.min_instances..max_instances.
	Instances int `json:"instances"`
	// Reason is recorded in the scaling event. Defaults to "manual scale through the admin API".
	Reason string `json:"reason,omitempty"`
	// Direction, when set to DirectionUp or DirectionDown, makes the server refuse (409) a target
	// that would move the fleet the other way, and answer without scaling when the target is
	// the current desired count. It lets `shoal scaling scale-up` check and scale in one request,
	// with a token that has scaling:write only. Defaults to "": any target.
	Direction string `json:"direction,omitempty"`
}

// HealthCheckRequest is the body of POST /v1/health-checks/{name}.
type HealthCheckRequest struct {
	// Enabled turns the check on or off. Required.
	Enabled bool `json:"enabled"`
}

// RestartResult is the answer of POST /v1/restart.
type RestartResult struct {
	// Restarted is true once every instance has been replaced.
	Restarted bool `json:"restarted"`
}

// Error codes of APIError.Code.
const (
	CodeMissingToken         = "missing_token"         // 401: no Authorization header
	CodeMalformedToken       = "malformed_token"       // 401: not "Bearer <JWT>"
	CodeInvalidSignature     = "invalid_signature"     // 401: tampered, or signed with another key
	CodeUnsupportedAlgorithm = "unsupported_algorithm" // 401: alg is not HS256 (none, RS256 …)
	CodeExpiredToken         = "expired_token"         // 401: exp has passed
	CodeRevokedToken         = "revoked_token"         // 401: its ID is on the revocation list
	CodeInvalidToken         = "invalid_token"         // 401: claims missing or not yet valid
	CodeInsufficientScope    = "insufficient_scope"    // 403: valid token without the scope
	CodeBadRequest           = "bad_request"           // 400: the body or query is wrong
	CodeBodyTooLarge         = "body_too_large"        // 413: body over 64 KiB
	CodeNotFound             = "not_found"             // 404: no such endpoint
	CodeUnknownCheck         = "unknown_check"         // 404: no health check has that name
	CodeMethodNotAllowed     = "method_not_allowed"    // 405
	CodeWrongDirection       = "wrong_direction"       // 409: scale-up below, or scale-down above, the current count
	CodeOutOfRange           = "out_of_range"          // 422: target outside min_instances..max_instances
	CodeInternal             = "internal"              // 500: the fleet failed
)

// APIError is the JSON body of every error answer of the admin API, and what Client returns
// for one.
type APIError struct {
	// StatusCode is the HTTP status; it is not part of the body.
	StatusCode int `json:"-"`
	// Code is one of the Code constants, for programs.
	Code string `json:"error"`
	// Message says what is wrong and how to fix it, for people.
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("the admin API answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}
