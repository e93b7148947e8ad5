package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/config"
)

// StatusDecisions is how many of the latest autoscaling decisions Status carries.
const StatusDecisions = 5

// Limits of GET /v1/autoscale/decisions.
const (
	DefaultDecisionsSince = time.Hour
	MaxDecisions          = autoscale.DefaultLogSize
)

// Autoscaled is implemented by a Fleet that keeps an autoscaler's decision log (the local fleet
// does); the server answers GET /v1/autoscale/decisions from it.
type Autoscaled interface {
	// Decisions returns the decisions of the last since, oldest first, at most limit of the
	// newest (all when limit ≤ 0).
	Decisions(ctx context.Context, since time.Duration, limit int) DecisionsReport
}

// DecisionsReport is the answer of GET /v1/autoscale/decisions: every evaluation of the
// autoscaler, including those that changed nothing.
type DecisionsReport struct {
	Since time.Duration `json:"since_ns"`
	// Autoscaling says whether the fleet autoscales, and Reason why or why not.
	Autoscaling bool                 `json:"autoscaling"`
	Reason      string               `json:"reason"`
	Decisions   []autoscale.Decision `json:"decisions"`
}

// decisions serves GET /v1/autoscale/decisions?since=1h&limit=100.
func (s *Server) decisions(w http.ResponseWriter, r *http.Request) {
	af, ok := s.fleet.(Autoscaled)
	if !ok {
		s.writeError(w, &APIError{StatusCode: http.StatusNotFound, Code: CodeNotFound,
			Message: "this fleet keeps no autoscaling decisions"})
		return
	}
	since, limit := DefaultDecisionsSince, 0
	for k, v := range r.URL.Query() {
		if len(v) != 1 {
			s.writeError(w, badRequest(fmt.Sprintf("give %s once", k)))
			return
		}
		switch k {
		case "since":
			d, err := config.ParseDuration(v[0])
			if err != nil {
				s.writeError(w, badRequest("since: "+err.Error()))
				return
			}
			if d <= 0 {
				s.writeError(w, badRequest(fmt.Sprintf("since must be above zero, e.g. since=1h, not %q", v[0])))
				return
			}
			since = d.D()
		case "limit":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 1 || n > MaxDecisions {
				s.writeError(w, badRequest(fmt.Sprintf("limit must be a whole number from 1 to %d, not %q", MaxDecisions, v[0])))
				return
			}
			limit = n
		default:
			s.writeError(w, badRequest(fmt.Sprintf("unknown query parameter %q; /v1/autoscale/decisions takes since and limit", k)))
			return
		}
	}
	s.writeJSON(w, http.StatusOK, af.Decisions(r.Context(), since, limit))
}

// Decisions returns the autoscaler's decisions over the last since (zero: the server's default,
// 1h), at most limit of the newest (zero: all) (scaling:read).
func (c *Client) Decisions(ctx context.Context, since time.Duration, limit int) (DecisionsReport, error) {
	q := url.Values{}
	if since > 0 {
		q.Set("since", since.String())
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var r DecisionsReport
	err := c.do(ctx, http.MethodGet, "/v1/autoscale/decisions", q, nil, &r)
	return r, err
}
