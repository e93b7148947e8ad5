package main

import (
	"context"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	gonats "github.com/nats-io/nats.go"
)

// watermillImpl drives a Watermill Publisher and Subscriber, configured for confirmed
// publishes and acknowledged, durable consumption with prefetch where the backend has it.
type watermillImpl struct {
	pub   message.Publisher
	sub   func() (message.Subscriber, error)
	topic string
}

var wlog = watermill.NopLogger{}

func (w *watermillImpl) publish(ctx context.Context, n, size int) error {
	payload := make([]byte, size)
	return publishAll(ctx, n, func(ctx context.Context, count int) error {
		msgs := make([]*message.Message, count)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), payload)
		}
		return w.pub.Publish(w.topic, msgs...)
	})
}

func (w *watermillImpl) prepare(ctx context.Context) error {
	s, err := w.sub()
	if err != nil {
		return err
	}
	if sb, ok := s.(message.SubscribeInitializer); ok {
		if err := sb.SubscribeInitialize(w.topic); err != nil {
			return err
		}
	} else {
		c, cancel := context.WithCancel(ctx)
		if _, err := s.Subscribe(c, w.topic); err != nil {
			cancel()
			return err
		}
		time.Sleep(200 * time.Millisecond)
		cancel()
	}
	return s.Close()
}

func (w *watermillImpl) consume(ctx context.Context, c *counter) error {
	s, err := w.sub()
	if err != nil {
		return err
	}
	defer s.Close()
	ch, err := s.Subscribe(ctx, w.topic)
	if err != nil {
		return err
	}
	for i := 0; i < c.want; i++ {
		select {
		case m := <-ch:
			m.Ack()
			c.add()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (w *watermillImpl) close() { w.pub.Close() }

func newWatermillNATS(url, id string) (impl, error) {
	js := wmnats.JetStreamConfig{AutoProvision: true, DurablePrefix: "bench",
		SubscribeOptions: []gonats.SubOpt{gonats.DeliverAll(), gonats.AckExplicit(), gonats.MaxAckPending(prefetch)}}
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{URL: url, Marshaler: &wmnats.NATSMarshaler{}, JetStream: js}, wlog)
	if err != nil {
		return nil, err
	}
	return &watermillImpl{pub: pub, topic: id, sub: func() (message.Subscriber, error) {
		return wmnats.NewSubscriber(wmnats.SubscriberConfig{URL: url, QueueGroupPrefix: "bench", SubscribersCount: 1,
			AckWaitTimeout: 30 * time.Second, Unmarshaler: &wmnats.NATSMarshaler{}, JetStream: js}, wlog)
	}}, nil
}

func newWatermillRabbit(url, id string) (impl, error) {
	cfg := wmamqp.NewDurableQueueConfig(url)
	cfg.Publish.ConfirmDelivery = true
	cfg.Consume.Qos.PrefetchCount = prefetch
	pub, err := wmamqp.NewPublisher(cfg, wlog)
	if err != nil {
		return nil, err
	}
	return &watermillImpl{pub: pub, topic: id, sub: func() (message.Subscriber, error) { return wmamqp.NewSubscriber(cfg, wlog) }}, nil
}

func newWatermillKafka(addr, id string) (impl, error) {
	brokers := strings.Split(addr, ",")
	pub, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{Brokers: brokers, Marshaler: wmkafka.DefaultMarshaler{}}, wlog)
	if err != nil {
		return nil, err
	}
	topic := id + ".bench.events"
	// Watermill's Kafka publisher does not create topics (its subscriber does, on Subscribe),
	// so a publish-only run creates it here, as the raw run does.
	if err := createKafkaTopic(brokers, topic); err != nil {
		pub.Close()
		return nil, err
	}
	return &watermillImpl{pub: pub, topic: topic, sub: func() (message.Subscriber, error) {
		sc := wmkafka.DefaultSaramaSubscriberConfig()
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
		return wmkafka.NewSubscriber(wmkafka.SubscriberConfig{Brokers: brokers, Unmarshaler: wmkafka.DefaultMarshaler{},
			ConsumerGroup: "bench", OverwriteSaramaConfig: sc,
			InitializeTopicDetails: &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}}, wlog)
	}}, nil
}
