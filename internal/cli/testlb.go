package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// Response headers that name the instance that answered, in order of preference.
var instanceHeaders = []string{"X-Shoal-Instance", "X-Backend"}

func (a *app) scalingTestLBCommand(f *scalingFlags) *cobra.Command {
	var requests, concurrent int
	var target string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "test-lb [--requests 100] [--concurrent 10] [--url URL]",
		Short: "Send requests through the load balancer and show how they spread over the instances",
		Long: `Send --requests GET requests with --concurrent workers to the service and report how they
spread over the instances (named by the X-Shoal-Instance response header, else X-Backend, else
"unknown"), the status codes, the errors and the latency percentiles. A request fails when it
gets no answer or a 5xx; the command exits 1 when any failed.

The URL is --url, else the proxy_url the admin API reports, else http://127.0.0.1:<server.port>
of the configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := f.json()
			if err != nil {
				return err
			}
			if requests < 1 {
				return usagef("--requests must be 1 or more, not %d", requests)
			}
			if concurrent < 1 {
				return usagef("--concurrent must be 1 or more, not %d", concurrent)
			}
			if timeout <= 0 {
				return usagef("--timeout must be above zero, e.g. --timeout 10s")
			}
			concurrent = min(concurrent, requests)
			if target == "" {
				if target, err = a.serviceURL(cmd.Context(), f); err != nil {
					return err
				}
			}
			u, err := url.Parse(target)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--url %q is not an http(s) URL such as http://127.0.0.1:3000/", target)
			}
			var bar *progressBar
			var progress func(done int)
			if !asJSON && isTerminal(a.stdout) {
				bar = &progressBar{w: a.stdout, total: requests, width: 30}
				progress = bar.draw
			}
			res := runLoad(cmd.Context(), u.String(), requests, concurrent, timeout, progress)
			if bar != nil {
				bar.clear()
			}
			if asJSON {
				if err := a.print(f, res); err != nil {
					return err
				}
			} else {
				res.print(a.stdout)
			}
			switch {
			case res.Completed < res.Requests:
				return fmt.Errorf("interrupted after %d of %d requests", res.Completed, res.Requests)
			case res.Failed > 0:
				return fmt.Errorf("%d of %d requests failed", res.Failed, res.Requests)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&requests, "requests", 100, "number of requests to send")
	cmd.Flags().IntVar(&concurrent, "concurrent", 10, "number of requests in flight at once")
	cmd.Flags().StringVar(&target, "url", "", "URL to request (default: the proxy's URL)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "time limit of each request")
	return cmd
}

// serviceURL finds the URL of the service: the admin API's proxy_url when a token and the API
// are there, else server.host:server.port of the configuration.
func (a *app) serviceURL(ctx context.Context, f *scalingFlags) (string, error) {
	if a.adminToken(f) != "" {
		if c, err := a.adminClient(f); err == nil {
			if st, err := c.Status(ctx); err == nil && st.ProxyURL != "" {
				return st.ProxyURL, nil
			}
		}
	}
	c, err := a.optionalConfig(f)
	if err != nil {
		return "", err
	}
	if c == nil {
		return "", usagef("no service to test: pass --url URL, or run where shoal.yml is, or give the admin token of a running `shoal up`")
	}
	u, err := dialURL(net.JoinHostPort(c.Server.Host, strconv.Itoa(c.Server.Port)))
	if err != nil {
		return "", err
	}
	return u + "/", nil
}

// lbResult is what test-lb found.
type lbResult struct {
	URL         string         `json:"url"`
	Requests    int            `json:"requests"`
	Concurrency int            `json:"concurrency"`
	Completed   int            `json:"completed"`
	Failed      int            `json:"failed"`
	DurationMS  float64        `json:"duration_ms"`
	Instances   map[string]int `json:"instances"`
	StatusCodes map[int]int    `json:"status_codes"`
	Errors      map[string]int `json:"errors,omitempty"`
	Latency     latencyMS      `json:"latency_ms"`
}

// latencyMS are percentiles of the requests that got an answer, in milliseconds.
type latencyMS struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// outcome is one request's.
type outcome struct {
	instance string
	status   int
	err      string // "" when answered
	latency  time.Duration
}

// runLoad sends n GET requests to target from c workers and gathers the outcomes. It stops
// early when ctx ends. progress, when set, is called with the number done, often.
func runLoad(ctx context.Context, target string, n, c int, timeout time.Duration, progress func(int)) lbResult {
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConns: c, MaxIdleConnsPerHost: c,
		DialContext: (&net.Dialer{Timeout: timeout}).DialContext, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	var next, done atomic.Int64
	results := make([][]outcome, c)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= int64(n) {
				results[w] = append(results[w], request(ctx, client, target, timeout))
				done.Add(1)
			}
		})
	}
	if progress != nil {
		stop := make(chan struct{})
		ticked := make(chan struct{})
		go func() {
			defer close(ticked)
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					progress(int(done.Load()))
					return
				case <-t.C:
					progress(int(done.Load()))
				}
			}
		}()
		wg.Wait()
		close(stop)
		<-ticked
	} else {
		wg.Wait()
	}
	return summarizeLoad(target, n, c, time.Since(start), slices.Concat(results...))
}

// request sends one GET and says what came of it.
func request(ctx context.Context, client *http.Client, target string, timeout time.Duration) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return outcome{err: err.Error()}
	}
	req.Header.Set("User-Agent", "shoal-test-lb/"+version())
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return outcome{err: describe(err, timeout), latency: time.Since(t0)}
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 8<<20))
	resp.Body.Close()
	o := outcome{status: resp.StatusCode, latency: time.Since(t0), instance: "unknown"}
	for _, h := range instanceHeaders {
		if v := strings.TrimSpace(resp.Header.Get(h)); v != "" {
			o.instance = v
			break
		}
	}
	switch {
	case err != nil:
		o.err = "reading the body: " + describe(err, timeout)
	case resp.StatusCode >= 500:
		o.err = "HTTP " + strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	return o
}

// describe shortens a transport error to what went wrong, without the repeated URL.
func describe(err error, timeout time.Duration) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no answer within " + timeout.String()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			return oe.Op + ": " + se.Err.Error()
		}
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}

func summarizeLoad(target string, n, c int, elapsed time.Duration, outs []outcome) lbResult {
	r := lbResult{URL: target, Requests: n, Concurrency: c, Completed: len(outs),
		DurationMS: float64(elapsed.Microseconds()) / 1000,
		Instances:  map[string]int{}, StatusCodes: map[int]int{}, Errors: map[string]int{}}
	var lat []time.Duration
	for _, o := range outs {
		if o.err != "" {
			r.Failed++
			r.Errors[o.err]++
		}
		if o.status != 0 {
			r.Instances[o.instance]++
			r.StatusCodes[o.status]++
			lat = append(lat, o.latency)
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		r.Latency = latencyMS{P50: ms(percentile(lat, 0.50)), P90: ms(percentile(lat, 0.90)),
			P99: ms(percentile(lat, 0.99)), Max: ms(lat[len(lat)-1])}
	}
	return r
}

// percentile is the nearest-rank percentile p (0..1] of the sorted ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// print writes the result for people.
func (r lbResult) print(out io.Writer) {
	secs := r.DurationMS / 1000
	rate := 0.0
	if secs > 0 {
		rate = float64(r.Completed) / secs
	}
	fmt.Fprintf(out, "%d requests to %s with %d workers in %s (%.0f req/s)\n\n", r.Completed, r.URL, r.Concurrency,
		roundMS(r.DurationMS), rate)

	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	answered := 0
	for _, n := range r.Instances {
		answered += n
	}
	if answered > 0 {
		names := make([]string, 0, len(r.Instances))
		for name := range r.Instances {
			names = append(names, name)
		}
		slices.SortFunc(names, naturalCompare)
		fmt.Fprintln(w, "INSTANCE\tREQUESTS\tSHARE\t")
		for _, name := range names {
			share := float64(r.Instances[name]) / float64(answered)
			fmt.Fprintf(w, "%s\t%d\t%.1f%%\t%s\n", name, r.Instances[name], 100*share, strings.Repeat("█", int(math.Round(share*30))))
		}
		fmt.Fprintln(w)
	}
	codes := make([]int, 0, len(r.StatusCodes))
	for code := range r.StatusCodes {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	var parts []string
	for _, code := range codes {
		parts = append(parts, fmt.Sprintf("%d ×%d", code, r.StatusCodes[code]))
	}
	fmt.Fprintf(w, "status codes\t%s\n", orDash(strings.Join(parts, ", ")))
	fmt.Fprintf(w, "errors\t%d\n", r.Failed)
	msgs := make([]string, 0, len(r.Errors))
	for m := range r.Errors {
		msgs = append(msgs, m)
	}
	slices.SortFunc(msgs, func(a, b string) int { return r.Errors[b] - r.Errors[a] })
	for i, m := range msgs {
		if i == 5 {
			fmt.Fprintf(w, "\t… and %d other errors\n", len(msgs)-i)
			break
		}
		fmt.Fprintf(w, "\t%d × %s\n", r.Errors[m], m)
	}
	if answered > 0 {
		fmt.Fprintf(w, "latency\tp50 %s  p90 %s  p99 %s  max %s\n", roundMS(r.Latency.P50), roundMS(r.Latency.P90),
			roundMS(r.Latency.P99), roundMS(r.Latency.Max))
	}
	w.Flush()
}

// roundMS writes milliseconds for people.
func roundMS(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 1000:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fs", ms/1000)
	}
}

// naturalCompare orders strings with their runs of digits compared as numbers, so that
// instance-2 comes before instance-10.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da != "" && db != "" {
			na, nb := strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitPrefix(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

// progressBar draws "[█████░░░░░]  45/100  45%" on one terminal line.
type progressBar struct {
	w     io.Writer
	total int
	width int
	drawn bool
}

func (p *progressBar) draw(done int) {
	frac := float64(done) / float64(p.total)
	full := int(frac * float64(p.width))
	fmt.Fprintf(p.w, "\r[%s%s] %*d/%d %3.0f%%", strings.Repeat("█", full), strings.Repeat("░", p.width-full),
		len(strconv.Itoa(p.total)), done, p.total, 100*frac)
	p.drawn = true
}

// clear erases the bar's line.
func (p *progressBar) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
