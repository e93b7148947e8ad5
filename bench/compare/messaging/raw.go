package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// rawNATS: nats.go's jetstream package by hand — async publishes with message IDs waited
// for, a durable pull consumer acking each message.
type rawNATS struct {
	nc      *gonats.Conn
	js      jetstream.JetStream
	id      string
	subject string
}

func newRawNATS(ctx context.Context, url, id string) (impl, error) {
	nc, err := gonats.Connect(url)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: id, Subjects: []string{id + ".>"}, Storage: jetstream.FileStorage}); err != nil {
		nc.Close()
		return nil, err
	}
	return &rawNATS{nc: nc, js: js, id: id, subject: id + ".bench.events"}, nil
}

func (r *rawNATS) publish(ctx context.Context, n, size int) error {
	payload := make([]byte, size)
	return publishAll(ctx, n, func(ctx context.Context, count int) error {
		fs := make([]jetstream.PubAckFuture, count)
		for i := range fs {
			// With a message ID, as shoal publishes: the server drops the duplicate of a
			// publish retried after a lost acknowledgement.
			f, err := r.js.PublishMsgAsync(&gonats.Msg{Subject: r.subject, Data: payload}, jetstream.WithMsgID(gonats.NewInbox()[7:]))
			if err != nil {
				return err
			}
			fs[i] = f
		}
		for _, f := range fs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
}

func (r *rawNATS) consumer(ctx context.Context) (jetstream.Consumer, error) {
	return r.js.CreateOrUpdateConsumer(ctx, r.id, jetstream.ConsumerConfig{Durable: "bench", FilterSubject: r.subject,
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: prefetch, DeliverPolicy: jetstream.DeliverNewPolicy})
}

func (r *rawNATS) prepare(ctx context.Context) error { _, err := r.consumer(ctx); return err }

func (r *rawNATS) consume(ctx context.Context, c *counter) error {
	cons, err := r.consumer(ctx)
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		m.Ack()
		c.add()
	}, jetstream.PullMaxMessages(prefetch))
	if err != nil {
		return err
	}
	defer cc.Stop()
	return c.wait(ctx)
}

func (r *rawNATS) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.js.DeleteStream(ctx, r.id)
	r.nc.Close()
}

// rawRabbit: amqp091-go by hand — confirm-mode channels, one per publisher, confirms
// waited for per batch; one consumer with prefetch acking each delivery.
type rawRabbit struct {
	conn  *amqp.Connection
	id    string
	queue string
}

func newRawRabbit(url, id string) (impl, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(id, "topic", true, false, false, false, nil); err != nil {
		return nil, err
	}
	return &rawRabbit{conn: conn, id: id, queue: id + ".bench"}, nil
}

func (r *rawRabbit) publish(ctx context.Context, n, size int) error {
	payload := make([]byte, size)
	chans := make(chan *amqp.Channel, publishers)
	for range publishers {
		ch, err := r.conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		if err := ch.Confirm(false); err != nil {
			return err
		}
		chans <- ch
	}
	return publishAll(ctx, n, func(ctx context.Context, count int) error {
		ch := <-chans
		defer func() { chans <- ch }()
		dcs := make([]*amqp.DeferredConfirmation, count)
		for i := range dcs {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, r.id, "bench.events", false, false,
				amqp.Publishing{DeliveryMode: amqp.Persistent, Body: payload})
			if err != nil {
				return err
			}
			dcs[i] = dc
		}
		for _, dc := range dcs {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return fmt.Errorf("not confirmed: %v", err)
			}
		}
		return nil
	})
}

func (r *rawRabbit) prepare(ctx context.Context) error {
	ch, err := r.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(r.queue, true, false, false, false, nil); err != nil {
		return err
	}
	return ch.QueueBind(r.queue, "bench.events", r.id, false, nil)
}

func (r *rawRabbit) consume(ctx context.Context, c *counter) error {
	ch, err := r.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	ch.Qos(prefetch, 0, false)
	ds, err := ch.ConsumeWithContext(ctx, r.queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for i := 0; i < c.want; i++ {
		select {
		case d := <-ds:
			if err := d.Ack(false); err != nil {
				return err
			}
			c.add()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (r *rawRabbit) close() {
	if ch, err := r.conn.Channel(); err == nil {
		ch.QueueDelete(r.queue, false, false, false)
		ch.ExchangeDelete(r.id, false, false)
	}
	r.conn.Close()
}

// rawKafka: franz-go by hand — ProduceSync per batch; a group consumer committing what it
// polled after each poll (so, after it was counted).
type rawKafka struct {
	brokers []string
	cl      *kgo.Client
	topic   string
}

func newRawKafka(addr, id string) (impl, error) {
	brokers := strings.Split(addr, ",")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	topic := id + ".bench.events"
	if err := createKafkaTopic(brokers, topic); err != nil {
		cl.Close()
		return nil, err
	}
	return &rawKafka{brokers: brokers, cl: cl, topic: topic}, nil
}

// createKafkaTopic creates topic with one partition, as shoal's Kafka backend is opened with.
func createKafkaTopic(brokers []string, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	return err
}

func (r *rawKafka) publish(ctx context.Context, n, size int) error {
	payload := make([]byte, size)
	return publishAll(ctx, n, func(ctx context.Context, count int) error {
		recs := make([]*kgo.Record, count)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: r.topic, Value: payload}
		}
		return r.cl.ProduceSync(ctx, recs...).FirstErr()
	})
}

func (r *rawKafka) prepare(context.Context) error { return nil }

func (r *rawKafka) consume(ctx context.Context, c *counter) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.ConsumeTopics(r.topic), kgo.ConsumerGroup(r.topic+".raw"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return err
	}
	defer cl.Close()
	got := 0
	for got < c.want {
		fs := cl.PollRecords(ctx, prefetch)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			return err
		}
		got += fs.NumRecords()
		c.addN(fs.NumRecords())
	}
	return nil
}

func (r *rawKafka) close() { r.cl.Close() }
