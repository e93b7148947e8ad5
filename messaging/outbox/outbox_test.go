package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/internal/natsembed"
	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/nats"
	"github.com/shoal-sh/shoal/messaging/outbox"
)

func TestMain(m *testing.M) {
	if os.Getenv("SHOAL_OUTBOX_CHILD") != "" {
		relayChild() // never returns: the parent SIGKILLs it
	}
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"))
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t *testing.T, url string) *database.DB {
	db := databasetest.Open(t, databasetest.Config(url))
	return db
}

type dialect struct {
	name string
	url  func(t testing.TB) string
}

var dialects = []dialect{{"sqlite", databasetest.SQLiteURL}, {"postgres", databasetest.PostgresURL}, {"mysql", databasetest.MySQLURL}}

// TestOutbox_CommittedOnly: what a committed transaction added is published, in order;
// what a rolled-back one added never is.
func TestOutbox_CommittedOnly(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			db := open(t, d.url(t))
			bus, err := messaging.NewMemory(messaging.Options{Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			defer bus.Close()
			got := make(chan *messaging.Message, 100)
			bus.Subscribe(context.Background(), "order.>", func(_ context.Context, m *messaging.Message) error { got <- m; return nil })
			ob, err := outbox.New(db, outbox.Options{Publisher: bus, PollInterval: 20 * time.Millisecond, LeaseTTL: time.Second, Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := ob.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := db.WithTx(ctx, nil, func(tx *sql.Tx) error {
				return ob.Add(ctx, tx, &messaging.Message{Topic: "order.created", Key: "o1", Payload: []byte("1"), Headers: map[string]string{"X-A": "b"}},
					&messaging.Message{Topic: "order.paid", Key: "o1", Payload: []byte("2")})
			}); err != nil {
				t.Fatal(err)
			}
			rollback := errors.New("rolled back")
			if err := db.WithTx(ctx, nil, func(tx *sql.Tx) error {
				ob.Add(ctx, tx, &messaging.Message{Topic: "order.created", Payload: []byte("never")})
				return rollback
			}); !errors.Is(err, rollback) {
				t.Fatal(err)
			}
			if err := db.WithTx(ctx, nil, func(tx *sql.Tx) error {
				return ob.Add(ctx, tx, &messaging.Message{Topic: "order.shipped", Key: "o1", Payload: []byte("3")})
			}); err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error)
			go func() { done <- ob.Run(runCtx) }()
			for i, want := range []string{"1", "2", "3"} {
				select {
				case m := <-got:
					if string(m.Payload) != want {
						t.Fatalf("message %d: %q, want %q (order of writing)", i, m.Payload, want)
					}
					if i == 0 && (m.Headers["X-A"] != "b" || m.Key != "o1" || m.Topic != "order.created") {
						t.Errorf("fields lost: %+v", m)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("the relay published nothing")
				}
			}
			select {
			case m := <-got:
				t.Fatalf("published %q", m.Payload)
			case <-time.After(300 * time.Millisecond):
			}
			stop()
			<-done
			var n int
			db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM shoal_outbox").Scan(&n)
			if n != 0 {
				t.Errorf("%d rows left after relaying", n)
			}
		})
	}
}

func TestOutbox_BadInput(t *testing.T) {
	db := open(t, databasetest.SQLiteURL(t))
	ob, _ := outbox.New(db, outbox.Options{MaxPayload: 10})
	ctx := context.Background()
	ob.Migrate(ctx)
	for _, m := range []*messaging.Message{{Topic: "", Payload: []byte("x")}, {Topic: "a.*"}, {Topic: "a", Payload: make([]byte, 11)}, nil} {
		err := db.WithTx(ctx, nil, func(tx *sql.Tx) error { return ob.Add(ctx, tx, m) })
		if err == nil {
			t.Errorf("Add(%+v) accepted", m)
		}
	}
}

// TestOutbox_OneRelayAtATime runs three relays on one database: at every sample at most one
// holds the lease, and when the holder stops another takes over.
func TestOutbox_OneRelayAtATime(t *testing.T) {
	db := open(t, databasetest.SQLiteURL(t))
	bus, _ := messaging.NewMemory(messaging.Options{Logger: quiet()})
	defer bus.Close()
	var obs []*outbox.Outbox
	var cancels []context.CancelFunc
	var wg sync.WaitGroup
	for i := range 3 {
		ob, err := outbox.New(db, outbox.Options{Publisher: bus, Holder: fmt.Sprint("r", i), PollInterval: 10 * time.Millisecond,
			LeaseTTL: 300 * time.Millisecond, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			ob.Migrate(context.Background())
		}
		ctx, cancel := context.WithCancel(context.Background())
		obs, cancels = append(obs, ob), append(cancels, cancel)
		wg.Add(1)
		go func() { defer wg.Done(); ob.Run(ctx) }()
	}
	defer wg.Wait()
	leader := func() int {
		n, who := 0, -1
		for i, ob := range obs {
			if ob.Leader() {
				n, who = n+1, i
			}
		}
		if n > 1 {
			t.Fatalf("%d relays hold the lease at once", n)
		}
		return who
	}
	stopped := map[int]bool{}
	for round := range 2 {
		deadline := time.Now().Add(20 * time.Second)
		who := -1
		for who < 0 || stopped[who] {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no relay took the lease", round)
			}
			who = leader()
			time.Sleep(5 * time.Millisecond)
		}
		for range 20 {
			leader()
			time.Sleep(5 * time.Millisecond)
		}
		cancels[who]()
		stopped[who] = true
	}
	for _, c := range cancels {
		c()
	}
}

// TestOutbox_RelaySIGKILLed20Times: a relay process is killed with SIGKILL twenty times in
// the middle of relaying; every message of a committed transaction is published at least
// once, none of a rolled-back one ever is. Duplicates are counted and printed.
func TestOutbox_RelaySIGKILLed20Times(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 21 processes")
	}
	srv, err := natsembed.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	url := databasetest.SQLiteURL(t)
	db := open(t, url)
	prefix := "ob" + fmt.Sprint(time.Now().UnixNano()%1e6)
	ob, err := outbox.New(db, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := ob.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	committed := map[string]bool{}
	rolledBack := map[string]bool{}
	for i := range 300 {
		var ids []string
		err := db.WithTx(ctx, nil, func(tx *sql.Tx) error {
			ids = ids[:0]
			var msgs []*messaging.Message
			for j := range 10 {
				m := &messaging.Message{Topic: "ledger.entry", Key: fmt.Sprint("k", j%3), Payload: []byte(fmt.Sprintf("%d-%d", i, j))}
				msgs = append(msgs, m)
			}
			if err := ob.Add(ctx, tx, msgs...); err != nil {
				return err
			}
			for _, m := range msgs {
				ids = append(ids, m.ID)
			}
			if i%7 == 3 {
				return errRollback
			}
			return nil
		})
		for _, id := range ids {
			if errors.Is(err, errRollback) {
				rolledBack[id] = true
			} else if err == nil {
				committed[id] = true
			}
		}
		if err != nil && !errors.Is(err, errRollback) {
			t.Fatal(err)
		}
	}
	sub, err := nats.Open(ctx, nats.Options{URL: srv.URL(), Prefix: prefix}, messaging.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	progress := make(chan struct{}, 10000)
	if _, err := sub.Subscribe(ctx, "ledger.>", func(_ context.Context, m *messaging.Message) error {
		mu.Lock()
		seen[m.ID]++
		mu.Unlock()
		progress <- struct{}{}
		return nil
	}, messaging.Group("check")); err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SHOAL_OUTBOX_CHILD=1", "OUTBOX_DB="+url, "OUTBOX_NATS="+srv.URL(), "OUTBOX_PREFIX="+prefix)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	for kill := range 20 {
		cmd := start()
		// Kill it once it has published something this time: in the middle of relaying.
		select {
		case <-progress:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("relay %d published nothing", kill)
		}
		for len(progress) > 0 {
			<-progress
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	final := start()
	defer func() { final.Process.Kill(); final.Wait() }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for id := range committed {
			if seen[id] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d committed messages never published", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for id, n := range seen {
		if rolledBack[id] {
			t.Errorf("message %s of a rolled-back transaction was published", id)
		}
		dups += n - 1
	}
	fmt.Printf("outbox relay SIGKILLed 20 times: %d committed messages all published, %d rolled back never, %d duplicates delivered\n",
		len(committed), len(rolledBack), dups)
}

var errRollback = errors.New("roll back")

// relayChild is the relay process of TestOutbox_RelaySIGKILLed20Times.
func relayChild() {
	ctx := context.Background()
	db, err := database.Open(ctx, databasetest.Config(os.Getenv("OUTBOX_DB")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	bus, err := nats.Open(ctx, nats.Options{URL: os.Getenv("OUTBOX_NATS"), Prefix: os.Getenv("OUTBOX_PREFIX")}, messaging.Options{Logger: quiet()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	// A short lease: the next relay takes over a killed one's within a second.
	ob, err := outbox.New(db, outbox.Options{Publisher: bus, BatchSize: 20, LeaseTTL: time.Second, PollInterval: 50 * time.Millisecond, Logger: quiet()})
	if err != nil {
		os.Exit(3)
	}
	ob.Run(ctx)
	os.Exit(0)
}
