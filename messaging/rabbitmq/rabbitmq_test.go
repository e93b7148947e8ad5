package rabbitmq_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/shoal-sh/shoal/internal/servicetest"
	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/messagingtest"
	"github.com/shoal-sh/shoal/messaging/rabbitmq"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func suffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func brokerURL(t testing.TB) string {
	addr := servicetest.Need(t, servicetest.RabbitMQ)
	return "amqp://guest:guest@" + addr + "/"
}

// cleanup deletes the exchanges of a test and every queue named after them. It lists the
// queues with rabbitmqctl when it can; without it the durable queues are left behind.
func cleanup(t testing.TB, url string, exchanges ...string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	if out, err := exec.Command("rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name").Output(); err == nil {
		for _, q := range strings.Fields(string(out)) {
			for _, ex := range exchanges {
				if strings.HasPrefix(q, ex+".") {
					ch.QueueDelete(q, false, false, false)
				}
			}
		}
	}
	for _, ex := range exchanges {
		ch.ExchangeDelete(ex, false, false)
		ch.ExchangeDelete(ex+".delay", false, false)
		ch.QueueDelete(ex+".dlq", false, false, false)
	}
}

func TestConformance(t *testing.T) {
	url := brokerURL(t)
	var mu sync.Mutex
	var used []string
	t.Cleanup(func() { cleanup(t, url, used...) })
	messagingtest.Run(t, func(t *testing.T) messagingtest.Harness {
		ex := "t" + suffix()
		mu.Lock()
		used = append(used, ex)
		mu.Unlock()
		return messagingtest.Harness{Connect: func(t testing.TB, o messaging.Options) *messaging.Bus {
			b, err := rabbitmq.Open(context.Background(), rabbitmq.Options{URL: url, Exchange: ex, MaxPayload: 1 << 20}, o)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}}
	})
}

// amqpMatch is RabbitMQ's topic-exchange matching, written from its documentation ("*"
// one word, "#" zero or more), for the property test; TestBindingKey_OnTheBroker checks a
// sample against the broker itself.
func amqpMatch(key, routingKey string) bool {
	var match func(k, r []string) bool
	match = func(k, r []string) bool {
		if len(k) == 0 {
			return len(r) == 0
		}
		switch k[0] {
		case "#":
			for i := 0; i <= len(r); i++ {
				if match(k[1:], r[i:]) {
					return true
				}
			}
			return false
		case "*":
			return len(r) > 0 && match(k[1:], r[1:])
		default:
			return len(r) > 0 && r[0] == k[0] && match(k[1:], r[1:])
		}
	}
	return match(strings.Split(key, "."), strings.Split(routingKey, "."))
}

func TestBindingKey_MatchesReference(t *testing.T) {
	t.Parallel()
	messagingtest.CheckPatterns(t, 3000, func(p messaging.Pattern, topic string) bool {
		return amqpMatch(rabbitmq.BindingKey(p), topic)
	})
}

// TestBindingKey_OnTheBroker binds a queue per pattern on the real broker, publishes every
// topic once and compares what each queue got with the reference matcher.
func TestBindingKey_OnTheBroker(t *testing.T) {
	url := brokerURL(t)
	ex := "pk" + suffix()
	defer cleanup(t, url, ex)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(ex, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	patterns := []string{"user.*", "user.>", ">", "*", "*.created", "user.*.b", "a.>", "*.*.>", "user", "*.a.*"}
	topics := []string{"user", "user.created", "user.a.b", "a", "a.b", "x.a.y", "user.a.b.c", "order.created"}
	queues := map[string]string{}
	for _, p := range patterns {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(q.Name, rabbitmq.BindingKey(messaging.MustPattern(p)), ex, false, nil); err != nil {
			t.Fatal(err)
		}
		queues[p] = q.Name
	}
	ch.Confirm(false)
	for _, tp := range topics {
		dc, err := ch.PublishWithDeferredConfirm(ex, tp, false, false, amqp.Publishing{Body: []byte(tp)})
		if err != nil || !dc.Wait() {
			t.Fatalf("publishing %s: %v", tp, err)
		}
	}
	for _, p := range patterns {
		got := map[string]bool{}
		for {
			d, ok, err := ch.Get(queues[p], true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			got[string(d.Body)] = true
		}
		for _, tp := range topics {
			if want := messaging.Match(p, tp); got[tp] != want {
				t.Errorf("pattern %q (binding %q), topic %q: broker routed %v, reference %v", p, rabbitmq.BindingKey(messaging.MustPattern(p)), tp, got[tp], want)
			}
		}
	}
}

func TestOpen_BrokerThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = rabbitmq.Open(context.Background(), rabbitmq.Options{URL: "amqp://guest:s3cret@" + addr + "/", ConnectTimeout: time.Second}, messaging.Options{})
	if err == nil || !strings.Contains(err.Error(), "cannot connect") || !strings.Contains(err.Error(), "RABBITMQ_URL") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open against a closed port = %v; want an error that says it cannot connect, names RABBITMQ_URL and hides the password", err)
	}
	t.Log(err)
}

// TestPublish_BrokerRefusesTheMessage: with shoal's limit set above the broker's
// max_message_size (128 MiB here), the broker closes the channel; Publish returns its
// reason instead of retrying for ever or dropping the message.
func TestPublish_BrokerRefusesTheMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 129 MiB")
	}
	url := brokerURL(t)
	ex := "big" + suffix()
	defer cleanup(t, url, ex)
	b, err := rabbitmq.Open(context.Background(), rabbitmq.Options{URL: url, Exchange: ex, MaxPayload: 1 << 30}, messagingtest.Options())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = b.Publish(ctx, "blobs.huge", &messaging.Message{Payload: make([]byte, 129<<20)})
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Publish of 129 MiB = %v, want the broker's refusal", err)
	}
	t.Log(err)
	// The Bus still works afterwards.
	if err := b.Publish(ctx, "blobs.small", &messaging.Message{Payload: []byte("x")}); err != nil {
		t.Fatalf("a small publish after the refusal failed: %v", err)
	}
}

