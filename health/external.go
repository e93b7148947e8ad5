package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shoal-sh/shoal/database"
)

// externalCheck returns the check for an external_service URL, chosen by its scheme.
func externalCheck(raw string) (Func, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing url %s: %w", database.Redact(raw), errors.Unwrap(err))
	}
	switch strings.ToLower(u.Scheme) {
	case "redis", "rediss":
		return redisCheck(u), nil
	case "tcp":
		return tcpCheck(u.Host)
	case "nats", "tls":
		return natsCheck(raw), nil
	case "amqp", "amqps":
		return amqpCheck(raw), nil
	case "http", "https":
		return httpCheck(raw)
	}
	return nil, fmt.Errorf("no external_service check speaks %q; use redis://, rediss://, tcp://, nats://, amqp://, amqps://, http:// or https://", u.Scheme+"://")
}

// tcpCheck dials addr (host:port, or tcp://host:port) and hangs up.
func tcpCheck(addr string) (Func, error) {
	addr = strings.TrimPrefix(addr, "tcp://")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("%q is not host:port or tcp://host:port", addr)
	}
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}, nil
}

// httpClient is shared by http checks: no cookies, no keep-alive pool growing with probes.
var httpClient = &http.Client{
	Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	},
}

// httpCheck GETs raw and passes on a 2xx answer. Redirects are followed.
func httpCheck(raw string) (Func, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http:// or https:// URL", database.Redact(raw))
	}
	shown := u.Redacted()
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "shoal-health")
		resp, err := httpClient.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				return ue.Err // the URL would repeat what the check's name says, maybe with a password
			}
			return err
		}
		// Drain a little so the connection can be reused, then close.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("GET %s answered %s", shown, resp.Status)
		}
		return nil
	}, nil
}

// redisCheck speaks just enough RESP to authenticate and PING. A client library such as
// go-redis would add a dependency, a pool and reconnect logic for one command.
func redisCheck(u *url.URL) Func {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "6379")
	}
	useTLS := strings.EqualFold(u.Scheme, "rediss")
	var user, pass string
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
		if _, hasPass := u.User.Password(); !hasPass {
			// redis://:secret@host and redis://secret@host both mean a password only.
			user, pass = "", user
		}
	}
	return func(ctx context.Context) error {
		var d net.Dialer
		raw, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer raw.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = raw.SetDeadline(dl)
		}
		// Close the connection when ctx ends early (cancelled rather than timed out).
		stop := context.AfterFunc(ctx, func() { raw.Close() })
		defer stop()
		c := raw
		if useTLS {
			tc := tls.Client(c, &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
			if err := tc.HandshakeContext(ctx); err != nil {
				return fmt.Errorf("TLS handshake: %w", err)
			}
			c = tc
		}
		rd := bufio.NewReader(c)
		if pass != "" {
			args := []string{"AUTH", pass}
			if user != "" && user != "default" {
				args = []string{"AUTH", user, pass}
			}
			if _, err := redisDo(c, rd, args...); err != nil {
				return fmt.Errorf("AUTH: %w", err)
			}
		}
		line, err := redisDo(c, rd, "PING")
		if err != nil {
			return fmt.Errorf("PING: %w", err)
		}
		if line != "+PONG" {
			return fmt.Errorf("PING answered %q, not +PONG", line)
		}
		return nil
	}
}

// redisDo writes one command as a RESP array and reads a one-line reply (+OK, +PONG, -ERR …).
func redisDo(w io.Writer, rd *bufio.Reader, args ...string) (string, error) {
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return "", err
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		return "", errors.New(strings.TrimPrefix(line, "-"))
	}
	return line, nil
}

// natsCheck connects to a NATS server and flushes: a PING answered by PONG after the handshake.
func natsCheck(raw string) Func {
	return func(ctx context.Context) error {
		timeout := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		// nats.go reports a failed dial as "no servers available"; keep the dial's own error.
		d := &recordingDialer{Dialer: net.Dialer{Timeout: timeout}}
		nc, err := nats.Connect(raw, nats.Name("shoal-health"), nats.Timeout(timeout), nats.NoReconnect(),
			nats.SetCustomDialer(d))
		if err != nil {
			if derr := d.err(); derr != nil {
				return fmt.Errorf("%w: %w", err, derr)
			}
			return err
		}
		defer nc.Close()
		return nc.FlushWithContext(ctx)
	}
}

// amqpCheck opens an AMQP connection (the full handshake, with the URL's credentials) and
// closes it.
func amqpCheck(raw string) Func {
	return func(ctx context.Context) error {
		timeout := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		conn, err := amqp.DialConfig(raw, amqp.Config{
			Dial:       amqp.DefaultDial(timeout),
			Properties: amqp.Table{"connection_name": "shoal-health"},
		})
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// recordingDialer remembers the last dial error.
type recordingDialer struct {
	net.Dialer
	mu   sync.Mutex
	last error
}

func (d *recordingDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := d.Dialer.Dial(network, addr)
	if err != nil {
		d.mu.Lock()
		d.last = err
		d.mu.Unlock()
	}
	return c, err
}

func (d *recordingDialer) err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}
