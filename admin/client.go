package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxResponseBytes bounds what the client reads of an answer.
const maxResponseBytes = 16 << 20

// Client calls the admin API. It is safe for concurrent use. Every method returns an
// *APIError when the server answers with an error, and an *UnreachableError when no server
// answers at the address.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// ClientOpt configures NewClient.
type ClientOpt interface{ apply(*Client) }

type clientOptFunc func(*Client)

func (f clientOptFunc) apply(c *Client) { f(c) }

// WithHTTPClient makes the client send its requests with hc. Defaults to a client without a
// timeout (a rolling restart can take minutes): bound calls with their context.
func WithHTTPClient(hc *http.Client) ClientOpt {
	return clientOptFunc(func(c *Client) { c.hc = hc })
}

// NewClient returns a client of the admin API at baseURL ("http://127.0.0.1:9900"; a bare
// host:port means http) sending token as its bearer token.
func NewClient(baseURL, token string, opts ...ClientOpt) (*Client, error) {
	raw := strings.TrimSpace(baseURL)
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("the admin address %q is not an http(s) URL such as http://127.0.0.1:9900", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, token: strings.TrimSpace(token), hc: &http.Client{}}
	for _, o := range opts {
		o.apply(c)
	}
	return c, nil
}

// URL returns the admin API's base URL.
func (c *Client) URL() string { return c.base.String() }

// UnreachableError is returned when nothing answers at the admin address.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string { return fmt.Sprintf("no admin API at %s: %v", e.URL, e.Err) }

// Unwrap returns the connection error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Healthz checks that the admin server is up; it needs no token.
func (c *Client) Healthz(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil)
}

// Status returns the fleet's status (scaling:read).
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &s)
	return s, err
}

// Scale brings the fleet to req.Instances (scaling:write) and returns when it is there.
// OnProgress receives each instance's steps meanwhile.
func (c *Client) Scale(ctx context.Context, req ScaleRequest, opts ...CallOpt) (ScaleResult, error) {
	var res ScaleResult
	err := c.call(ctx, http.MethodPost, "/v1/scale", req, &res, opts)
	return res, err
}

// Restart replaces every instance, one at a time (scaling:write), and returns when done.
// OnProgress receives each instance's steps meanwhile.
func (c *Client) Restart(ctx context.Context, opts ...CallOpt) error {
	return c.call(ctx, http.MethodPost, "/v1/restart", struct{}{}, &RestartResult{}, opts)
}

// call is do with the call options of Scale and Restart.
func (c *Client) call(ctx context.Context, method, path string, in, out any, opts []CallOpt) error {
	var o callOpts
	for _, opt := range opts {
		opt.applyCall(&o)
	}
	if o.progress == nil {
		return c.do(ctx, method, path, nil, in, out)
	}
	return c.doStream(ctx, method, path, in, out, o.progress)
}

// SetHealthCheck enables or disables the health check name (scaling:write) and returns the
// check as it is now.
func (c *Client) SetHealthCheck(ctx context.Context, name string, enabled bool) (CheckStatus, error) {
	var cs CheckStatus
	err := c.do(ctx, http.MethodPost, "/v1/health-checks/"+url.PathEscape(name), nil, HealthCheckRequest{Enabled: enabled}, &cs)
	return cs, err
}

// Metrics returns the scaling metrics over the last since, at most points per series
// (scaling:read). Zero since or points leaves the server's default (1h, 120).
func (c *Client) Metrics(ctx context.Context, since time.Duration, points int) (MetricsReport, error) {
	q := url.Values{}
	if since > 0 {
		q.Set("since", since.String())
	}
	if points > 0 {
		q.Set("points", strconv.Itoa(points))
	}
	var m MetricsReport
	err := c.do(ctx, http.MethodGet, "/v1/metrics", q, nil, &m)
	return m, err
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	return c.doStream(ctx, method, path+encodeQuery(q), in, out, nil)
}

func encodeQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// doStream sends a request and reads its answer; with progress, it asks for the operation's
// steps (ProgressContentType) and hands each to progress as it arrives.
func (c *Client) doStream(ctx context.Context, method, path string, in, out any, progress ProgressFunc) error {
	// path is already escaped, its query encoded; the base has no query or fragment.
	target := c.URL() + path
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fmt.Errorf("building the request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if progress != nil {
		req.Header.Set("Accept", ProgressContentType+", application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return &UnreachableError{URL: c.URL(), Err: op.Err}
		}
		return fmt.Errorf("calling the admin API at %s: %w", c.URL(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), ProgressContentType) {
		return c.readProgress(resp.Body, progress, out)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("reading the admin API's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e = &APIError{Code: "http_" + strconv.Itoa(resp.StatusCode), Message: strings.TrimSpace(string(data))}
			if len(e.Message) > 200 || e.Message == "" {
				e.Message = fmt.Sprintf("the admin API at %s answered %s", c.URL(), resp.Status)
			}
		}
		e.StatusCode = resp.StatusCode
		return e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("the admin API at %s answered something that is not its JSON: %w", c.URL(), err)
		}
	}
	return nil
}
