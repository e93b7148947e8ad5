package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Progress is one step of a scale or restart on one instance: started, waiting for its
// readiness probe (and why it is not ready yet), ready, draining, stopped, failed.
type Progress struct {
	Time time.Time `json:"time"`
	// Instance is the instance's ID.
	Instance string `json:"instance"`
	// State is the instance's state after the step (StateStarting, StateReady …).
	State string `json:"state"`
	// Message says what happened, for people, e.g. "waiting for /ready: GET /ready answered 503".
	Message string `json:"message"`
}

// ProgressFunc receives the steps of one operation. It may be called from several goroutines
// at once and must not block for long.
type ProgressFunc func(Progress)

type progressKey struct{}

// WithProgress returns a context that carries fn to a Fleet's Scale or Restart, which report
// each step of each instance to it while the call runs. The admin server uses it to stream the
// steps to a client that asked for them (see ProgressContentType).
func WithProgress(ctx context.Context, fn ProgressFunc) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// ProgressFrom returns the ProgressFunc of ctx, or nil.
func ProgressFrom(ctx context.Context) ProgressFunc {
	fn, _ := ctx.Value(progressKey{}).(ProgressFunc)
	return fn
}

// ProgressContentType is what a client of POST /v1/scale and POST /v1/restart puts in Accept
// to get the operation's steps as they happen: the server answers 200 with newline-delimited
// JSON, one {"progress": Progress} per step and a last line {"result": …} or {"error": APIError}.
// Without it the server answers once, when the operation is over.
const ProgressContentType = "application/x-ndjson"

// progressLine is one line of a streamed answer.
type progressLine struct {
	Progress *Progress       `json:"progress,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *APIError       `json:"error,omitempty"`
}

// progressWriter streams an operation's steps when the client asked for them. The answer's
// status is only committed with the first step, so an operation refused at once (a bad
// target) still answers with its own status code.
type progressWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	started bool // the 200 and the first line are written
	done    bool // the handler has finished: later steps are dropped
}

// wantsProgress reports whether r asked for a streamed answer.
func wantsProgress(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), ProgressContentType)
}

func (p *progressWriter) step(pr Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	if !p.started {
		p.started = true
		h := p.w.Header()
		h.Set("Content-Type", ProgressContentType)
		h.Set("Cache-Control", "no-store")
		p.w.WriteHeader(http.StatusOK)
	}
	p.line(progressLine{Progress: &pr})
}

// line writes one line and flushes it; p.mu is held.
func (p *progressWriter) line(l progressLine) {
	b, err := json.Marshal(l)
	if err != nil {
		return
	}
	p.w.Write(append(b, '\n'))
	if f, ok := p.w.(http.Flusher); ok {
		f.Flush()
	}
}

// finish ends the answer: as a last line when steps were streamed, else as the usual
// answer (the status code and the JSON body, or the error). It reports whether it wrote.
func (p *progressWriter) finish(s *Server, status int, result any, apiErr *APIError) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	if !p.started {
		if apiErr != nil {
			s.writeError(p.w, apiErr)
		} else {
			s.writeJSON(p.w, status, result)
		}
		return
	}
	if apiErr != nil {
		p.line(progressLine{Error: apiErr})
		return
	}
	b, err := json.Marshal(result)
	if err != nil {
		b = []byte("null")
	}
	p.line(progressLine{Result: b})
}

// CallOpt configures one call of Scale or Restart.
type CallOpt interface{ applyCall(*callOpts) }

type callOpts struct {
	progress ProgressFunc
}

type callOptFunc func(*callOpts)

func (f callOptFunc) applyCall(o *callOpts) { f(o) }

// OnProgress makes Scale or Restart ask the server for the operation's steps and call fn with
// each as it arrives, before the call returns. fn is called from the calling goroutine.
func OnProgress(fn ProgressFunc) CallOpt {
	return callOptFunc(func(o *callOpts) { o.progress = fn })
}

// readProgress reads a streamed answer: each step to fn, then the result into out or the
// error. A stream that ends without a last line means the server went away mid-operation.
func (c *Client) readProgress(body io.Reader, fn ProgressFunc, out any) error {
	sc := bufio.NewScanner(io.LimitReader(body, maxResponseBytes))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l progressLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("the admin API at %s answered something that is not its progress stream: %w", c.URL(), err)
		}
		switch {
		case l.Progress != nil:
			if fn != nil {
				fn(*l.Progress)
			}
		case l.Error != nil:
			if l.Error.StatusCode == 0 {
				l.Error.StatusCode = http.StatusInternalServerError
			}
			return l.Error
		case l.Result != nil:
			if out != nil {
				if err := json.Unmarshal(l.Result, out); err != nil {
					return fmt.Errorf("the admin API at %s answered something that is not its JSON: %w", c.URL(), err)
				}
			}
			return nil
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the admin API's progress: %w", err)
	}
	return fmt.Errorf("the admin API at %s stopped answering before the operation finished; see `shoal scaling status`", c.URL())
}
