package sqlstore_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/eventstore/sqlstore"
)

// The child process of TestSubscriberKilled: a named subscription that writes "run position"
// to a log for every event it handles (before the handler returns), checkpointing every 7.
func TestMain(m *testing.M) {
	if url := os.Getenv("SHOAL_ES_CHILD_URL"); url != "" {
		os.Exit(child(url, os.Getenv("SHOAL_ES_CHILD_LOG"), os.Getenv("SHOAL_ES_CHILD_RUN")))
	}
	os.Exit(m.Run())
}

func child(url, logPath, run string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	db, err := database.Open(ctx, databasetest.Config(url))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	store, err := sqlstore.New(ctx, db, sqlstore.Options{PollInterval: 5 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cp, err := store.Checkpoint(ctx, "killed")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Fprintf(log, "start %s %d\n", run, cp)
	sub, err := eventstore.Subscribe(ctx, store, "killed", func(_ context.Context, e eventstore.RecordedEvent) error {
		_, err := fmt.Fprintf(log, "got %s %d\n", run, e.Position)
		return err
	}, eventstore.SubscribeOptions{CheckpointEvery: 7, BatchSize: 16})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("ready")
	<-ctx.Done()
	sub.Close()
	return 0
}

func TestSubscriberKilledSQLite(t *testing.T)   { testSubscriberKilled(t, databasetest.SQLiteURL(t)) }
func TestSubscriberKilledPostgres(t *testing.T) { testSubscriberKilled(t, databasetest.PostgresURL(t)) }

// testSubscriberKilled: a subscriber process is SIGKILLed and restarted 20 times while
// events are appended. Every event is delivered; a run never gets an event at or below the
// checkpoint it started from, so every duplicate is an event after the checkpoint saved
// before the kill (the at-least-once window), and each run starts right after it.
func testSubscriberKilled(t *testing.T, url string) {
	store := open(t, url, sqlstore.Options{})
	logPath := filepath.Join(t.TempDir(), "deliveries.log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	appended := make(chan int, 1)
	go func() {
		n := 0
		defer func() { appended <- n }()
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := store.Append(ctx, fmt.Sprintf("k-%d", i%5), eventstore.Any, eventstore.NewEvent("E", map[string]int{"i": i})); err != nil {
				if ctx.Err() == nil {
					t.Error(err)
				}
				return
			}
			n++
			time.Sleep(time.Millisecond)
		}
	}()
	start := func(run int) (*exec.Cmd, *bufio.Reader) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SHOAL_ES_CHILD_URL="+url, "SHOAL_ES_CHILD_LOG="+logPath, "SHOAL_ES_CHILD_RUN="+strconv.Itoa(run))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(out)
		if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child %d did not start: %q, %v", run, line, err)
		}
		return cmd, r
	}
	delivered := func() int {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), "got ")
	}
	for run := 0; run < 20; run++ {
		cmd, _ := start(run)
		// Let it handle some events (more each time), then kill it mid-stream.
		want := delivered() + 20 + run*3
		deadline := time.Now().Add(30 * time.Second)
		for delivered() < want && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	cancel()
	total := <-appended
	// A last run, stopped cleanly once it has everything.
	cmd, _ := start(20)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if cp, _ := store.Checkpoint(context.Background(), "killed"); cp >= eventstore.Position(total) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]int{}
	starts := map[string]int64{}
	maxBefore := int64(0) // highest position delivered by the earlier runs
	runMax := map[string]int64{}
	dups := 0
	var order []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue // a line cut by the kill
		}
		n, _ := strconv.ParseInt(f[2], 10, 64)
		switch f[0] {
		case "start":
			for _, r := range order {
				maxBefore = max(maxBefore, runMax[r])
			}
			starts[f[1]] = n
			order = append(order, f[1])
			if n > maxBefore {
				t.Fatalf("run %s starts after checkpoint %d, beyond the %d delivered so far", f[1], n, maxBefore)
			}
		case "got":
			if n <= starts[f[1]] {
				t.Fatalf("run %s got position %d, at or below the checkpoint %d it started from", f[1], n, starts[f[1]])
			}
			if runMax[f[1]] == 0 && n != starts[f[1]]+1 {
				t.Fatalf("run %s started at position %d, not right after its checkpoint %d", f[1], n, starts[f[1]])
			}
			if runMax[f[1]] != 0 && n != runMax[f[1]]+1 {
				t.Fatalf("run %s got position %d after %d", f[1], n, runMax[f[1]])
			}
			runMax[f[1]] = n
			if got[n]++; got[n] > 1 {
				dups++
			}
		}
	}
	if len(order) != 21 {
		t.Fatalf("%d runs logged, want 21", len(order))
	}
	for p := int64(1); p <= int64(total); p++ {
		if got[p] == 0 {
			t.Fatalf("position %d of %d was never delivered", p, total)
		}
	}
	t.Logf("%d events, 20 kills, %d duplicate deliveries (all after the checkpoint of their run)", total, dups)
}
