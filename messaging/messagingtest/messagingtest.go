// Package messagingtest is the conformance suite every messaging backend runs: the same
// program must behave the same on memory, NATS, RabbitMQ and Kafka.
//
//	func TestConformance(t *testing.T) {
//		messagingtest.Run(t, func(t *testing.T) messagingtest.Harness {
//			ns := "t" + randomSuffix()
//			return messagingtest.Harness{Connect: func(t testing.TB, o messaging.Options) *messaging.Bus { ... }}
//		})
//	}
package messagingtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/messaging"
)

// Harness connects a test case to a backend.
type Harness struct {
	// Connect returns a new Bus, a new connection each call (as another process would
	// have), all on the same broker and namespace for the whole test case. The harness
	// closes it at the end of the test (Kill or Close first is fine).
	Connect func(t testing.TB, opts messaging.Options) *messaging.Bus
	// Wait bounds every wait of the suite. Defaults to 20s.
	Wait time.Duration
}

// Run runs every case, each with a fresh harness from setup (so each its own namespace).
func Run(t *testing.T, setup func(t *testing.T) Harness) {
	cases := []struct {
		name string
		f    func(t *testing.T, h Harness)
	}{
		{"PublishSubscribe", testPublishSubscribe},
		{"Wildcards", testWildcards},
		{"GroupsAndFanOut", testGroupsAndFanOut},
		{"RetryThenDeadLetter", testRetryThenDeadLetter},
		{"RetryThenSuccess", testRetryThenSuccess},
		{"Delay", testDelay},
		{"OrderingPerKey", testOrderingPerKey},
		{"AtLeastOnceAcrossCrash", testAtLeastOnceAcrossCrash},
		{"CloseWithInFlight", testCloseWithInFlight},
		{"ContextCancel", testContextCancel},
		{"BadInput", testBadInput},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := setup(t)
			if h.Wait == 0 {
				h.Wait = 20 * time.Second
			}
			c.f(t, h)
		})
	}
}

// Options are the suite's Bus options: quick retries, quiet logs.
func Options() messaging.Options {
	return messaging.Options{
		Retry:        messaging.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
		DrainTimeout: 10 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func connect(t *testing.T, h Harness) *messaging.Bus {
	t.Helper()
	b := h.Connect(t, Options())
	t.Cleanup(func() { b.Close() })
	return b
}

// recorder collects delivered messages.
type recorder struct {
	mu   sync.Mutex
	msgs []*messaging.Message
	ch   chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1)} }

func (r *recorder) handler(ctx context.Context, m *messaging.Message) error {
	r.add(m)
	return nil
}

