package main

import (
	"context"
	"strings"

	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/kafka"
	"github.com/shoal-sh/shoal/messaging/nats"
	"github.com/shoal-sh/shoal/messaging/rabbitmq"
)

type shoalImpl struct {
	bus *messaging.Bus
}

func newShoal(ctx context.Context, broker, addr, id string) (impl, error) {
	opts := messaging.Options{Logger: quiet, Prefetch: prefetch}
	var bus *messaging.Bus
	var err error
	switch broker {
	case "nats":
		bus, err = nats.Open(ctx, nats.Options{URL: addr, Prefix: id}, opts)
	case "rabbitmq":
		bus, err = rabbitmq.Open(ctx, rabbitmq.Options{URL: addr, Exchange: id}, opts)
	case "kafka":
		bus, err = kafka.Open(ctx, kafka.Options{Brokers: strings.Split(addr, ","), Prefix: id, Partitions: 1}, opts)
	}
	if err != nil {
		return nil, err
	}
	return &shoalImpl{bus: bus}, nil
}

func (s *shoalImpl) publish(ctx context.Context, n, size int) error {
	payload := make([]byte, size)
	return publishAll(ctx, n, func(ctx context.Context, count int) error {
		msgs := make([]*messaging.Message, count)
		for i := range msgs {
			msgs[i] = &messaging.Message{Payload: payload}
		}
		return s.bus.Publish(ctx, "bench.events", msgs...)
	})
}

func (s *shoalImpl) prepare(ctx context.Context) error {
	sub, err := s.bus.Subscribe(ctx, "bench.events", func(context.Context, *messaging.Message) error { return nil }, messaging.Group("bench"))
	if err != nil {
		return err
	}
	return sub.Close()
}

func (s *shoalImpl) consume(ctx context.Context, c *counter) error {
	sub, err := s.bus.Subscribe(ctx, "bench.events", func(context.Context, *messaging.Message) error {
		c.add()
		return nil
	}, messaging.Group("bench"))
	if err != nil {
		return err
	}
	defer sub.Close()
	return c.wait(ctx)
}

func (s *shoalImpl) close() { s.bus.Close() }
