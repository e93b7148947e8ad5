package nats_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/shoal-sh/shoal/internal/servicetest"
	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/messagingtest"
	"github.com/shoal-sh/shoal/messaging/nats"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"))
}

func suffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// embedded starts an in-process nats-server with JetStream on dir; port 0 picks one.
func embedded(t testing.TB, dir string, port int, maxPayload int32) *natsserver.Server {
	t.Helper()
	if port == 0 {
		port = -1
	}
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true, MaxPayload: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the embedded nats-server did not start")
	}
	return s
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func harness(url string, cleanup func(t *testing.T, prefix string)) func(t *testing.T) messagingtest.Harness {
	return func(t *testing.T) messagingtest.Harness {
		prefix := "t" + suffix()
		if cleanup != nil {
			t.Cleanup(func() { cleanup(t, prefix) })
		}
		return messagingtest.Harness{Connect: func(t testing.TB, o messaging.Options) *messaging.Bus {
			b, err := nats.Open(context.Background(), nats.Options{URL: url, Prefix: prefix, AckWait: time.Second, MemoryStorage: true}, o)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}}
	}
}

func TestConformance_Embedded(t *testing.T) {
	s := embedded(t, t.TempDir(), 0, 0)
	defer s.Shutdown()
	messagingtest.Run(t, harness(s.ClientURL(), nil))
}

// TestConformance_NATS29 runs the suite against the machine's NATS server (2.9 here), each
// case in a stream of its own that is deleted afterwards.
func TestConformance_NATS29(t *testing.T) {
	addr := servicetest.Need(t, servicetest.NATS)
	url := "nats://" + addr
	messagingtest.Run(t, harness(url, func(t *testing.T, prefix string) {
		nc, err := gonats.Connect(url)
		if err != nil {
			return
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		js.DeleteStream(ctx, prefix)
	}))
}

// TestSubject_MatchesReference checks that the NATS subject of a pattern, as nats-server
// itself matches subjects, accepts exactly the topics the reference matcher does.
func TestSubject_MatchesReference(t *testing.T) {
	t.Parallel()
	messagingtest.CheckPatterns(t, 3000, func(p messaging.Pattern, topic string) bool {
		return natsserver.SubjectMatchesFilter("events."+topic, nats.Subject("events", p))
	})
}

func TestOpen_ServerThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	start := time.Now()
	_, err = nats.Open(context.Background(), nats.Options{URL: "nats://user:s3cret@" + addr, ConnectTimeout: time.Second}, messaging.Options{})
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	if !strings.Contains(err.Error(), "cannot connect") || !strings.Contains(err.Error(), "NATS_URL") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q should say it cannot connect, name NATS_URL and hide the password", err)
	}
	t.Logf("%s (after %s)", err, time.Since(start).Round(time.Millisecond))
}

func TestOpen_ServerWithoutJetStream(t *testing.T) {
	t.Parallel()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Shutdown()
	s.ReadyForConnections(5 * time.Second)
	_, err = nats.Open(context.Background(), nats.Options{URL: s.ClientURL(), ConnectTimeout: time.Second}, messaging.Options{})
	if err == nil || !strings.Contains(err.Error(), "JetStream") {
		t.Fatalf("Open against a server without JetStream = %v, want an error saying JetStream is needed", err)
	}
}

// TestPublish_OverServerMaxPayload: the limit is the server's max_payload (here 64 KiB);
// a larger payload is refused before anything is sent.
func TestPublish_OverServerMaxPayload(t *testing.T) {
	t.Parallel()
	s := embedded(t, t.TempDir(), 0, 64<<10)
	defer s.Shutdown()
	b, err := nats.Open(context.Background(), nats.Options{URL: s.ClientURL(), Prefix: "p" + suffix(), MemoryStorage: true}, messaging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Publish(context.Background(), "blobs.big", &messaging.Message{Payload: make([]byte, 64<<10)})
	var pe *messaging.PayloadError
	if !errors.As(err, &pe) || pe.Limit != 64<<10-1024 {
		t.Fatalf("Publish of 64 KiB = %v, want a *PayloadError with the server's limit less the header reserve", err)
	}
	t.Log(err)
	// Headers count against the server's limit too: a payload under shoal's limit with huge
	// headers is refused by the client library, and Publish says so.
	err = b.Publish(context.Background(), "blobs.hdr", &messaging.Message{Payload: make([]byte, 60<<10),
		Headers: map[string]string{"X-Big": strings.Repeat("x", 8<<10)}})
	if err == nil {
		t.Fatal("a message over max_payload with its headers was accepted")
	}
	t.Log(err)
}

// TestFault_ServerRestart stops the in-process server and starts it again on the same store
// and port while a publisher and a group subscriber run. Both reconnect by themselves and
// every confirmed message is delivered; duplicates are counted and printed.
func TestFault_ServerRestart(t *testing.T) {
	dir := t.TempDir()
	s := embedded(t, dir, 0, 0)
	port := s.Addr().(*net.TCPAddr).Port
	url := s.ClientURL()
	prefix := "f" + suffix()
	opts := messagingtest.Options()
	pub, err := nats.Open(context.Background(), nats.Options{URL: url, Prefix: prefix, AckWait: 2 * time.Second}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := nats.Open(context.Background(), nats.Options{URL: url, Prefix: prefix, AckWait: 2 * time.Second}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	if _, err := sub.Subscribe(context.Background(), "orders.*", func(ctx context.Context, m *messaging.Message) error {
		mu.Lock()
		seen[string(m.Payload)]++
		mu.Unlock()
		return nil
	}, messaging.Group("fault"), messaging.Concurrency(4)); err != nil {
		t.Fatal(err)
	}
	var confirmed sync.Map
	var nConfirmed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := fmt.Sprintf("m%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			if err := pub.Publish(ctx, "orders.placed", &messaging.Message{Payload: []byte(p)}); err == nil {
				confirmed.Store(p, true)
				nConfirmed.Add(1)
			}
			cancel()
		}
	}()
	waitUntil(t, func() bool { return nConfirmed.Load() > 200 })
	s.Shutdown()
	s.WaitForShutdown()
	before := nConfirmed.Load()
	time.Sleep(500 * time.Millisecond) // publishes wait for the server meanwhile
	s = embedded(t, dir, port, 0)
	defer s.Shutdown()
	waitUntil(t, func() bool { return nConfirmed.Load() > before+200 })
	close(stop)
	wg.Wait()
	total := 0
	confirmed.Range(func(k, _ any) bool { total++; return true })
	waitUntil(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		confirmed.Range(func(k, _ any) bool {
			if seen[k.(string)] > 0 {
				n++
			}
			return true
		})
		return n == total
	})
	mu.Lock()
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	mu.Unlock()
	fmt.Printf("nats server restart: %d confirmed messages, all delivered, %d duplicates\n", total, dups)
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
