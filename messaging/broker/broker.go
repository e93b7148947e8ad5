// Package broker opens the message broker a configuration names (messaging.type, or
// MESSAGE_QUEUE_TYPE): memory, nats, rabbitmq or kafka. It imports every backend; a program
// that uses one broker only can import that backend's package instead.
package broker

import (
	"context"
	"fmt"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/kafka"
	"github.com/shoal-sh/shoal/messaging/nats"
	"github.com/shoal-sh/shoal/messaging/rabbitmq"
)

// Options returns the Bus options of a configuration's messaging block (retries, prefetch,
// concurrency, drain timeout); the caller adds a Registerer, a TracerProvider, a Logger.
func Options(m config.Messaging) messaging.Options {
	return messaging.Options{
		Retry:        messaging.RetryPolicy{MaxAttempts: m.MaxAttempts, InitialBackoff: m.RetryBackoff.D(), MaxBackoff: m.MaxRetryBackoff.D()},
		Prefetch:     m.Prefetch,
		Concurrency:  m.Concurrency,
		DrainTimeout: m.DrainTimeout.D(),
	}
}

// Open connects to the configured broker. opts usually starts from Options(cfg.Messaging).
func Open(ctx context.Context, m config.Messaging, opts messaging.Options) (*messaging.Bus, error) {
	switch m.Type {
	case config.MessagingMemory, "":
		return messaging.NewMemory(opts)
	case config.MessagingNATS:
		return nats.Open(ctx, nats.FromConfig(m), opts)
	case config.MessagingRabbitMQ:
		return rabbitmq.Open(ctx, rabbitmq.FromConfig(m), opts)
	case config.MessagingKafka:
		return kafka.Open(ctx, kafka.FromConfig(m), opts)
	}
	return nil, fmt.Errorf("messaging: unknown messaging.type %q; use memory, nats, rabbitmq or kafka", m.Type)
}
