package main

import (
	"context"
	"flag"
	"fmt"
	"os/exec"
	"strings"
	"time"

	gonats "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
)

// cleanup deletes the streams (NATS) and the queues and exchanges (RabbitMQ, listed with
// rabbitmqctl) whose names start with idPrefix: what the runs made on the machine's
// brokers, which shoal and Watermill keep (they are durable) when a run ends.
func cleanup(args []string) error {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	natsURL := fs.String("nats", "", "a NATS server's URL")
	rabbitURL := fs.String("rabbitmq", "", "a RabbitMQ server's URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if *natsURL != "" {
		if err := cleanupNATS(ctx, *natsURL); err != nil {
			return err
		}
	}
	if *rabbitURL != "" {
		return cleanupRabbit(*rabbitURL)
	}
	return nil
}

func cleanupNATS(ctx context.Context, url string) error {
	nc, err := gonats.Connect(url)
	if err != nil {
		return fmt.Errorf("nats %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	names := js.StreamNames(ctx)
	var doomed []string
	for n := range names.Name() {
		if strings.HasPrefix(n, idPrefix) {
			doomed = append(doomed, n)
		}
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("nats: listing streams: %w", err)
	}
	for _, n := range doomed {
		if err := js.DeleteStream(ctx, n); err != nil {
			return fmt.Errorf("nats: deleting stream %s: %w", n, err)
		}
	}
	return nil
}

func cleanupRabbit(url string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("rabbitmq: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	list := func(what string) ([]string, error) {
		out, err := exec.Command("rabbitmqctl", "list_"+what, "-q", "--no-table-headers", "name").Output()
		if err != nil {
			return nil, fmt.Errorf("rabbitmqctl list_%s (to find what the runs left): %w", what, err)
		}
		var names []string
		for _, n := range strings.Fields(string(out)) {
			if strings.HasPrefix(n, idPrefix) {
				names = append(names, n)
			}
		}
		return names, nil
	}
	queues, err := list("queues")
	if err != nil {
		return err
	}
	for _, q := range queues {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			return fmt.Errorf("rabbitmq: deleting queue %s: %w", q, err)
		}
	}
	exchanges, err := list("exchanges")
	if err != nil {
		return err
	}
	for _, x := range exchanges {
		if err := ch.ExchangeDelete(x, false, false); err != nil {
			return fmt.Errorf("rabbitmq: deleting exchange %s: %w", x, err)
		}
	}
	return nil
}
