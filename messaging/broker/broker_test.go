package broker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/internal/servicetest"
	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/broker"
)

func suffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// load parses a configuration with the given environment, as shoal does at start.
func load(t *testing.T, yml string, env map[string]string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(yml), "shoal.yml", config.Options{LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// roundTrip opens the configured broker, subscribes in a group and publishes one message,
// which must arrive.
func roundTrip(t *testing.T, c *config.Config, wantDriver string) {
	t.Helper()
	opts := broker.Options(c.Messaging)
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := broker.Open(ctx, c.Messaging, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.Driver().Name(); got != wantDriver {
		t.Fatalf("messaging.type %q opened the %s backend; want %s", c.Messaging.Type, got, wantDriver)
	}
	got := make(chan *messaging.Message, 1)
	if _, err := b.Subscribe(ctx, "user.*", func(_ context.Context, m *messaging.Message) error {
		select {
		case got <- m:
		default:
		}
		return nil
	}, messaging.Group("mailer")); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "user.created", &messaging.Message{Key: "u1", Payload: []byte(`{"id":1}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Topic != "user.created" || string(m.Payload) != `{"id":1}` || m.Key != "u1" {
			t.Fatalf("got topic %q key %q payload %q; want user.created, u1, {\"id\":1}", m.Topic, m.Key, m.Payload)
		}
	case <-ctx.Done():
		t.Fatalf("no message through %s", wantDriver)
	}
}

func TestOpen_Memory(t *testing.T) {
	roundTrip(t, load(t, "name: shop\n", nil), "memory")
}

// TestOpen_FromTheSeedsVariables: MESSAGE_QUEUE_TYPE picks the broker and NATS_URL,
// RABBITMQ_URL or KAFKA_BROKERS says where it is, over what the file says.
func TestOpen_FromTheSeedsVariables(t *testing.T) {
	yml := "name: shop\nmessaging:\n  type: memory\n  topic: b" + suffix() + "\n  kafka:\n    metadata_refresh: 250ms\n"

	t.Run("nats", func(t *testing.T) {
		s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		defer s.Shutdown()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("the embedded nats-server did not start")
		}
		roundTrip(t, load(t, yml, map[string]string{"MESSAGE_QUEUE_TYPE": "NATS", "NATS_URL": s.ClientURL()}), "nats")
	})
	t.Run("rabbitmq", func(t *testing.T) {
		addr := servicetest.Need(t, servicetest.RabbitMQ)
		c := load(t, yml, map[string]string{"MESSAGE_QUEUE_TYPE": "rabbitmq", "RABBITMQ_URL": "amqp://guest:guest@" + addr + "/"})
		defer cleanupRabbit(t, c.Messaging.RabbitMQ.URL, c.Messaging.Topic)
		roundTrip(t, c, "rabbitmq")
	})
	t.Run("kafka", func(t *testing.T) {
		kc, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatal(err)
		}
		defer kc.Close()
		roundTrip(t, load(t, yml, map[string]string{"MESSAGE_QUEUE_TYPE": "kafka", "KAFKA_BROKERS": strings.Join(kc.ListenAddrs(), ",")}), "kafka")
	})
}

func TestOpen_UnknownTypeAndDeadBroker(t *testing.T) {
	_, err := broker.Open(context.Background(), config.Messaging{Type: "zeromq"}, messaging.Options{})
	if err == nil || !strings.Contains(err.Error(), `unknown messaging.type "zeromq"`) || !strings.Contains(err.Error(), "nats, rabbitmq or kafka") {
		t.Fatalf("Open of type zeromq = %v; want an error naming the type and the choices", err)
	}
	c := load(t, "name: shop\n", map[string]string{"MESSAGE_QUEUE_TYPE": "nats", "NATS_URL": "nats://u:s3cret@127.0.0.1:1"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = broker.Open(ctx, c.Messaging, messaging.Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open of a NATS URL nothing answers = %v; want an error without the password", err)
	}
	t.Log(err)
}

// cleanupRabbit deletes what the backend declared for exchange ex.
func cleanupRabbit(t *testing.T, url, ex string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	ch.QueueDelete(ex+".mailer.user.*", false, false, false)
	ch.QueueDelete(ex+".dlq", false, false, false)
	ch.ExchangeDelete(ex+".delay", false, false)
	ch.ExchangeDelete(ex, false, false)
}
