// Package nats is the NATS backend of package messaging: JetStream for every subscription,
// so fan-out and groups alike get acknowledgements, retries and delays.
//
//	bus, err := nats.Open(ctx, nats.Options{URL: "nats://localhost:4222", Prefix: "events"}, messaging.Options{})
//
// One stream, named after Prefix, holds the subjects Prefix.> (a topic "user.created" is
// the subject "events.user.created"). A group is a durable pull consumer named after the
// group and the pattern; a subscription without a group is an ephemeral consumer that the
// server deletes a minute after its client has gone. Both start with the messages published
// after they were created (DeliverPolicy New). Patterns are NATS subjects already: "*" and
// ">" mean the same in both.
//
// Publishing is JetStream's acknowledged publish, asynchronous within one Publish call, each
// message with its ID as Nats-Msg-Id so the server drops duplicates of a retried publish
// (within the stream's duplicate window). A publish that fails for want of a server (a
// restart, a lost connection) is retried until the context ends.
//
// A delayed message carries Shoal-Deliver-At; a consumer that receives it early gives it
// back with NakWithDelay for the time left, so delays work on every server version and for
// every subscription. (NATS 2.12's message schedules would do it in the server, but one
// schedule per subject and the 2.9 servers still about rule them out.)
//
// What NATS 2.9 lacks and this package does without: multi-filter consumers (each
// subscription has one filter subject), message schedules (delays as above), and the
// consumer create action (2.9 ignores it; consumers are created or updated the same way).
package nats

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/messaging"
)

// Options configure the NATS backend.
type Options struct {
	// URL of the server (comma-separated for several). Defaults to "nats://localhost:4222".
	URL string
	// Prefix is the first token of every subject and the stream's name. Defaults to "events".
	Prefix string
	// AckWait is how long the server waits for an acknowledgement before redelivering; the
	// Bus tells it a message is still in progress at a third of it. Defaults to 30s.
	AckWait time.Duration
	// MaxAge is how long the stream keeps a message. Defaults to 7 days.
	MaxAge time.Duration
	// Replicas of the stream. Defaults to 1.
	Replicas int
	// MemoryStorage keeps the stream in memory instead of on disk.
	MemoryStorage bool
	// ConnectTimeout bounds the first connection. Defaults to 5s.
	ConnectTimeout time.Duration
	// Name is the client's connection name. Defaults to "shoal".
	Name string
}

