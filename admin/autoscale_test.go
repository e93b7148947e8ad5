package admin

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/autoscale"
)

// autoscaledFleet is a memFleet with a decision log.
type autoscaledFleet struct {
	*memFleet
	since time.Duration
	limit int
}

func (f *autoscaledFleet) Decisions(_ context.Context, since time.Duration, limit int) DecisionsReport {
	f.since, f.limit = since, limit
	return DecisionsReport{Since: since, Autoscaling: true, Reason: "on: every 30s",
		Decisions: []autoscale.Decision{{Current: 3, Desired: 4, Change: autoscale.ChangeUp, Reason: "scale up from 3 to 4: …"}}}
}

func TestServer_Decisions(t *testing.T) {
	t.Parallel()
	_, fx := setup(t, ServerOptions{})
	read := "Bearer " + fx.token(t, ScopeRead)
	// The memFleet keeps no decision log.
	status, h, body := fx.call(t, "GET", "/v1/autoscale/decisions", read, "")
	wantError(t, status, h, body, 404, CodeNotFound, "keeps no autoscaling decisions")

	af := &autoscaledFleet{memFleet: newMemFleet()}
	srv := httptest.NewServer(NewServer(af, ServerOptions{Key: fx.key, Clock: func() time.Time { return fx.now }}))
	t.Cleanup(srv.Close)
	fx.url = srv.URL
	status, _, body = fx.call(t, "GET", "/v1/autoscale/decisions?since=15m&limit=10", read, "")
	var rep DecisionsReport
	if status != 200 || json.Unmarshal([]byte(body), &rep) != nil || len(rep.Decisions) != 1 || !rep.Autoscaling {
		t.Fatalf("%d %s", status, body)
	}
	if af.since != 15*time.Minute || af.limit != 10 {
		t.Errorf("since %s limit %d", af.since, af.limit)
	}
	if status, _, _ = fx.call(t, "GET", "/v1/autoscale/decisions", read, ""); status != 200 || af.since != DefaultDecisionsSince || af.limit != 0 {
		t.Errorf("defaults: %d, since %s, limit %d", status, af.since, af.limit)
	}
	for q, msg := range map[string]string{
		"since=0s":        "since must be above zero",
		"since=soon":      "since: ",
		"limit=0":         "limit must be a whole number from 1",
		"limit=x":         "limit must be a whole number from 1",
		"points=3":        `unknown query parameter "points"`,
		"limit=1&limit=2": "give limit once",
	} {
		status, h, body := fx.call(t, "GET", "/v1/autoscale/decisions?"+q, read, "")
		wantError(t, status, h, body, 400, CodeBadRequest, msg)
	}
	status, h, body = fx.call(t, "GET", "/v1/autoscale/decisions", "", "")
	wantError(t, status, h, body, 401, CodeMissingToken, "")

	// The client.
	c, err := NewClient(srv.URL, fx.token(t, ScopeRead))
	if err != nil {
		t.Fatal(err)
	}
	rep, err = c.Decisions(context.Background(), time.Hour, 5)
	if err != nil || len(rep.Decisions) != 1 || af.limit != 5 || !strings.HasPrefix(rep.Decisions[0].Reason, "scale up") {
		t.Errorf("client: %v %+v", err, rep)
	}
}
