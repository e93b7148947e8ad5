package health

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/internal/servicetest"
)

// closedPort returns a local address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentServer accepts connections and never answers, so a check can only end by its timeout.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// runCheck builds a registry of one check on the wall clock, starts it, and returns the first
// result and the /health answer.
func runCheck(t *testing.T, cc config.Check, opts ...Opt) (Result, int) {
	t.Helper()
	if cc.Name == "" {
		cc.Name = "dep"
	}
	if cc.Timeout == 0 {
		cc.Timeout = config.Duration(3 * time.Second)
	}
	cc.Interval = config.Duration(time.Hour)
	r, err := New([]config.Check{cc}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Start()
	deadline := time.Now().Add(cc.Timeout.D() + 10*time.Second)
	for r.Results()[0].Status == Unknown {
		if time.Now().After(deadline) {
			t.Fatalf("check %s never finished a run", cc.Name)
		}
		time.Sleep(5 * time.Millisecond)
	}
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	return r.Results()[0], rec.Code
}

// wantPass fails the test unless res passed.
func wantPass(t *testing.T, res Result, code int) {
	t.Helper()
	if res.Status != Pass || code != http.StatusOK {
		t.Fatalf("status %s (%s), /health %d; want pass, 200", res.Status, res.Error, code)
	}
}

// wantDown checks the failure of a dependency: fail and 503 when critical, warn and 200 when not.
func wantDown(t *testing.T, cc config.Check, errPart string) {
	t.Helper()
	for _, critical := range []bool{true, false} {
		cc.Critical = critical
		res, code := runCheck(t, cc)
		wantStatus, wantCode := Fail, http.StatusServiceUnavailable
		if !critical {
			wantStatus, wantCode = Warn, http.StatusOK
		}
		if res.Status != wantStatus || code != wantCode {
			t.Errorf("critical=%v: status %s, /health %d; want %s, %d", critical, res.Status, code, wantStatus, wantCode)
		}
		if !strings.Contains(res.Error, errPart) {
			t.Errorf("critical=%v: error %q does not mention %q", critical, res.Error, errPart)
		}
		if res.Duration > cc.Timeout.D()+time.Second {
			t.Errorf("critical=%v: the run took %s, past its timeout %s", critical, res.Duration, cc.Timeout)
		}
	}
}

func TestDatabase_Postgres(t *testing.T) {
	t.Parallel()
	addr := servicetest.Need(t, servicetest.Postgres)
	t.Run("pass", func(t *testing.T) {
		t.Parallel()
		cc := config.Check{Type: config.CheckDatabase, URL: "postgres://postgres@" + addr + "/test?sslmode=disable"}
		res, code := runCheck(t, cc)
		wantPass(t, res, code)
	})
	t.Run("database.url is the default DSN", func(t *testing.T) {
		t.Parallel()
		cfg := &config.Config{}
		cfg.Database.URL = "postgres://postgres@" + addr + "/test?sslmode=disable"
		cfg.Health.Checks = []config.Check{{Name: "database", Type: config.CheckDatabase,
			Timeout: config.Duration(3 * time.Second), Interval: config.Duration(time.Hour), Critical: true}}
		r, err := FromConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		r.Start()
		waitStatus(t, r, "database", Pass)
	})
	t.Run("wrong port", func(t *testing.T) {
		t.Parallel()
		wantDown(t, config.Check{Type: config.CheckDatabase, URL: "postgres://postgres@" + closedPort(t) + "/test?sslmode=disable",
			Timeout: config.Duration(2 * time.Second)}, "refused")
	})
	t.Run("no answer", func(t *testing.T) {
		t.Parallel()
		wantDown(t, config.Check{Type: config.CheckDatabase, URL: "postgres://postgres@" + silentServer(t) + "/test?sslmode=disable",
			Timeout: config.Duration(300 * time.Millisecond)}, "timed out after 300ms")
	})
}

func TestDatabase_MySQL(t *testing.T) {
	t.Parallel()
	addr := servicetest.Need(t, servicetest.MariaDB)
	res, code := runCheck(t, config.Check{Type: config.CheckDatabase, URL: "mysql://root@" + addr + "/test"})
	wantPass(t, res, code)
	wantDown(t, config.Check{Type: config.CheckDatabase, URL: "mysql://root@" + closedPort(t) + "/test",
		Timeout: config.Duration(2 * time.Second)}, "refused")
}

func TestDatabase_WithDB(t *testing.T) {
	t.Parallel()
	down := errors.New("pool closed")
	res, code := runCheck(t, config.Check{Type: config.CheckDatabase, Critical: true}, WithDB("dep", pingerFunc(func() error { return down })))
	if res.Status != Fail || code != http.StatusServiceUnavailable || !strings.Contains(res.Error, "pool closed") {
		t.Fatalf("got %+v, %d", res, code)
	}
}

type pingerFunc func() error

func (f pingerFunc) PingContext(_ context.Context) error { return f() }

func TestExternal_Redis(t *testing.T) {
	t.Parallel()
	addr := servicetest.Need(t, servicetest.Redis)
	t.Run("pass", func(t *testing.T) {
		t.Parallel()
		res, code := runCheck(t, config.Check{Type: config.CheckExternalService, URL: "redis://" + addr})
		wantPass(t, res, code)
	})
	t.Run("auth refused", func(t *testing.T) {
		t.Parallel()
		// The machine's Redis has no password: AUTH is answered with an error, which must fail.
		wantDown(t, config.Check{Type: config.CheckExternalService, URL: "redis://:wrong@" + addr}, "AUTH")
	})
	t.Run("wrong port", func(t *testing.T) {
		t.Parallel()
		wantDown(t, config.Check{Type: config.CheckExternalService, URL: "redis://" + closedPort(t),
			Timeout: config.Duration(2 * time.Second)}, "refused")
	})
	t.Run("no answer", func(t *testing.T) {
		t.Parallel()
		wantDown(t, config.Check{Type: config.CheckExternalService, URL: "redis://" + silentServer(t),
			Timeout: config.Duration(300 * time.Millisecond)}, "timed out after 300ms")
	})
}

// TestExternal_RedisAuth checks the AUTH command on a scripted server, since the machine's
// Redis has no users.
func TestExternal_RedisAuth(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		rd := bufio.NewReader(c)
		var cmds []string
		for len(cmds) < 2 {
			var parts []string
			line, err := rd.ReadString('\n') // *N
			if err != nil {
				return
			}
			count, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
			for range count {
				rd.ReadString('\n') // $len
				arg, _ := rd.ReadString('\n')
				parts = append(parts, strings.TrimSpace(arg))
			}
			cmds = append(cmds, strings.Join(parts, " "))
			if parts[0] == "AUTH" {
				c.Write([]byte("+OK\r\n"))
			} else {
				c.Write([]byte("+PONG\r\n"))
			}
		}
		got <- strings.Join(cmds, "; ")
	}()
	res, code := runCheck(t, config.Check{Type: config.CheckExternalService, URL: "redis://app:s3cret@" + ln.Addr().String()})
	wantPass(t, res, code)
	if cmds := <-got; cmds != "AUTH app s3cret; PING" {
		t.Fatalf("commands = %q", cmds)
	}
}

