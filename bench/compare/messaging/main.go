// Command messaging measures publish and consume throughput of shoal's messaging package,
// the raw client library it is built on, and Watermill's backend for the same broker —
// each doing the same work: confirmed publishes (4 publishers, 50 messages a call) and
// acknowledged consumes (one consumer, prefetch 256) of N messages of one size. It is run
// by bench/messaging.sh; Watermill is a dependency of this module only.
//
//	messaging serve-nats | serve-kafka                 (prints the address, runs until stdin closes)
//	messaging -broker nats|rabbitmq|kafka -addr ADDR -impl shoal|raw|watermill -mode publish|consume -size 1024 -n 20000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/twmb/franz-go/pkg/kfake"
)

type impl interface {
	// publish sends n messages of size bytes, confirmed, from 4 goroutines in batches of 50.
	publish(ctx context.Context, n, size int) error
	// prepare creates the durable consumer (group, queue) so that preloaded messages wait for it.
	prepare(ctx context.Context) error
	// consume receives and acknowledges n messages.
	consume(ctx context.Context, n int) error
	close()
}

const (
	publishers = 4
	batch      = 50
	prefetch   = 256
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve-nats" {
		serveNATS()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "serve-kafka" {
		serveKafka()
		return
	}
	broker := flag.String("broker", "nats", "nats, rabbitmq or kafka")
	addr := flag.String("addr", "", "the broker's address (URL for nats and rabbitmq, host:port for kafka)")
	which := flag.String("impl", "shoal", "shoal, raw or watermill")
	mode := flag.String("mode", "publish", "publish or consume")
	size := flag.Int("size", 1024, "payload bytes")
	n := flag.Int("n", 20000, "messages")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	id := fmt.Sprintf("b%d", time.Now().UnixNano()%1e9)
	im, err := newImpl(ctx, *broker, *which, *addr, id)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer im.close()
	var elapsed time.Duration
	switch *mode {
	case "publish":
		start := time.Now()
		err = im.publish(ctx, *n, *size)
		elapsed = time.Since(start)
	case "consume":
		if err = im.prepare(ctx); err == nil {
			if err = im.publish(ctx, *n, *size); err == nil {
				start := time.Now()
				err = im.consume(ctx, *n)
				elapsed = time.Since(start)
			}
		}
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Printf("%.0f\n", float64(*n)/elapsed.Seconds())
}

func newImpl(ctx context.Context, broker, which, addr, id string) (impl, error) {
	switch broker + "/" + which {
	case "nats/shoal", "rabbitmq/shoal", "kafka/shoal":
		return newShoal(ctx, broker, addr, id)
	case "nats/raw":
		return newRawNATS(ctx, addr, id)
	case "rabbitmq/raw":
		return newRawRabbit(addr, id)
	case "kafka/raw":
		return newRawKafka(addr, id)
	case "nats/watermill":
		return newWatermillNATS(addr, id)
	case "rabbitmq/watermill":
		return newWatermillRabbit(addr, id)
	case "kafka/watermill":
		return newWatermillKafka(addr, id)
	}
	return nil, fmt.Errorf("unknown -broker/-impl %s/%s", broker, which)
}

// publishAll runs send for n messages from 4 goroutines, batch messages a call.
func publishAll(ctx context.Context, n int, send func(ctx context.Context, count int) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	per := n / publishers
	for p := range publishers {
		count := per
		if p == publishers-1 {
			count = n - per*(publishers-1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent := 0; sent < count; sent += batch {
				if err := send(ctx, min(batch, count-sent)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// counter signals when n messages have been counted.
type counter struct {
	mu   sync.Mutex
	n    int
	want int
	done chan struct{}
}

func newCounter(want int) *counter { return &counter{want: want, done: make(chan struct{})} }

func (c *counter) add() {
	c.mu.Lock()
	c.n++
	if c.n == c.want {
		close(c.done)
	}
	c.mu.Unlock()
}

func (c *counter) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Errorf("consumed %d of %d: %w", c.n, c.want, ctx.Err())
	}
}

func serveNATS() {
	dir, _ := os.MkdirTemp("", "bench-nats")
	defer os.RemoveAll(dir)
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		os.Exit(1)
	}
	fmt.Println(s.ClientURL())
	io.Copy(io.Discard, os.Stdin)
	s.Shutdown()
}

func serveKafka() {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(c.ListenAddrs()[0])
	io.Copy(io.Discard, os.Stdin)
	c.Close()
}