func (r *recorder) add(m *messaging.Message) {
	c := *m
	r.mu.Lock()
	r.msgs = append(r.msgs, &c)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []*messaging.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// waitFor waits until cond holds over the recorded messages.
func (r *recorder) waitFor(t *testing.T, h Harness, what string, cond func([]*messaging.Message) bool) []*messaging.Message {
	t.Helper()
	deadline := time.After(h.Wait)
	for {
		if ms := r.snapshot(); cond(ms) {
			return ms
		}
		select {
		case <-r.ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			ms := r.snapshot()
			t.Fatalf("timed out after %s waiting for %s; got %d messages: %s", h.Wait, what, len(ms), describe(ms))
			return nil
		}
	}
}

func (r *recorder) waitCount(t *testing.T, h Harness, n int) []*messaging.Message {
	t.Helper()
	return r.waitFor(t, h, fmt.Sprintf("%d messages", n), func(ms []*messaging.Message) bool { return len(ms) >= n })
}

func describe(ms []*messaging.Message) string {
	s := ""
	for i, m := range ms {
		if i == 20 {
			return s + " …"
		}
		s += fmt.Sprintf(" %s:%q", m.Topic, m.Payload)
	}
	return s
}

// quiet gives stray deliveries a chance to arrive before a test checks there were none.
func quiet() { time.Sleep(300 * time.Millisecond) }

func publish(t *testing.T, b *messaging.Bus, topic string, msgs ...*messaging.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Publish(ctx, topic, msgs...); err != nil {
		t.Fatalf("Publish(%s): %v", topic, err)
	}
}

func subscribe(t *testing.T, b *messaging.Bus, pattern string, h messaging.Handler, opts ...messaging.SubscribeOption) *messaging.Subscription {
	t.Helper()
	s, err := b.Subscribe(context.Background(), pattern, h, opts...)
	if err != nil {
		t.Fatalf("Subscribe(%s): %v", pattern, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func payloads(ms []*messaging.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Payload)
	}
	slices.Sort(out)
	return out
}

func testPublishSubscribe(t *testing.T, h Harness) {
	b := connect(t, h)
	rec := newRecorder()
	subscribe(t, b, "orders.created", rec.handler)
	before := time.Now().Add(-time.Second)
	var msgs []*messaging.Message
	for i := range 10 {
		msgs = append(msgs, &messaging.Message{Key: "k" + strconv.Itoa(i%3), Payload: []byte(`{"n":` + strconv.Itoa(i) + `}`),
			Headers: map[string]string{"X-Test": "v" + strconv.Itoa(i)}})
	}
	publish(t, b, "orders.created", msgs...)
	got := rec.waitCount(t, h, 10)
	byID := map[string]*messaging.Message{}
	for _, m := range got {
		byID[m.ID] = m
	}
	for i, sent := range msgs {
		m := byID[sent.ID]
		if m == nil {
			t.Fatalf("message %d (id %s) was not delivered", i, sent.ID)
		}
		if m.Topic != "orders.created" || m.Key != sent.Key || string(m.Payload) != string(sent.Payload) ||
			m.Headers["X-Test"] != sent.Headers["X-Test"] || m.Attempt != 1 || m.Time.Before(before) {
			t.Errorf("message %d delivered as topic=%q key=%q payload=%q header=%q attempt=%d time=%v; sent key=%q payload=%q header=%q",
				i, m.Topic, m.Key, m.Payload, m.Headers["X-Test"], m.Attempt, m.Time, sent.Key, sent.Payload, sent.Headers["X-Test"])
		}
	}
	quiet()
	if n := len(rec.snapshot()); n != 10 {
		t.Errorf("got %d deliveries for 10 messages and no fault", n)
	}
}

func testWildcards(t *testing.T, h Harness) {
	b := connect(t, h)
	cases := []struct {
		pattern string
		want    []string
	}{
		{"user.*", []string{"user.created"}},
		{"user.>", []string{"user.created", "user.a.b"}},
		{"user", []string{"user"}},
		{"*.created", []string{"user.created", "order.created", "users.created"}},
		{"*.*.b", []string{"user.a.b"}},
	}
	recs := make([]*recorder, len(cases))
	for i, c := range cases {
		recs[i] = newRecorder()
		subscribe(t, b, c.pattern, recs[i].handler)
	}
	for _, topic := range []string{"user", "user.created", "user.a.b", "order.created", "users.created", "order.user.created"} {
		publish(t, b, topic, &messaging.Message{Payload: []byte(topic)})
	}
	for i, c := range cases {
		recs[i].waitFor(t, h, c.pattern+" to get "+fmt.Sprint(c.want), func(ms []*messaging.Message) bool { return len(ms) >= len(c.want) })
	}
	quiet()
	for i, c := range cases {
		got := payloads(recs[i].snapshot())
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("pattern %q got %v, want %v", c.pattern, got, want)
		}
		for _, m := range recs[i].snapshot() {
			if m.Topic != string(m.Payload) {
				t.Errorf("pattern %q: message published to %q delivered with Topic %q", c.pattern, m.Payload, m.Topic)
			}
		}
	}
}

func testGroupsAndFanOut(t *testing.T, h Harness) {
	b1, b2 := connect(t, h), connect(t, h)
	fan1, fan2, g1, g2 := newRecorder(), newRecorder(), newRecorder(), newRecorder()
	subscribe(t, b1, "events.*", fan1.handler)
	subscribe(t, b2, "events.*", fan2.handler)
	subscribe(t, b1, "events.*", g1.handler, messaging.Group("workers"))
	subscribe(t, b2, "events.*", g2.handler, messaging.Group("workers"))
	const n = 40
	var msgs []*messaging.Message
	for i := range n {
		msgs = append(msgs, &messaging.Message{Key: strconv.Itoa(i), Payload: []byte(strconv.Itoa(i))})
	}
	publish(t, b1, "events.happened", msgs...)
	fan1.waitCount(t, h, n)
	fan2.waitCount(t, h, n)
	both := func() []*messaging.Message { return append(g1.snapshot(), g2.snapshot()...) }
	deadline := time.Now().Add(h.Wait)
	for len(unique(both())) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	quiet()
	if u := unique(both()); len(u) != n {
		t.Fatalf("the group handled %d distinct messages of %d", len(u), n)
	}
	total := len(both())
	if total >= 2*n {
		t.Fatalf("the group's two members handled %d deliveries for %d messages: each message went to every member, as in fan-out", total, n)
	}
	if total > n {
		t.Logf("the group handled %d duplicates (at least once; a member joining can cause them)", total-n)
	}
	t.Logf("group split: %d / %d", len(g1.snapshot()), len(g2.snapshot()))
	for _, r := range []*recorder{fan1, fan2} {
		if got := len(unique(r.snapshot())); got != n {
			t.Errorf("a fan-out subscriber got %d distinct messages of %d", got, n)
		}
	}
}

func unique(ms []*messaging.Message) map[string]bool {
	u := map[string]bool{}
	for _, m := range ms {
		u[m.ID] = true
	}
	return u
}

func testRetryThenDeadLetter(t *testing.T, h Harness) {
	b := connect(t, h)
	var calls atomic.Int32
	var attempts sync.Map
	subscribe(t, b, "jobs.failing", func(ctx context.Context, m *messaging.Message) error {
		calls.Add(1)
		attempts.Store(m.Attempt, true)
		return errors.New("the payment service said no")
	}, messaging.Group("payments"))
	dlq := newRecorder()
	subscribe(t, b, "jobs.failing.dlq", dlq.handler)
	// A wildcard subscriber does not get the dead letters (only a pattern naming them does).
	wild := newRecorder()
	subscribe(t, b, "jobs.>", wild.handler)
	publish(t, b, "jobs.failing", &messaging.Message{Key: "order-7", Payload: []byte("charge"), Headers: map[string]string{"X-Order": "7"}})
	got := dlq.waitCount(t, h, 1)
	m := got[0]
	if m.Topic != "jobs.failing.dlq" || string(m.Payload) != "charge" || m.Key != "order-7" || m.Headers["X-Order"] != "7" {
		t.Errorf("dead letter: topic %q payload %q key %q X-Order %q", m.Topic, m.Payload, m.Key, m.Headers["X-Order"])
	}
	want := map[string]string{
		messaging.HeaderDeadLetterReason:   "the payment service said no",
		messaging.HeaderDeadLetterAttempts: "3",
		messaging.HeaderDeadLetterTopic:    "jobs.failing",
		messaging.HeaderDeadLetterGroup:    "payments",
	}
	for k, v := range want {
		if m.Headers[k] != v {
			t.Errorf("dead letter header %s = %q, want %q", k, m.Headers[k], v)
		}
	}
	if m.Headers[messaging.HeaderDeadLetterID] == "" {
		t.Errorf("dead letter has no %s", messaging.HeaderDeadLetterID)
	}
	quiet()
	if n := calls.Load(); n != 3 {
		t.Errorf("handler called %d times, want 3 (MaxAttempts)", n)
	}
	for a := 1; a <= 3; a++ {
		if _, ok := attempts.Load(a); !ok {
			t.Errorf("no handler call saw Attempt=%d", a)
		}
	}
	for _, m := range wild.snapshot() {
		if messaging.IsDeadLetterTopic(m.Topic) {
			t.Errorf("the wildcard subscription jobs.> got the dead letter %s", m.Topic)
		}
	}
	if n := len(dlq.snapshot()); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
}

func testRetryThenSuccess(t *testing.T, h Harness) {
	b := connect(t, h)
	rec := newRecorder()
	subscribe(t, b, "jobs.flaky", func(ctx context.Context, m *messaging.Message) error {
		if m.Attempt < 3 {
			return fmt.Errorf("attempt %d fails", m.Attempt)
		}
		rec.add(m)
		return nil
	}, messaging.Retry(messaging.RetryPolicy{MaxAttempts: 5}))
	dlq := newRecorder()
	subscribe(t, b, "jobs.flaky.dlq", dlq.handler)
	publish(t, b, "jobs.flaky", &messaging.Message{Payload: []byte("x")})
	got := rec.waitCount(t, h, 1)
	if got[0].Attempt != 3 {
		t.Errorf("succeeded on attempt %d, want 3", got[0].Attempt)
	}
	quiet()
	if n := len(dlq.snapshot()); n != 0 {
		t.Errorf("%d dead letters for a message that succeeded on its third attempt", n)
	}
	if n := len(rec.snapshot()); n != 1 {
		t.Errorf("handled %d times after succeeding", n)
	}
}

func testDelay(t *testing.T, h Harness) {
	b := connect(t, h)
	rec := newRecorder()
	subscribe(t, b, "reminders.*", rec.handler, messaging.Group("reminders"))
	const delay = 1500 * time.Millisecond
	start := time.Now()
	publish(t, b, "reminders.later", &messaging.Message{Payload: []byte("later"), Delay: delay})
	publish(t, b, "reminders.now", &messaging.Message{Payload: []byte("now")})
	got := rec.waitCount(t, h, 2)
	arrived := time.Since(start)
	if string(got[0].Payload) != "now" || string(got[1].Payload) != "later" {
		t.Fatalf("order of arrival %s %s, want now then later", got[0].Payload, got[1].Payload)
	}
	// A lower bound only: the broker must not deliver early (it may deliver late on a busy
	// machine). 20ms of slack covers brokers that keep time in milliseconds.
	if arrived < delay-20*time.Millisecond {
		t.Fatalf("the delayed message arrived %s after publishing, before its %s delay", arrived, delay)
	}
	quiet()
	if n := len(rec.snapshot()); n != 2 {
		t.Errorf("%d deliveries, want 2", n)
	}
}

func testOrderingPerKey(t *testing.T, h Harness) {
	b := connect(t, h)
	const keys, perKey = 6, 40
	var mu sync.Mutex
	seen := map[string][]int{}
	running := map[string]int{}
	var concurrent, maxConcurrent int
	var overlap atomic.Bool
	rec := newRecorder()
	subscribe(t, b, "ledger.entries", func(ctx context.Context, m *messaging.Message) error {
		mu.Lock()
		running[m.Key]++
		if running[m.Key] > 1 {
			overlap.Store(true)
		}
		concurrent++
		maxConcurrent = max(maxConcurrent, concurrent)
		mu.Unlock()
		time.Sleep(time.Millisecond)
		n, _ := strconv.Atoi(string(m.Payload))
		mu.Lock()
		seen[m.Key] = append(seen[m.Key], n)
		running[m.Key]--
		concurrent--
		mu.Unlock()
		rec.add(m)
		return nil
	}, messaging.Concurrency(8), messaging.Group("ledger"))
	var msgs []*messaging.Message
	for i := range perKey {
		for k := range keys {
			msgs = append(msgs, &messaging.Message{Key: "acct-" + strconv.Itoa(k), Payload: []byte(strconv.Itoa(i))})
		}
	}
	for i := 0; i < len(msgs); i += 30 {
		publish(t, b, "ledger.entries", msgs[i:min(i+30, len(msgs))]...)
	}
	rec.waitCount(t, h, keys*perKey)
	if overlap.Load() {
		t.Error("two messages of one key were handled at the same time")
	}
	mu.Lock()
	defer mu.Unlock()
	for k, ns := range seen {
		if !slices.IsSorted(ns) || len(ns) != perKey {
			t.Errorf("key %s handled in order %v, want 0..%d", k, ns, perKey-1)
		}
	}
	if maxConcurrent < 2 {
		t.Errorf("at most %d handler calls ran at once with Concurrency(8) and %d keys", maxConcurrent, keys)
	}
	t.Logf("up to %d handler calls at once", maxConcurrent)
}

func testAtLeastOnceAcrossCrash(t *testing.T, h Harness) {
	crashing := h.Connect(t, Options())
	t.Cleanup(func() { crashing.Close() })
	got := make(chan *messaging.Message, 10)
	_, err := crashing.Subscribe(context.Background(), "payments.charge", func(ctx context.Context, m *messaging.Message) error {
		got <- m
		<-ctx.Done() // stuck until the process dies
		return ctx.Err()
	}, messaging.Group("chargers"))
	if err != nil {
		t.Fatal(err)
	}
	pub := connect(t, h)
	publish(t, pub, "payments.charge", &messaging.Message{Payload: []byte("charge-1")})
	var first *messaging.Message
	select {
	case first = <-got:
	case <-time.After(h.Wait):
		t.Fatal("the first member never got the message")
	}
	crashing.Kill() // as if the process died: no ack
	survivor := connect(t, h)
	rec := newRecorder()
	subscribe(t, survivor, "payments.charge", rec.handler, messaging.Group("chargers"))
	ms := rec.waitCount(t, h, 1)
	if ms[0].ID != first.ID || string(ms[0].Payload) != "charge-1" {
		t.Fatalf("the surviving member got %s %q, want the unacknowledged %s", ms[0].ID, ms[0].Payload, first.ID)
	}
	t.Logf("redelivered after the crash (Redelivered=%v)", ms[0].Redelivered)
}

func testCloseWithInFlight(t *testing.T, h Harness) {
	b := connect(t, h)
	gate := make(chan struct{})
	started := make(chan string, 100)
	var ctxErr atomic.Value
	sub, err := b.Subscribe(context.Background(), "work.items", func(ctx context.Context, m *messaging.Message) error {
		started <- string(m.Payload)
		<-gate
		if ctx.Err() != nil {
			ctxErr.Store(ctx.Err())
		}
		return nil
	}, messaging.Group("workers"))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*messaging.Message
	for i := range 5 {
		msgs = append(msgs, &messaging.Message{Key: "same", Payload: []byte(strconv.Itoa(i))})
	}
	publish(t, b, "work.items", msgs...)
	var first string
	select {
	case first = <-started:
	case <-time.After(h.Wait):
		t.Fatal("no message reached the handler")
	}
	closed := make(chan struct{})
	go func() {
		sub.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a handler was still running")
	case <-time.After(200 * time.Millisecond):
	}
	close(gate)
	select {
	case <-closed:
	case <-time.After(h.Wait):
		t.Fatal("Close did not return after the handler did")
	}
	if err := ctxErr.Load(); err != nil {
		t.Errorf("the running handler's context was cancelled during the drain: %v", err)
	}
	select {
	case p := <-started:
		t.Fatalf("message %s was handed to the handler after Close began", p)
	default:
	}
	// The finished message was acknowledged; the others were given back and go to the next member.
	rec := newRecorder()
	b2 := connect(t, h)
	subscribe(t, b2, "work.items", rec.handler, messaging.Group("workers"))
	rec.waitFor(t, h, "the 4 messages not handled", func(ms []*messaging.Message) bool { return len(unique(ms)) >= 4 })
	quiet()
	got := payloads(rec.snapshot())
	if len(got) > 4 {
		t.Logf("the next member got %v: duplicates of released messages (at least once)", got)
	}
	for _, p := range got {
		if p == first {
			t.Errorf("message %s, acknowledged during the drain, was delivered again; got %v", first, got)
		}
	}
	if len(unique(rec.snapshot())) != 4 {
		t.Errorf("the next member got %v, want the 4 messages not handled", got)
	}
}

func testContextCancel(t *testing.T, h Harness) {
	b := connect(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	rec := newRecorder()
	sub, err := b.Subscribe(ctx, "feed.items", rec.handler)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, "feed.items", &messaging.Message{Payload: []byte("1")})
	rec.waitCount(t, h, 1)
	cancel()
	select {
	case <-sub.Done():
	case <-time.After(h.Wait):
		t.Fatal("the subscription did not end when its context was cancelled")
	}
	publish(t, b, "feed.items", &messaging.Message{Payload: []byte("2")})
	quiet()
	if n := len(rec.snapshot()); n != 1 {
		t.Errorf("%d messages handled; a message published after the cancel was delivered", n)
	}
}

func testBadInput(t *testing.T, h Harness) {
	b := connect(t, h)
	noop := func(context.Context, *messaging.Message) error { return nil }
	for _, p := range []string{"", "user.", ".user", "user..created", "user.>.x", "us*er", "user.>x", "user created", "_shoal.x"} {
		if _, err := b.Subscribe(context.Background(), p, noop); !errors.Is(err, messaging.ErrInvalidPattern) {
			t.Errorf("Subscribe(%q) = %v, want ErrInvalidPattern", p, err)
		}
	}
	ctx := context.Background()
	for _, topic := range []string{"", "user.*", "user.>", "a..b", "naïve"} {
		if err := b.Publish(ctx, topic, &messaging.Message{Payload: []byte("x")}); !errors.Is(err, messaging.ErrInvalidTopic) {
			t.Errorf("Publish(%q) = %v, want ErrInvalidTopic", topic, err)
		}
	}
	limit := b.Driver().MaxPayload()
	rec := newRecorder()
	subscribe(t, b, "blobs.*", rec.handler)
	err := b.Publish(ctx, "blobs.big", &messaging.Message{Payload: make([]byte, 10)}, &messaging.Message{Payload: make([]byte, limit+1)})
	var pe *messaging.PayloadError
	if !errors.As(err, &pe) || pe.Size != limit+1 || pe.Limit != limit {
		t.Fatalf("Publish of %d bytes (limit %d) = %v, want a *PayloadError", limit+1, limit, err)
	}
	if err := b.Publish(ctx, "blobs.nil", nil); !errors.Is(err, messaging.ErrInvalidMessage) {
		t.Errorf("Publish(nil message) = %v, want ErrInvalidMessage", err)
	}
	if err := b.Publish(ctx, "blobs.neg", &messaging.Message{Delay: -time.Second}); !errors.Is(err, messaging.ErrInvalidMessage) {
		t.Errorf("Publish(negative delay) = %v, want ErrInvalidMessage", err)
	}
	if err := b.Publish(ctx, "blobs.hdr", &messaging.Message{Headers: map[string]string{"Bad Name": "x"}}); !errors.Is(err, messaging.ErrInvalidMessage) {
		t.Errorf("Publish(header name with a space) = %v, want ErrInvalidMessage", err)
	}
	// Nothing of a refused batch was sent, not even its valid first message.
	publish(t, b, "blobs.ok", &messaging.Message{Payload: []byte("ok")})
	rec.waitCount(t, h, 1)
	quiet()
	if got := payloads(rec.snapshot()); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("got %v after refused publishes, want only [ok]", got)
	}
}
