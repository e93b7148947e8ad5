package rabbitmq_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/internal/servicetest"
	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/messagingtest"
	"github.com/shoal-sh/shoal/messaging/rabbitmq"
)

// rabbitServer is the RabbitMQ installation's own start script (not /usr/sbin's wrapper,
// which changes to the rabbitmq user and its files).
const rabbitServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// node is a RabbitMQ node of the test's own: its name, ports, database, logs and Erlang
// cookie (HOME) in the test's directory, so stopping it disturbs no other test.
type node struct {
	t        *testing.T
	dir      string
	name     string
	port     int
	distPort int
	cmd      *exec.Cmd
	exited   chan struct{}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func newNode(t *testing.T) *node {
	if _, err := os.Stat(rabbitServer); err != nil {
		if servicetest.Required() {
			t.Fatalf("%s is missing (SHOAL_TEST_SERVICES=required): install rabbitmq-server", rabbitServer)
		}
		t.Skipf("%s is missing: install rabbitmq-server to run a test-owned node", rabbitServer)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[].\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, dir: dir, name: "shoaltest" + suffix() + "@localhost", port: freePort(t), distPort: freePort(t)}
	t.Cleanup(n.kill)
	return n
}

func (n *node) url() string { return "amqp://guest:guest@127.0.0.1:" + strconv.Itoa(n.port) + "/" }

func (n *node) env() []string {
	return append(os.Environ(), "HOME="+n.dir, "RABBITMQ_NODENAME="+n.name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1", "RABBITMQ_NODE_PORT="+strconv.Itoa(n.port), "RABBITMQ_DIST_PORT="+strconv.Itoa(n.distPort),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(n.dir, "mnesia"), "RABBITMQ_LOG_BASE="+filepath.Join(n.dir, "log"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(n.dir, "enabled_plugins"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(n.dir, "rabbitmq.conf"), "RABBITMQ_PID_FILE="+filepath.Join(n.dir, "pid"))
}

// start starts the node (on the same database as before, if any) and waits until it takes
// AMQP connections.
func (n *node) start() {
	n.t.Helper()
	out, err := os.OpenFile(filepath.Join(n.dir, "server.out"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	defer out.Close()
	n.cmd = exec.Command(rabbitServer)
	n.cmd.Env, n.cmd.Dir, n.cmd.Stdout, n.cmd.Stderr = n.env(), n.dir, out, out
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(n.cmd, n.exited)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(n.port), time.Second); err == nil {
			c.Close()
			// The listener opens once the broker has booted; a connection proves it.
			if b, err := rabbitmq.Open(context.Background(), rabbitmq.Options{URL: n.url(), Exchange: "ping"}, messagingtest.Options()); err == nil {
				b.Close()
				return
			}
		}
		select {
		case <-n.exited:
			log, _ := os.ReadFile(filepath.Join(n.dir, "server.out"))
			n.t.Fatalf("the test's RabbitMQ node exited while starting:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatal("the test's RabbitMQ node did not take connections within 90s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop stops the node as an operator would (SIGTERM: RabbitMQ shuts down cleanly) and waits.
func (n *node) stop() {
	n.t.Helper()
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(60 * time.Second):
		n.t.Fatal("the test's RabbitMQ node did not stop within 60s of SIGTERM")
	}
}

func (n *node) kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.exited:
		return
	default:
	}
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.exited
	}
}

// TestFault_BrokerRestart restarts a test-owned RabbitMQ node while a publisher and a
// group subscriber use it. Both reconnect by themselves, the durable queue keeps what was
// confirmed, and every confirmed message is delivered; duplicates are counted and printed.
func TestFault_BrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a RabbitMQ node twice")
	}
	t.Parallel() // its own node: booting it overlaps the other tests
	n := newNode(t)
	n.start()
	opts := messagingtest.Options()
	ropts := rabbitmq.Options{URL: n.url(), Exchange: "restart", ReconnectBackoff: 50 * time.Millisecond, MaxReconnectBackoff: 500 * time.Millisecond}
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
	if _, err := sub.Subscribe(context.Background(), "orders.*", func(ctx context.Context, m *messaging.Message) error {
		mu.Lock()
		seen[string(m.Payload)]++
		mu.Unlock()
		return nil
	}, messaging.Group("restart"), messaging.Concurrency(4)); err != nil {
		t.Fatal(err)
	}
	var confirmed sync.Map
	var count atomic.Int64
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
			batch := make([]*messaging.Message, 5)
			for j := range batch {
				batch[j] = &messaging.Message{Payload: []byte(fmt.Sprintf("m-%d-%d", i, j))}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			if err := pub.Publish(ctx, "orders.placed", batch...); err == nil {
				for _, m := range batch {
					confirmed.Store(string(m.Payload), true)
				}
				count.Add(int64(len(batch)))
			}
			cancel()
		}
	}()
	waitUntil(t, func() bool { return count.Load() >= 200 })
	n.stop()
	atStop := count.Load()
	n.start()
	waitUntil(t, func() bool { return count.Load() >= atStop+200 })
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
	fmt.Printf("rabbitmq node restarted: %d confirmed messages (%d before the stop), all delivered, %d duplicates\n", total, atStop, dups)
}