func TestExternal_NATS(t *testing.T) {
	t.Parallel()
	addr := servicetest.Need(t, servicetest.NATS)
	res, code := runCheck(t, config.Check{Type: config.CheckExternalService, URL: "nats://" + addr})
	wantPass(t, res, code)
	wantDown(t, config.Check{Type: config.CheckExternalService, URL: "nats://" + closedPort(t),
		Timeout: config.Duration(2 * time.Second)}, "refused")
}

func TestExternal_RabbitMQ(t *testing.T) {
	t.Parallel()
	addr := servicetest.Need(t, servicetest.RabbitMQ)
	res, code := runCheck(t, config.Check{Type: config.CheckExternalService, URL: "amqp://guest:guest@" + addr + "/"})
	wantPass(t, res, code)
	wantDown(t, config.Check{Type: config.CheckExternalService, URL: "amqp://guest:guest@" + closedPort(t) + "/",
		Timeout: config.Duration(2 * time.Second)}, "refused")
}

func TestExternal_TCP(t *testing.T) {
	t.Parallel()
	up := silentServer(t)
	for _, typ := range []string{config.CheckTCP, config.CheckExternalService} {
		res, code := runCheck(t, config.Check{Type: typ, URL: "tcp://" + up})
		wantPass(t, res, code)
		wantDown(t, config.Check{Type: typ, URL: "tcp://" + closedPort(t)}, "refused")
	}
	res, code := runCheck(t, config.Check{Type: config.CheckTCP, URL: up})
	wantPass(t, res, code)
}

func TestHTTPCheck(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	res, code := runCheck(t, config.Check{Type: config.CheckHTTP, URL: srv.URL + "/health"})
	wantPass(t, res, code)
	wantDown(t, config.Check{Type: config.CheckHTTP, URL: srv.URL + "/down"}, "503 Service Unavailable")
	wantDown(t, config.Check{Type: config.CheckHTTP, URL: "http://" + closedPort(t) + "/"}, "refused")
}

func TestNew_BadChecks(t *testing.T) {
	t.Parallel()
	_, err := New([]config.Check{
		{Name: "a", Type: config.CheckExternalService, URL: "ftp://host/"},
		{Name: "b", Type: config.CheckDatabase, URL: "redis://h/0"},
		{Name: "c", Type: config.CheckDatabase},
		{Name: "d", Type: config.CheckDatabase, URL: "mongodb://h/db"},
		{Name: "a", Type: config.CheckTCP, URL: "127.0.0.1:1"},
	})
	for _, want := range []string{
		`health.checks[0] (a): no external_service check speaks "ftp://"`,
		`health.checks[1] (b): database redis://h/0 has the unknown scheme "redis"`,
		`health.checks[2] (c): no database to check`,
		`health.checks[3] (d): a MongoDB is checked through its client`,
		`health.checks[4] (a): another check has the same name`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
