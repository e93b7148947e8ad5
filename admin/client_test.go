package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestClient(t *testing.T) {
	t.Parallel()
	_, fx := setup(t, ServerOptions{})
	ctx := context.Background()
	c, err := NewClient(fx.url+"/", fx.token(t, ScopeRead, ScopeWrite), WithHTTPClient(fx.hc))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Desired != 3 || len(st.Checks) != 2 {
		t.Fatalf("status %+v %v", st, err)
	}
	res, err := c.Scale(ctx, ScaleRequest{Instances: 4, Reason: "client test", Direction: DirectionUp})
	if err != nil || res.From != 3 || res.To != 4 || fx.fleet.lastReason != "client test" {
		t.Fatalf("scale %+v %v", res, err)
	}
	if err := c.Restart(ctx); err != nil || fx.fleet.restarts != 1 {
		t.Fatalf("restart %v", err)
	}
	cs, err := c.SetHealthCheck(ctx, "database", false)
	if err != nil || cs.Enabled || cs.Name != "database" {
		t.Fatalf("health check %+v %v", cs, err)
	}
	m, err := c.Metrics(ctx, 10*time.Minute, 3)
	if err != nil || m.Since != 10*time.Minute || len(m.Series[0].Points) != 3 {
		t.Fatalf("metrics %+v %v", m, err)
	}

	t.Run("progress streams each step, then the result or the error", func(t *testing.T) {
		var steps []string
		record := OnProgress(func(p Progress) { steps = append(steps, p.Instance+" "+p.State+": "+p.Message) })
		res, err := c.Scale(ctx, ScaleRequest{Instances: 5}, record)
		if err != nil || res.From != 4 || res.To != 5 || strings.Join(steps, "; ") != "demo-5 starting: started; demo-5 ready: ready" {
			t.Fatalf("scale with progress: %+v %v; steps %q", res, err, steps)
		}
		// Refused before any step: the usual status code.
		_, err = c.Scale(ctx, ScaleRequest{Instances: 50}, record)
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != 422 {
			t.Fatalf("out of range with progress: %#v", err)
		}
		steps = nil
		fx.fleet.mu.Lock()
		fx.fleet.restartErr = errors.New("the replacement for demo-1 did not become ready")
		fx.fleet.mu.Unlock()
		err = c.Restart(ctx, record)
		if !errors.As(err, &ae) || ae.Code != CodeInternal || !strings.Contains(ae.Message, "did not become ready") ||
			len(steps) != 1 || !strings.Contains(steps[0], "answered 404") {
			t.Fatalf("a failed restart with progress: %v; steps %q", err, steps)
		}
		fx.fleet.mu.Lock()
		fx.fleet.restartErr = nil
		fx.fleet.mu.Unlock()
	})
	t.Run("errors carry status and message", func(t *testing.T) {
		_, err := c.Scale(ctx, ScaleRequest{Instances: 50})
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != 422 || ae.Code != CodeOutOfRange || !strings.Contains(err.Error(), "outside scaling.instances") {
			t.Fatalf("%#v", err)
		}
		_, err = c.SetHealthCheck(ctx, "a/b c", true)
		if !errors.As(err, &ae) || ae.StatusCode != 404 || !strings.Contains(ae.Message, `no health check is named "a/b c"`) {
			t.Fatalf("%#v", err)
		}
		anon, _ := NewClient(fx.url, "", WithHTTPClient(fx.hc))
		_, err = anon.Status(ctx)
		if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Code != CodeMissingToken {
			t.Fatalf("%#v", err)
		}
	})
	t.Run("an answer that is not the API's", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}))
		defer srv.Close()
		c, _ := NewClient(srv.URL, "t", WithHTTPClient(srv.Client()))
		_, err := c.Status(ctx)
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != 502 || ae.Message != "bad gateway" {
			t.Fatalf("%#v", err)
		}
	})
}

func TestClient_Unreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := NewClient(addr, "t") // a bare host:port means http
	if err != nil || c.URL() != "http://"+addr {
		t.Fatalf("%v %v", c, err)
	}
	_, err = c.Status(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.URL != "http://"+addr {
		t.Fatalf("%#v", err)
	}
}

func TestNewClient_BadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"ftp://host", "http://", "::nope"} {
		if _, err := NewClient(u, ""); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}
