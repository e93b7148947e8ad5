package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/internal/natsembed"
	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/broker"
)

func (a *app) messagingCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "messaging",
		Short: "Publish to and tail the configured message broker, for debugging",
		Long: `Publish to and tail the broker that messaging.type names (or MESSAGE_QUEUE_TYPE), with the URLs of
the configuration (or KAFKA_BROKERS, RABBITMQ_URL, NATS_URL). With messaging.type nats and no URL, the
embedded server of a running ` + "`shoal up`" + ` is used.`,
	}
	cmd.AddCommand(a.messagingPublishCommand(), a.messagingTailCommand())
	return cmd
}

// openBroker opens the configured broker for the CLI.
func (a *app) openBroker(ctx context.Context, c *config.Config) (*messaging.Bus, error) {
	m := c.Messaging
	if m.Type == config.MessagingMemory {
		return nil, usagef("messaging.type is memory: an in-process broker that only the service itself can reach; set messaging.type (or MESSAGE_QUEUE_TYPE) to nats, rabbitmq or kafka")
	}
	if m.Type == config.MessagingNATS && !natsURLGiven(c) {
		if b, err := os.ReadFile(natsembed.URLFile(admin.StateDir(c))); err == nil {
			m.NATS.URL = strings.TrimSpace(string(b)) // the embedded server of a running shoal up
		}
	}
	opts := broker.Options(m)
	opts.Logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return broker.Open(ctx, m, opts)
}

func (a *app) messagingPublishCommand() *cobra.Command {
	var f configFlags
	var data, key string
	var headers []string
	var delay time.Duration
	cmd := &cobra.Command{
		Use:   "publish TOPIC --data JSON [--key KEY] [--header NAME=VALUE]... [--delay 10s]",
		Short: "Publish one message and wait for the broker to confirm it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !json.Valid([]byte(data)) {
				return usagef("--data %q is not JSON; quote it for the shell, e.g. --data '{\"user_id\":\"123\"}'", data)
			}
			if err := messaging.ValidateTopic(args[0]); err != nil {
				return usagef("%v", err)
			}
			m := &messaging.Message{Key: key, Payload: []byte(data), Delay: delay}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, "=")
				if !ok || k == "" {
					return usagef("--header %q is not NAME=VALUE", h)
				}
				if m.Headers == nil {
					m.Headers = map[string]string{}
				}
				m.Headers[k] = v
			}
			c, err := a.load(&f)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			bus, err := a.openBroker(ctx, c)
			if err != nil {
				return err
			}
			defer bus.Close()
			if err := bus.Publish(ctx, args[0], m); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "published %s to %s on %s\n", m.ID, args[0], c.Messaging.Type)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&data, "data", "", "the payload, JSON (required)")
	cmd.Flags().StringVar(&key, "key", "", "the ordering key")
	cmd.Flags().StringArrayVar(&headers, "header", nil, "a header NAME=VALUE (repeatable)")
	cmd.Flags().DurationVar(&delay, "delay", 0, "deliver no earlier than this long from now")
	cmd.MarkFlagRequired("data")
	return cmd
}

func (a *app) messagingTailCommand() *cobra.Command {
	var f configFlags
	var group, output string
	var count int
	cmd := &cobra.Command{
		Use:   "tail PATTERN [--group NAME] [-n COUNT] [-o text|json]",
		Short: "Print the messages whose topic matches PATTERN as they arrive (Ctrl-C stops)",
		Long: `Print the messages whose topic matches PATTERN ("*" one token, ">" one or more trailing tokens) as they
arrive, until Ctrl-C or COUNT messages. Without --group, tail is a fan-out subscriber of its own and takes
nothing from the service's groups; with --group it joins that group and acknowledges what it prints.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usagef("-o %q: use text or json", output)
			}
			if _, err := messaging.ParsePattern(args[0]); err != nil {
				return usagef("%v", err)
			}
			c, err := a.load(&f)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			bus, err := a.openBroker(ctx, c)
			if err != nil {
				return err
			}
			defer bus.Close()
			var mu sync.Mutex
			seen := 0
			done := make(chan struct{})
			var once sync.Once
			opts := []messaging.SubscribeOption{messaging.Retry(messaging.RetryPolicy{MaxAttempts: 1})}
			if group != "" {
				opts = append(opts, messaging.Group(group))
			}
			sub, err := bus.Subscribe(ctx, args[0], func(_ context.Context, m *messaging.Message) error {
				mu.Lock()
				defer mu.Unlock()
				if count > 0 && seen >= count {
					return nil
				}
				seen++
				printMessage(a.stdout, m, output)
				if count > 0 && seen >= count {
					once.Do(func() { close(done) })
				}
				return nil
			}, opts...)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "shoal: tailing %s on %s (Ctrl-C stops)\n", args[0], c.Messaging.Type)
			select {
			case <-ctx.Done():
			case <-done:
			}
			return sub.Close()
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&group, "group", "", "join this consumer group instead of tailing on the side")
	cmd.Flags().IntVarP(&count, "count", "n", 0, "stop after this many messages (0: until Ctrl-C)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json (one object a line)")
	return cmd
}

func printMessage(w io.Writer, m *messaging.Message, output string) {
	if output == "json" {
		out := map[string]any{"id": m.ID, "topic": m.Topic, "time": m.Time.UTC().Format(time.RFC3339Nano), "attempt": m.Attempt}
		if m.Key != "" {
			out["key"] = m.Key
		}
		if len(m.Headers) > 0 {
			out["headers"] = m.Headers
		}
		if json.Valid(m.Payload) {
			out["payload"] = json.RawMessage(m.Payload)
		} else {
			out["payload"] = string(m.Payload)
		}
		b, _ := json.Marshal(out)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	line := m.Time.Local().Format("15:04:05.000") + " " + m.Topic
	if m.Key != "" {
		line += " key=" + m.Key
	}
	keys := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		line += " " + k + "=" + m.Headers[k]
	}
	fmt.Fprintf(w, "%s %s\n", line, m.Payload)
}