func (o *Options) setDefaults() {
	if o.URL == "" {
		o.URL = "nats://localhost:4222"
	}
	if o.Prefix == "" {
		o.Prefix = "events"
	}
	if o.AckWait == 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxAge == 0 {
		o.MaxAge = 7 * 24 * time.Hour
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.Name == "" {
		o.Name = "shoal"
	}
}

// Header names of the fields NATS has no place for.
const (
	headerKey       = "Shoal-Key"
	headerTime      = "Shoal-Time"
	headerDeliverAt = "Shoal-Deliver-At"
)

// headerReserve is kept free of the server's max_payload for shoal's headers.
const headerReserve = 1024

// Driver is the NATS messaging.Driver.
type Driver struct {
	opts   Options
	nc     *nats.Conn
	js     jetstream.JetStream
	stream string

	mu     sync.Mutex
	subs   map[*consumer]struct{}
	closed bool
}

var _ messaging.Driver = (*Driver)(nil)

// Open connects and returns a Bus.
func Open(ctx context.Context, opts Options, bo messaging.Options) (*messaging.Bus, error) {
	d, err := NewDriver(ctx, opts)
	if err != nil {
		return nil, err
	}
	b, err := messaging.New(d, bo)
	if err != nil {
		d.Close()
		return nil, err
	}
	return b, nil
}

// FromConfig returns the Options of a configuration's messaging block.
func FromConfig(m config.Messaging) Options {
	return Options{URL: m.NATS.URL, Prefix: m.Topic, AckWait: m.NATS.AckWait.D(), MaxAge: m.NATS.MaxAge.D()}
}

// NewDriver connects to the server and makes sure the stream exists.
func NewDriver(ctx context.Context, opts Options) (*Driver, error) {
	opts.setDefaults()
	if err := messaging.ValidateTopic(opts.Prefix); err != nil || strings.Contains(opts.Prefix, ".") {
		return nil, fmt.Errorf("nats: the prefix %q must be one token of letters, digits, \"_\" and \"-\" (messaging.topic)", opts.Prefix)
	}
	nc, err := nats.Connect(opts.URL, nats.Name(opts.Name), nats.Timeout(opts.ConnectTimeout),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		return nil, fmt.Errorf("nats: cannot connect to %s: %w; is the server running? Check messaging.nats.url (NATS_URL)", config.RedactURL(opts.URL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	d := &Driver{opts: opts, nc: nc, js: js, stream: opts.Prefix, subs: map[*consumer]struct{}{}}
	storage := jetstream.FileStorage
	if opts.MemoryStorage {
		storage = jetstream.MemoryStorage
	}
	sctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	_, err = js.CreateOrUpdateStream(sctx, jetstream.StreamConfig{Name: d.stream, Subjects: []string{opts.Prefix + ".>"},
		Storage: storage, Replicas: opts.Replicas, MaxAge: opts.MaxAge, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld})
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrNoResponders) {
			return nil, fmt.Errorf("nats: the server at %s has no JetStream; start it with -js (shoal's messaging needs JetStream)", config.RedactURL(opts.URL))
		}
		return nil, fmt.Errorf("nats: creating the stream %s for %s.>: %w", d.stream, opts.Prefix, err)
	}
	return d, nil
}

// Conn returns the connection.
func (d *Driver) Conn() *nats.Conn { return d.nc }

// Name implements messaging.Driver.
func (d *Driver) Name() string { return "nats" }

// MaxPayload is the server's max_payload less room for shoal's headers.
func (d *Driver) MaxPayload() int { return int(d.nc.MaxPayload()) - headerReserve }

// Subject returns the NATS subject of a topic or pattern: the same tokens under the prefix.
func Subject(prefix string, p messaging.Pattern) string { return prefix + "." + p.String() }

func (d *Driver) toNATS(m *messaging.Message) *nats.Msg {
	h := make(nats.Header, len(m.Headers)+4)
	for k, v := range m.Headers {
		h[k] = []string{v}
	}
	if m.Key != "" {
		h[headerKey] = []string{m.Key}
	}
	h[headerTime] = []string{strconv.FormatInt(m.Time.UnixNano(), 10)}
	if m.Delay > 0 {
		h[headerDeliverAt] = []string{strconv.FormatInt(time.Now().Add(m.Delay).UnixNano(), 10)}
	}
	return &nats.Msg{Subject: d.opts.Prefix + "." + m.Topic, Header: h, Data: m.Payload}
}

// Publish implements messaging.Driver: every message is published asynchronously and
// waited for; those that fail for want of a server are published again, with the same
// Nats-Msg-Id, until ctx ends.
func (d *Driver) Publish(ctx context.Context, msgs []*messaging.Message) error {
	pending := make([]*nats.Msg, len(msgs))
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		pending[i], ids[i] = d.toNATS(m), m.ID
	}
	backoff := 50 * time.Millisecond
	for {
		if len(pending) == 1 {
			_, err := d.js.PublishMsg(ctx, pending[0], jetstream.WithMsgID(ids[0]))
			if err == nil {
				return nil
			}
			if !retryable(err) || ctx.Err() != nil {
				return err
			}
		} else {
			futures := make([]jetstream.PubAckFuture, 0, len(pending))
			var failed []*nats.Msg
			var failedIDs []string
			var lastErr error
			for i, m := range pending {
				f, err := d.js.PublishMsgAsync(m, jetstream.WithMsgID(ids[i]))
				if err != nil {
					if !retryable(err) {
						return err
					}
					failed, failedIDs, lastErr = append(failed, m), append(failedIDs, ids[i]), err
					futures = append(futures, nil)
					continue
				}
				futures = append(futures, f)
			}
			for i, f := range futures {
				if f == nil {
					continue
				}
				select {
				case <-f.Ok():
				case err := <-f.Err():
					if !retryable(err) {
						return err
					}
					failed, failedIDs, lastErr = append(failed, pending[i]), append(failedIDs, ids[i]), err
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if len(failed) == 0 {
				return nil
			}
			if ctx.Err() != nil {
				return lastErr
			}
			pending, ids = failed, failedIDs
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, time.Second)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// retryable reports whether a publish failed for want of a server rather than for the message.
func retryable(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout)
}

// consumerName names a group's durable consumer: the group and a hash of the pattern
// (consumer names cannot hold the pattern's dots and wildcards).
func consumerName(group string, p messaging.Pattern) string {
	h := fnv.New32a()
	h.Write([]byte(p.String()))
	return fmt.Sprintf("%s-%08x", group, h.Sum32())
}

// Subscribe implements messaging.Driver.
func (d *Driver) Subscribe(ctx context.Context, spec messaging.Spec, deliver func(messaging.Delivery)) (messaging.Consumer, error) {
	cfg := jetstream.ConsumerConfig{FilterSubject: Subject(d.opts.Prefix, spec.Pattern), AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: d.opts.AckWait, MaxAckPending: spec.Prefetch, DeliverPolicy: jetstream.DeliverNewPolicy, MaxDeliver: -1}
	if spec.Group != "" {
		cfg.Durable = consumerName(spec.Group, spec.Pattern)
		cfg.Description = "shoal group " + spec.Group + " on " + spec.Pattern.String()
	} else {
		cfg.InactiveThreshold = time.Minute
	}
	cctx, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
	defer cancel()
	cons, err := d.js.CreateOrUpdateConsumer(cctx, d.stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the consumer for %s: %w", cfg.FilterSubject, err)
	}
	c := &consumer{d: d, deliver: deliver, prefixLen: len(d.opts.Prefix) + 1}
	cc, err := cons.Consume(c.handle, jetstream.PullMaxMessages(spec.Prefetch), jetstream.ConsumeErrHandler(func(jetstream.ConsumeContext, error) {}))
	if err != nil {
		return nil, fmt.Errorf("consuming %s: %w", cfg.FilterSubject, err)
	}
	c.cc = cc
	if spec.Group == "" {
		c.ephemeral = cons.CachedInfo().Name
	}
	d.mu.Lock()
	d.subs[c] = struct{}{}
	d.mu.Unlock()
	return c, nil
}

// Close implements messaging.Driver.
func (d *Driver) Close() error {
	d.mu.Lock()
	d.closed = true
	subs := d.subs
	d.subs = map[*consumer]struct{}{}
	d.mu.Unlock()
	for c := range subs {
		c.cc.Stop()
	}
	d.nc.Close()
	return nil
}

type consumer struct {
	d         *Driver
	cc        jetstream.ConsumeContext
	deliver   func(messaging.Delivery)
	prefixLen int
	ephemeral string
}

func (c *consumer) handle(msg jetstream.Msg) {
	h := msg.Headers()
	if at := h.Get(headerDeliverAt); at != "" {
		if ns, err := strconv.ParseInt(at, 10, 64); err == nil {
			if left := time.Until(time.Unix(0, ns)); left > 0 {
				msg.NakWithDelay(left)
				return
			}
		}
	}
	subject := msg.Subject()
	m := &messaging.Message{Topic: subject[min(c.prefixLen, len(subject)):], Payload: msg.Data(), Headers: make(map[string]string, len(h))}
	for k, vs := range h {
		switch k {
		case nats.MsgIdHdr:
			m.ID = vs[0]
		case headerKey:
			m.Key = vs[0]
		case headerTime:
			if ns, err := strconv.ParseInt(vs[0], 10, 64); err == nil {
				m.Time = time.Unix(0, ns)
			}
		case headerDeliverAt:
		default:
			if len(vs) > 0 {
				m.Headers[k] = vs[0]
			}
		}
	}
	lag := int64(-1)
	if md, err := msg.Metadata(); err == nil {
		lag = int64(md.NumPending)
		delivered := md.NumDelivered
		if h.Get(headerDeliverAt) != "" && delivered > 1 {
			delivered-- // the early delivery given back with a delay does not count
		}
		m.Redelivered = delivered > 1
		if m.Time.IsZero() {
			m.Time = md.Timestamp
		}
	}
	c.deliver(messaging.Delivery{Message: m, Acker: acker{msg}, Lag: lag})
}

func (c *consumer) Stop() {
	c.cc.Stop()
	select {
	case <-c.cc.Closed():
	case <-time.After(10 * time.Second): // the connection is gone; nothing more is delivered
	}
}

func (c *consumer) Close() error {
	c.d.mu.Lock()
	delete(c.d.subs, c)
	closed := c.d.closed
	c.d.mu.Unlock()
	if c.ephemeral != "" && !closed {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c.d.js.DeleteConsumer(ctx, c.d.stream, c.ephemeral)
	}
	return nil
}

// ProgressInterval implements messaging.ProgressIntervaler: a third of AckWait.
func (c *consumer) ProgressInterval() time.Duration { return c.d.opts.AckWait / 3 }

type acker struct{ m jetstream.Msg }

func (a acker) Ack() error     { return a.m.Ack() }
func (a acker) Release() error { return a.m.Nak() }
func (a acker) Progress()      { a.m.InProgress() }
