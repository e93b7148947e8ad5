// Command messaging measures publish and consume throughput of shoal's messaging package,
// the raw client library it is built on, and Watermill's backend for the same broker —
// each doing the same work: confirmed publishes (4 publishers, 50 messages a call) to a
// durable consumer's stream or queue, and acknowledged consumes (one consumer, prefetch 256)
// of N preloaded messages of one size. It is run by bench/messaging.sh; Watermill is a
// dependency of this module only.
//
//	messaging serve-nats | serve-kafka                 (prints the address, runs until stdin closes)
//	messaging cleanup -nats URL -rabbitmq URL          (deletes what runs left on the machine's brokers)
//	messaging -broker nats|rabbitmq|kafka -addr ADDR -impl shoal|raw|watermill -mode publish|consume -size 1024 -n 20000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/twmb/franz-go/pkg/kfake"
)

type impl interface {
	// publish sends n messages of size bytes, confirmed, from 4 goroutines in batches of 50.
	publish(ctx context.Context, n, size int) error
	// prepare creates the durable consumer (group, queue) so that preloaded messages wait for it.
	prepare(ctx context.Context) error
	// consume receives and acknowledges c.want messages, counting each in c once it is
	// acknowledged.
	consume(ctx context.Context, c *counter) error
	close()
}

const (
	// idPrefix starts the name of every stream, exchange, queue and topic a run makes, so
	// that cleanup finds them on the machine's brokers.
	idPrefix   = "mbench"
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
	if len(os.Args) > 1 && os.Args[1] == "cleanup" {
		if err := cleanup(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench cleanup:", err)
			os.Exit(1)
		}
		return
	}
	broker := flag.String("broker", "nats", "nats, rabbitmq or kafka")
	addr := flag.String("addr", "", "the broker's address (URL for nats and rabbitmq, host:port for kafka)")
	which := flag.String("impl", "shoal", "shoal, raw or watermill")
	mode := flag.String("mode", "publish", "publish or consume")
	size := flag.Int("size", 1024, "payload bytes")
	n := flag.Int("n", 20000, "messages")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the measured part to this file")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	id := fmt.Sprintf("%s%d", idPrefix, time.Now().UnixNano()%1e9)
	im, err := newImpl(ctx, *broker, *which, *addr, id)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer im.close()
	var elapsed time.Duration
	rate := func() float64 { return float64(*n) / elapsed.Seconds() }
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	switch *mode {
	case "publish":
		// The durable consumer exists, so the broker keeps what is published (RabbitMQ
		// drops a message no queue is bound for, which is cheaper than keeping it).
		if err = im.prepare(ctx); err == nil {
			start := time.Now()
			err = im.publish(ctx, *n, *size)
			elapsed = time.Since(start)
		}
	case "consume":
		if err = im.prepare(ctx); err == nil {
			if err = im.publish(ctx, *n, *size); err == nil {
				c := newCounter(*n)
				if err = im.consume(ctx, c); err == nil {
					rate = c.rate
				}
			}
		}
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Printf("%.0f\n", rate())
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

// counter counts consumed messages and signals when want have been. Its rate is that of
// the steady state: the messages after the first arrival over the time from it to the
// last, so that joining a group or finding the topics (a second, for some) is not counted.
type counter struct {
	mu          sync.Mutex
	n           int
	want        int
	first, last time.Time
	atFirst     int
	done        chan struct{}
}

func newCounter(want int) *counter { return &counter{want: want, done: make(chan struct{})} }

func (c *counter) add() { c.addN(1) }

func (c *counter) addN(k int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n >= c.want {
		return
	}
	now := time.Now()
	if c.n == 0 {
		c.first, c.atFirst = now, k
	}
	c.n += k
	if c.n >= c.want {
		c.last = now
		close(c.done)
	}
}

func (c *counter) rate() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.last.Sub(c.first)
	if d <= 0 {
		return 0
	}
	return float64(c.n-c.atFirst) / d.Seconds()
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
	dir, err := os.MkdirTemp("", "bench-nats")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
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
	untilStdinClosesOrSignal()
	s.Shutdown()
}

func serveKafka() {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(c.ListenAddrs()[0])
	untilStdinClosesOrSignal()
	c.Close()
}

// untilStdinClosesOrSignal returns when stdin reaches its end or on SIGINT or SIGTERM, so a
// server stops cleanly (and removes its store) however the script ends.
func untilStdinClosesOrSignal() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	eof := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-eof:
	case <-ctx.Done():
	}
}