// proxy is an in-test TCP proxy whose connections can be cut.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(u, c); u.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, u); c.Close() }()
	}
}

// cut closes every connection through the proxy, as a network failure would.
func (p *proxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns) / 2
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	return n
}

func (p *proxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// TestFault_ConnectionsCut cuts the publisher's and the subscriber's connections five times
// while messages flow. Both reconnect by themselves, the topology is declared again, and
// every confirmed message is delivered; duplicates are counted and printed.
func TestFault_ConnectionsCut(t *testing.T) {
	url := brokerURL(t)
	p := newProxy(t, strings.TrimSuffix(strings.TrimPrefix(url, "amqp://guest:guest@"), "/"))
	ex := "cut" + suffix()
	defer cleanup(t, url, ex)
	purl := "amqp://guest:guest@" + p.ln.Addr().String() + "/"
	opts := messagingtest.Options()
	ropts := rabbitmq.Options{URL: purl, Exchange: ex, ReconnectBackoff: 20 * time.Millisecond, MaxReconnectBackoff: 200 * time.Millisecond}
	pub, err := rabbitmq.Open(context.Background(), ropts, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := rabbitmq.Open(context.Background(), ropts, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	if _, err := sub.Subscribe(context.Background(), "orders.>", func(ctx context.Context, m *messaging.Message) error {
		mu.Lock()
		seen[string(m.Payload)]++
		mu.Unlock()
		return nil
	}, messaging.Group("fault"), messaging.Concurrency(4)); err != nil {
		t.Fatal(err)
	}
	var confirmed sync.Map
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				batch := []*messaging.Message{}
				for j := range 5 {
					batch = append(batch, &messaging.Message{Payload: []byte(fmt.Sprintf("w%d-%d-%d", w, i, j))})
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := pub.Publish(ctx, "orders.placed.eu", batch...); err == nil {
					for _, m := range batch {
						confirmed.Store(string(m.Payload), true)
					}
					n.Add(int64(len(batch)))
				}
				cancel()
			}
		}()
	}
	cuts := 0
	for range 5 {
		before := n.Load()
		waitUntil(t, func() bool { return n.Load() > before+200 })
		cuts += p.cut()
	}
	waitUntil(t, func() bool { return n.Load() > 0 })
	close(stop)
	wg.Wait()
	total := 0
	confirmed.Range(func(_, _ any) bool { total++; return true })
	waitUntil(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		missing := 0
		confirmed.Range(func(k, _ any) bool {
			if seen[k.(string)] == 0 {
				missing++
			}
			return true
		})
		return missing == 0
	})
	mu.Lock()
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	mu.Unlock()
	fmt.Printf("rabbitmq connections cut 5 times (%d connections): %d confirmed messages, all delivered, %d duplicates\n", cuts, total, dups)
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeadLetters_KeptInTheQueue: a dead letter is kept, once, in <exchange>.dlq although
// nothing subscribes to it, also on an exchange an earlier version bound "#.dlq"; a
// subscription to its topic gets it without the CC header that routed it there.
func TestDeadLetters_KeptInTheQueue(t *testing.T) {
	url := brokerURL(t)
	ex := "dl" + suffix()
	defer cleanup(t, url, ex)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// The topology of an earlier version: the queue bound "#.dlq".
	if err := ch.ExchangeDeclare(ex, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(ex+".dlq", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(ex+".dlq", "#.dlq", ex, false, nil); err != nil {
		t.Fatal(err)
	}

	opts := messagingtest.Options()
	opts.Retry.MaxAttempts = 1
	b, err := rabbitmq.Open(context.Background(), rabbitmq.Options{URL: url, Exchange: ex}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	dead := make(chan *messaging.Message, 1)
	if _, err := b.Subscribe(ctx, "orders.*.dlq", func(_ context.Context, m *messaging.Message) error {
		dead <- m
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe(ctx, "orders.created", func(context.Context, *messaging.Message) error {
		return fmt.Errorf("no stock")
	}, messaging.Group("billing")); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "orders.created", &messaging.Message{ID: "o-1", Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-dead:
		if m.Topic != "orders.created.dlq" || m.Headers[messaging.HeaderDeadLetterReason] == "" {
			t.Fatalf("the subscription to orders.*.dlq got topic %q, headers %v; want orders.created.dlq with the reason", m.Topic, m.Headers)
		}
		if _, ok := m.Headers["CC"]; ok {
			t.Errorf("the dead letter's headers show the routing header CC: %v", m.Headers)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no dead letter reached the subscription to orders.*.dlq in 20s")
	}
	// The publish of the dead letter was confirmed before the subscription got it, so the
	// queue holds it already, and a second copy would be there too.
	var kept []amqp.Delivery
	for {
		d, ok, err := ch.Get(ex+".dlq", true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		kept = append(kept, d)
	}
	if len(kept) != 1 || kept[0].RoutingKey != "orders.created.dlq" || kept[0].MessageId == "" {
		for _, d := range kept {
			t.Logf("kept: routing key %q, id %q, headers %v", d.RoutingKey, d.MessageId, d.Headers)
		}
		t.Fatalf("%s.dlq holds %d messages; want the one dead letter of orders.created", ex, len(kept))
	}
}
