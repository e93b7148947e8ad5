package kafka_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/kafka"
	"github.com/shoal-sh/shoal/messaging/messagingtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func suffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cluster starts franz-go's in-process Kafka (kfake): real brokers speaking the Kafka
// protocol, consumer groups included.
func cluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func options(c *kfake.Cluster, prefix string) kafka.Options {
	return kafka.Options{Brokers: c.ListenAddrs(), Prefix: prefix, MetadataRefresh: 250 * time.Millisecond,
		CommitInterval: 100 * time.Millisecond, SessionTimeout: 6 * time.Second}
}

func TestConformance(t *testing.T) {
	messagingtest.Run(t, func(t *testing.T) messagingtest.Harness {
		c := cluster(t)
		prefix := "t" + suffix()
		return messagingtest.Harness{Connect: func(t testing.TB, o messaging.Options) *messaging.Bus {
			b, err := kafka.Open(context.Background(), options(c, prefix), o)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}}
	})
}

func TestTopicRegex_MatchesReference(t *testing.T) {
	t.Parallel()
	messagingtest.CheckPatterns(t, 3000, func(p messaging.Pattern, topic string) bool {
		return regexp.MustCompile(kafka.TopicRegex("events", p)).MatchString("events." + topic)
	})
	// shoal's own topics never match a wildcard.
	if regexp.MustCompile(kafka.TopicRegex("events", messaging.MustPattern(">"))).MatchString("events._delay.1500") {
		t.Error("> matches the delay topic events._delay.1500")
	}
}

func TestOpen_BrokersThatDoNotAnswer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = kafka.Open(context.Background(), kafka.Options{Brokers: []string{addr}, DialTimeout: time.Second}, messaging.Options{})
	if err == nil || !strings.Contains(err.Error(), "no broker") || !strings.Contains(err.Error(), "KAFKA_BROKERS") {
		t.Fatalf("Open against a closed port = %v; want an error naming KAFKA_BROKERS", err)
	}
	t.Log(err)
}

// TestPublish_OverBrokerLimit: the broker's message.max.bytes is set to 10000; with shoal's
// limit above it the broker's refusal comes back from Publish (not retried, not dropped).
func TestPublish_OverBrokerLimit(t *testing.T) {
	c := cluster(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "10000"}))
	o := options(c, "big"+suffix())
	o.MaxPayload = 50000
	b, err := kafka.Open(context.Background(), o, messagingtest.Options())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	big := make([]byte, 20000)
	rand.Read(big) // incompressible: the producer compresses batches
	err = b.Publish(ctx, "blobs.big", &messaging.Message{Payload: big})
	if err == nil {
		t.Fatal("a 20000-byte record was accepted by a broker with message.max.bytes 10000")
	}
	t.Log(err)
	err = b.Publish(ctx, "blobs.big", &messaging.Message{Payload: make([]byte, 50001)})
	var pe *messaging.PayloadError
	if !errors.As(err, &pe) {
		t.Fatalf("over shoal's own limit: %v, want a *PayloadError", err)
	}
}

// TestGroup_RebalanceSafeCommits: members with concurrent handlers join and leave (cleanly
// and by crashing) while records flow; every record is handled at least once, and the
// group's commits never pass a record whose handler had not succeeded (a member that took
// over would otherwise skip it). Duplicates are counted and printed.
func TestGroup_RebalanceSafeCommits(t *testing.T) {
	c := cluster(t)
	o := options(c, "rb"+suffix())
	o.Partitions = 6
	opts := messagingtest.Options()
	pub, err := kafka.Open(context.Background(), o, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	handler := func(ctx context.Context, m *messaging.Message) error {
		time.Sleep(time.Duration(len(m.Payload)%3) * time.Millisecond)
		mu.Lock()
		seen[string(m.Payload)]++
		mu.Unlock()
		return nil
	}
	member := func() *messaging.Bus {
		b, err := kafka.Open(context.Background(), o, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Subscribe(context.Background(), "ledger.*", handler, messaging.Group("rb"), messaging.Concurrency(8)); err != nil {
			t.Fatal(err)
		}
		return b
	}
	const total = 3000
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < total; i += 50 {
			var batch []*messaging.Message
			for j := i; j < i+50; j++ {
				batch = append(batch, &messaging.Message{Key: fmt.Sprintf("acct-%d", j%40), Payload: []byte(fmt.Sprintf("r%d", j))})
			}
			if err := pub.Publish(context.Background(), "ledger.entries", batch...); err != nil {
				t.Error(err)
				return
			}
			sent.Add(50)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	a := member()
	waitUntil(t, func() bool { return sent.Load() > 500 })
	b := member() // joins: rebalance
	waitUntil(t, func() bool { return sent.Load() > 1200 })
	a.Close() // leaves cleanly: rebalance with commits of what is done
	cc := member()
	waitUntil(t, func() bool { return sent.Load() > 2000 })
	b.Kill() // crashes: its partitions go to the others from the last commit
	<-done
	d := member()
	defer d.Close()
	defer cc.Close()
	waitUntil(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range total {
			if seen[fmt.Sprintf("r%d", i)] == 0 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	mu.Unlock()
	fmt.Printf("kafka rebalances (join, leave, crash, join) with Concurrency(8): %d records, all handled, %d duplicates\n", total, dups)
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
