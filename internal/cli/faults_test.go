package cli

import (
	"bufio"

	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Faults under `shoal up` on the quickstart, configured with nothing but the test's probes
// (issue 10): what an attacker or an unlucky client does must cost other clients nothing.

// upLoad sends GETs to url from workers clients, each giving up after timeout, until stop is
// closed; wait returns once they have all stopped.
func upLoad(t *testing.T, url string, workers int, timeout time.Duration, stop <-chan struct{}) (ok, failed *atomic.Int64, wait func()) {
	ok, failed = new(atomic.Int64), new(atomic.Int64)
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: timeout}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := cl.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					if failed.Add(1) <= 3 {
						t.Logf("a normal request failed: %v %v", err, resp)
					}
					continue
				}
				ok.Add(1)
			}
		}()
	}
	return ok, failed, func() { wg.Wait(); cl.CloseIdleConnections() }
}

// brokenUpload sends a POST whose chunked body is malformed (bad) or abandoned half-way, and
// returns the status of the answer (0: the proxy closed the connection without one).
func brokenUpload(addr string, bad bool) int {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return -1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: qs\r\nTransfer-Encoding: chunked\r\n\r\n")
	if bad {
		io.WriteString(c, "5\r\nhello\r\nnot-a-chunk-size\r\n")
	} else {
		io.WriteString(c, "1000\r\nthe first bytes of a large upload")
		c.(*net.TCPConn).CloseWrite() // the user gave up
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestUp_BrokenUploadsOpenNoBreaker: 200 malformed chunked POSTs and 200 abandoned uploads
// while normal traffic runs. Before the fix, ~20 of them opened every breaker and all traffic
// got 503 for recovery_timeout.
func TestUp_BrokenUploadsOpenNoBreaker(t *testing.T) {
	t.Parallel()
	h := startUp(t, 3, 3)
	addr := strings.TrimPrefix(h.proxyURL, "http://")
	stop := make(chan struct{})
	ok, failed, wait := upLoad(t, h.proxyURL+"/", 8, 5*time.Second, stop)
	var bad400, other atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < 400; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(bad bool) {
			defer wg.Done()
			defer func() { <-sem }()
			switch code := brokenUpload(addr, bad); {
			case bad && code == http.StatusBadRequest, !bad && code == 0:
				bad400.Add(1)
			default:
				if other.Add(1) <= 3 {
					t.Logf("broken upload (malformed %v) answered %d", bad, code)
				}
			}
		}(i%2 == 0)
	}
	wg.Wait()
	time.Sleep(500 * time.Millisecond) // normal traffic goes on after them
	close(stop)
	wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d normal requests failed while clients sent broken uploads", n, n+ok.Load())
	}
	if n := other.Load(); n > 0 {
		t.Errorf("%d broken uploads were not answered 400 (malformed) or closed (abandoned)", n)
	}
	for _, in := range h.status(t).Instances {
		if in.Breaker != "closed" || in.Health != "healthy" {
			t.Errorf("instance %s after broken uploads: breaker %s, health %s (%s)", in.ID, in.Breaker, in.Health, in.LastErr)
		}
	}
	t.Logf("%d normal requests, none failed; %d broken uploads refused", ok.Load(), bad400.Load())
}

// TestUp_HungInstanceCostsNoRequests: one of three instances SIGSTOPped under load. Before
// the fix, round robin kept sending it requests until every client connection waited on it,
// and traffic moved away only when its health checks failed. Now no client with a 5 s timeout
// sees a failure, and the instance is out of rotation about a second after it hung.
func TestUp_HungInstanceCostsNoRequests(t *testing.T) {
	t.Parallel()
	h := startUp(t, 3, 3)
	stop := make(chan struct{})
	ok, failed, wait := upLoad(t, h.proxyURL+"/", 16, 5*time.Second, stop)
	time.Sleep(time.Second)
	victim := h.status(t).Instances[1]
	if err := syscall.Kill(victim.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	hungAt := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			syscall.Kill(victim.PID, syscall.SIGCONT)
		}
	}()
	var avoided time.Duration
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if in := instanceByID(h, t, victim.ID); in.Health == "stalled" || in.Health == "unhealthy" {
			avoided = time.Since(hungAt)
			t.Logf("instance %s out of rotation %s after SIGSTOP: %s (%s)", victim.ID, avoided.Round(10*time.Millisecond), in.Health, in.LastErr)
			break
		}
	}
	if avoided == 0 {
		t.Error("the hung instance stayed in rotation for 10 s")
	}
	time.Sleep(3 * time.Second)
	syscall.Kill(victim.PID, syscall.SIGCONT)
	resumed = true
	time.Sleep(time.Second)
	close(stop)
	wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed (5 s client timeout) with one instance hung", n, n+ok.Load())
	}
	t.Logf("%d requests, none failed, with one of three instances stopped for about 5 s", ok.Load())
}

func instanceByID(h *upHarness, t *testing.T, id string) (st struct{ Health, LastErr string }) {
	for _, in := range h.status(t).Instances {
		if in.ID == id {
			return struct{ Health, LastErr string }{in.Health, in.LastErr}
		}
	}
	return st
}
