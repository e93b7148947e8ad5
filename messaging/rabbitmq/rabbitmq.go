// Package rabbitmq is the RabbitMQ backend of package messaging, on amqp091-go.
//
//	bus, err := rabbitmq.Open(ctx, rabbitmq.Options{URL: "amqp://guest:guest@localhost:5672/", Exchange: "events"}, messaging.Options{})
//
// Topology: one durable topic exchange (Options.Exchange) takes every message, routed by
// its topic. A group is a durable queue named "<exchange>.<group>.<pattern>", bound with the
// pattern's binding key; a subscription without a group has an exclusive, auto-deleted,
// server-named queue of its own. Patterns become binding keys token by token, "*" staying
// "*" and ">" becoming "*.#", so that it needs at least one token as ">" does. Every dead
// letter is also kept in the durable queue "<exchange>.dlq", so none is lost when nothing
// subscribes to it: a dead letter carries the extra routing key "shoal:dead-letters" in its
// CC header (RabbitMQ's sender-selected distribution), the key that queue is bound with. A
// binding "#.dlq" would do the same, but a binding starting with "#" makes the exchange match
// every message against it, which halved the broker's publish throughput here.
//
// Publishing uses publisher confirms on a pool of channels, messages persistent; Publish
// returns once the broker has confirmed each message. Consuming uses manual acks and
// prefetch (basic.qos).
//
// amqp091-go neither reconnects nor retries, so this package does both (by hand, since no
// maintained library does it for amqp091 with confirms): when the connection drops it dials
// again with backoff, declares the exchange, queues and bindings again, restarts every
// consumer, and publishes again each message of a Publish call that was not confirmed (the
// broker may then hold a duplicate: at least once). Acks of messages delivered on the lost
// connection are void; the broker delivers those messages again.
//
// Delays use one durable queue per delay, "<exchange>.delay.<ms>", with that message TTL and
// the main exchange as its dead-letter exchange, fed through the headers exchange
// "<exchange>.delay": a message sits in the queue for its delay, then expires into the main
// exchange with its topic as routing key. One TTL per queue keeps expiry in order (RabbitMQ
// expires only from a queue's head). An idle delay queue deletes itself.
package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/messaging"
)

// Options configure the RabbitMQ backend.
type Options struct {
	// URL of the broker. Defaults to "amqp://guest:guest@localhost:5672/".
	URL string
	// Exchange is the topic exchange every message goes through, and the prefix of shoal's
	// queue names. Defaults to "events".
	Exchange string
	// MaxPayload is the largest payload accepted. Defaults to 134217728, RabbitMQ's default
	// max_message_size.
	MaxPayload int
	// ConnectTimeout bounds one dial. Defaults to 5s.
	ConnectTimeout time.Duration
	// ReconnectBackoff is the first wait before dialling again after the connection
	// dropped; it doubles up to MaxReconnectBackoff. Defaults to 100ms and 5s.
	ReconnectBackoff, MaxReconnectBackoff time.Duration
	// PublishChannels is how many confirm-mode channels publishers share. Defaults to 8.
	PublishChannels int
	// Heartbeat of the connection. Defaults to 10s.
	Heartbeat time.Duration
}

func (o *Options) setDefaults() {
	if o.URL == "" {
		o.URL = "amqp://guest:guest@localhost:5672/"
	}
	if o.Exchange == "" {
		o.Exchange = "events"
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = 134217728
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.ReconnectBackoff == 0 {
		o.ReconnectBackoff = 100 * time.Millisecond
	}
	if o.MaxReconnectBackoff == 0 {
		o.MaxReconnectBackoff = 5 * time.Second
	}
	if o.PublishChannels == 0 {
		o.PublishChannels = 8
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 10 * time.Second
	}
}

// FromConfig returns the Options of a configuration's messaging block.
func FromConfig(m config.Messaging) Options {
	return Options{URL: m.RabbitMQ.URL, Exchange: m.Topic, MaxPayload: m.MaxPayload}
}

// Header names of the fields AMQP has no exact place for.
const (
	headerKey   = "Shoal-Key"
	headerTime  = "Shoal-Time"
	headerDelay = "x-shoal-delay"
	// headerCC is RabbitMQ's sender-selected distribution header: more routing keys.
	headerCC = "CC"
	// deadLetterKey routes dead letters to the queue <exchange>.dlq as well; ":" keeps it
	// apart from every topic, which cannot hold one.
	deadLetterKey = "shoal:dead-letters"
)

// Driver is the RabbitMQ messaging.Driver.
type Driver struct {
	opts Options

	mu      sync.Mutex
	conn    *amqp.Connection
	gen     uint64
	up      chan struct{} // closed while conn is usable; replaced when it drops
	closed  bool
	done    chan struct{}
	exited  chan struct{}
	pool    []*pubChannel
	nPub    int
	poolGen uint64
	delays  map[int64]bool // delay queues declared on the current connection
	subs    map[*consumer]struct{}
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

// NewDriver dials the broker (the first dial must succeed), declares the exchange, and
// keeps the connection up from then on.
func NewDriver(ctx context.Context, opts Options) (*Driver, error) {
	opts.setDefaults()
	if err := messaging.ValidateTopic(opts.Exchange); err != nil || strings.Contains(opts.Exchange, ".") {
		return nil, fmt.Errorf("rabbitmq: the exchange %q must be one token of letters, digits, \"_\" and \"-\" (messaging.topic)", opts.Exchange)
	}
	d := &Driver{opts: opts, up: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{}),
		delays: map[int64]bool{}, subs: map[*consumer]struct{}{}}
	conn, err := d.dial()
	if err != nil {
		return nil, err
	}
	d.setConn(conn)
	go d.supervise(conn)
	return d, nil
}

func (d *Driver) dial() (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(d.opts.URL, amqp.Config{Dial: amqp.DefaultDial(d.opts.ConnectTimeout), Heartbeat: d.opts.Heartbeat,
		Properties: amqp.Table{"connection_name": "shoal"}})
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: cannot connect to %s: %w; is the broker running? Check messaging.rabbitmq.url (RABBITMQ_URL)", config.RedactURL(d.opts.URL), err)
	}
	if err := d.declare(conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// declare declares the exchanges and the dead-letter queue.
func (d *Driver) declare(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("rabbitmq: opening a channel: %w", err)
	}
	defer ch.Close()
	ex := d.opts.Exchange
	if err := ch.ExchangeDeclare(ex, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("rabbitmq: declaring the exchange %s: %w", ex, err)
	}
	if err := ch.ExchangeDeclare(ex+".delay", amqp.ExchangeHeaders, true, false, false, false, nil); err != nil {
		return fmt.Errorf("rabbitmq: declaring the exchange %s.delay: %w", ex, err)
	}
	if _, err := ch.QueueDeclare(ex+".dlq", true, false, false, false, nil); err != nil {
		return fmt.Errorf("rabbitmq: declaring the queue %s.dlq: %w", ex, err)
	}
	if err := ch.QueueBind(ex+".dlq", deadLetterKey, ex, false, nil); err != nil {
		return fmt.Errorf("rabbitmq: binding the queue %s.dlq: %w", ex, err)
	}
	// Earlier versions bound it "#.dlq"; with both, a dead letter would be kept twice.
	if err := ch.QueueUnbind(ex+".dlq", "#."+messaging.DeadLetterSuffix, ex, nil); err != nil {
		return fmt.Errorf("rabbitmq: removing the old binding #.dlq of the queue %s.dlq: %w", ex, err)
	}
	return nil
}

func (d *Driver) setConn(conn *amqp.Connection) {
	d.mu.Lock()
	d.conn = conn
	d.gen++
	d.delays = map[int64]bool{}
	close(d.up)
	d.mu.Unlock()
}

// supervise redials whenever the connection drops, until Close.
func (d *Driver) supervise(conn *amqp.Connection) {
	defer close(d.exited)
	for {
		lost := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-lost:
		case <-d.done:
			return
		}
		d.mu.Lock()
		d.up = make(chan struct{})
		d.mu.Unlock()
		backoff := d.opts.ReconnectBackoff
		for {
			var err error
			if conn, err = d.dial(); err == nil {
				break
			}
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, d.opts.MaxReconnectBackoff)
			case <-d.done:
				return
			}
		}
		d.setConn(conn)
	}
}

// connection waits for a usable connection.
func (d *Driver) connection(ctx context.Context) (*amqp.Connection, uint64, error) {
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return nil, 0, messaging.ErrClosed
		}
		up, conn, gen := d.up, d.conn, d.gen
		d.mu.Unlock()
		select {
		case <-up:
			if !conn.IsClosed() {
				return conn, gen, nil
			}
			time.Sleep(10 * time.Millisecond) // supervise has not noticed yet
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-d.done:
			return nil, 0, messaging.ErrClosed
		}
	}
}

// Name implements messaging.Driver.
func (d *Driver) Name() string { return "rabbitmq" }

// MaxPayload implements messaging.Driver.
func (d *Driver) MaxPayload() int { return d.opts.MaxPayload }

// BindingKey returns the topic-exchange binding key of a pattern: "*" stays, ">" becomes
// "*.#" (one token, then any number).
func BindingKey(p messaging.Pattern) string {
	toks := p.Tokens()
	if toks[len(toks)-1] == ">" {
		toks[len(toks)-1] = "*.#"
	}
	return strings.Join(toks, ".")
}

type pubChannel struct {
	ch     *amqp.Channel
	gen    uint64
	closed chan *amqp.Error
}

func (d *Driver) takeChannel(ctx context.Context) (*pubChannel, error) {
	for {
		conn, gen, err := d.connection(ctx)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		if d.poolGen != gen {
			d.pool, d.nPub, d.poolGen = nil, 0, gen
		}
		if n := len(d.pool); n > 0 {
			pc := d.pool[n-1]
			d.pool = d.pool[:n-1]
			d.mu.Unlock()
			if !pc.ch.IsClosed() {
				return pc, nil
			}
			d.mu.Lock()
			d.nPub--
			d.mu.Unlock()
			continue
		}
		if d.nPub >= d.opts.PublishChannels {
			d.mu.Unlock()
			select {
			case <-time.After(time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		d.nPub++
		d.mu.Unlock()
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Confirm(false)
		}
		if err != nil {
			d.mu.Lock()
			d.nPub--
			d.mu.Unlock()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return &pubChannel{ch: ch, gen: gen, closed: ch.NotifyClose(make(chan *amqp.Error, 1))}, nil
	}
}

func (d *Driver) giveChannel(pc *pubChannel) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if pc.gen == d.poolGen && !pc.ch.IsClosed() {
		d.pool = append(d.pool, pc)
		return
	}
	if pc.gen == d.poolGen {
		d.nPub--
	}
}

func (d *Driver) publishing(m *messaging.Message) amqp.Publishing {
	h := make(amqp.Table, len(m.Headers)+3)
	for k, v := range m.Headers {
		h[k] = v
	}
	if m.Key != "" {
		h[headerKey] = m.Key
	}
	h[headerTime] = m.Time.UnixNano()
	if messaging.IsDeadLetterTopic(m.Topic) {
		h[headerCC] = []any{deadLetterKey}
	}
	return amqp.Publishing{Headers: h, DeliveryMode: amqp.Persistent, MessageId: m.ID, Timestamp: m.Time, Body: m.Payload}
}

// Publish implements messaging.Driver.
func (d *Driver) Publish(ctx context.Context, msgs []*messaging.Message) error {
	pending := msgs
	backoff := d.opts.ReconnectBackoff
	for {
		failed, err := d.publishOnce(ctx, pending)
		if err != nil {
			return err
		}
		if len(failed) == 0 {
			return nil
		}
		pending = failed
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, d.opts.MaxReconnectBackoff)
		case <-ctx.Done():
			return fmt.Errorf("%d of %d messages not confirmed: %w", len(pending), len(msgs), ctx.Err())
		}
	}
}

// publishOnce publishes msgs on one channel and returns those not confirmed; err is set
// when retrying cannot help.
func (d *Driver) publishOnce(ctx context.Context, msgs []*messaging.Message) (failed []*messaging.Message, err error) {
	pc, err := d.takeChannel(ctx)
	if err != nil {
		return nil, err
	}
	defer d.giveChannel(pc)
	confirms := make([]*amqp.DeferredConfirmation, len(msgs))
	for i, m := range msgs {
		p := d.publishing(m)
		exchange := d.opts.Exchange
		if m.Delay > 0 {
			ms := max(m.Delay.Milliseconds(), 1)
			if err := d.delayQueue(pc, ms); err != nil {
				return append(failed, msgs[i:]...), nil
			}
			exchange += ".delay"
			p.Headers[headerDelay] = strconv.FormatInt(ms, 10)
		}
		dc, err := pc.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, m.Topic, false, false, p)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			failed = append(failed, msgs[i:]...)
			break
		}
		confirms[i] = dc
	}
	for i, dc := range confirms {
		if dc == nil {
			continue
		}
		select {
		case <-dc.Done():
			if !dc.Acked() {
				failed = append(failed, msgs[i])
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if len(failed) > 0 && pc.ch.IsClosed() {
		// A channel the broker closed for the message itself (too large, say) would close
		// the next one too: that is not worth retrying. Its reason may arrive just after
		// the confirmations were failed.
		select {
		case e := <-pc.closed:
			if e != nil && e.Server && (e.Code == amqp.PreconditionFailed || e.Code == amqp.NotAllowed || e.Code == amqp.NotFound) {
				return nil, fmt.Errorf("the broker refused the message: %s (code %d)", e.Reason, e.Code)
			}
		case <-time.After(time.Second):
		}
	}
	return failed, nil
}

// delayQueue declares the queue holding messages delayed by ms, once per connection.
func (d *Driver) delayQueue(pc *pubChannel, ms int64) error {
	d.mu.Lock()
	ok := d.delays[ms] && pc.gen == d.gen
	d.mu.Unlock()
	if ok {
		return nil
	}
	ex := d.opts.Exchange
	name := ex + ".delay." + strconv.FormatInt(ms, 10)
	_, err := pc.ch.QueueDeclare(name, true, false, false, false, amqp.Table{
		"x-message-ttl": ms, "x-dead-letter-exchange": ex, "x-expires": ms + int64(10*time.Minute/time.Millisecond)})
	if err == nil {
		err = pc.ch.QueueBind(name, "", ex+".delay", false, amqp.Table{"x-match": "all", headerDelay: strconv.FormatInt(ms, 10)})
	}
	if err != nil {
		return err
	}
	d.mu.Lock()
	if pc.gen == d.gen {
		d.delays[ms] = true
	}
	d.mu.Unlock()
	return nil
}

// Subscribe implements messaging.Driver.
func (d *Driver) Subscribe(ctx context.Context, spec messaging.Spec, deliver func(messaging.Delivery)) (messaging.Consumer, error) {
	c := &consumer{d: d, spec: spec, deliver: deliver, stop: make(chan struct{}), exited: make(chan struct{}), started: make(chan error, 1)}
	if spec.Group != "" {
		c.queue = d.opts.Exchange + "." + spec.Group + "." + spec.Pattern.String()
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, messaging.ErrClosed
	}
	d.subs[c] = struct{}{}
	d.mu.Unlock()
	go c.run()
	select {
	case err := <-c.started:
		if err != nil {
			c.Stop()
			c.Close()
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		c.Stop()
		c.Close()
		return nil, ctx.Err()
	}
}

// Close implements messaging.Driver.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.done)
	conn := d.conn
	subs := d.subs
	d.subs = map[*consumer]struct{}{}
	d.mu.Unlock()
	err := conn.Close()
	<-d.exited
	for c := range subs {
		c.Stop()
	}
	if errors.Is(err, amqp.ErrClosed) {
		err = nil
	}
	return err
}

type consumer struct {
	d       *Driver
	spec    messaging.Spec
	queue   string // "" for a server-named fan-out queue
	deliver func(messaging.Delivery)

	mu       sync.Mutex
	ch       *amqp.Channel
	tag      string
	stopOnce sync.Once
	stop     chan struct{}
	exited   chan struct{}
	started  chan error
	first    bool
}

func (c *consumer) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// run consumes, setting the queue up again on every new connection, until Stop.
func (c *consumer) run() {
	defer close(c.exited)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-c.stop
		cancel()
	}()
	backoff := c.d.opts.ReconnectBackoff
	for !c.stopped() {
		ch, deliveries, err := c.setup(ctx)
		if !c.first {
			c.first = true
			c.started <- err
			if err != nil {
				return
			}
		}
		if err != nil {
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, c.d.opts.MaxReconnectBackoff)
			case <-c.stop:
				return
			}
			continue
		}
		backoff = c.d.opts.ReconnectBackoff
		for dv := range deliveries {
			c.deliver(c.delivery(ch, dv))
		}
	}
}

func (c *consumer) setup(ctx context.Context) (*amqp.Channel, <-chan amqp.Delivery, error) {
	conn, _, err := c.d.connection(ctx)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, err
	}
	fail := func(what string, err error) (*amqp.Channel, <-chan amqp.Delivery, error) {
		ch.Close()
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := ch.Qos(c.spec.Prefetch, 0, false); err != nil {
		return fail("setting prefetch", err)
	}
	var q amqp.Queue
	if c.queue != "" {
		q, err = ch.QueueDeclare(c.queue, true, false, false, false, nil)
	} else {
		q, err = ch.QueueDeclare("", false, true, true, false, nil)
	}
	if err != nil {
		return fail("declaring the queue "+c.queue, err)
	}
	if err := ch.QueueBind(q.Name, BindingKey(c.spec.Pattern), c.d.opts.Exchange, false, nil); err != nil {
		return fail("binding the queue "+q.Name, err)
	}
	tag := "shoal-" + messaging.NewID()
	deliveries, err := ch.ConsumeWithContext(ctx, q.Name, tag, false, false, false, false, nil)
	if err != nil {
		return fail("consuming from "+q.Name, err)
	}
	c.mu.Lock()
	c.ch, c.tag = ch, tag
	c.mu.Unlock()
	return ch, deliveries, nil
}

func (c *consumer) delivery(ch *amqp.Channel, dv amqp.Delivery) messaging.Delivery {
	m := &messaging.Message{ID: dv.MessageId, Topic: dv.RoutingKey, Payload: dv.Body, Time: dv.Timestamp,
		Redelivered: dv.Redelivered, Headers: make(map[string]string, len(dv.Headers))}
	for k, v := range dv.Headers {
		switch {
		case k == headerKey:
			m.Key, _ = v.(string)
		case k == headerTime:
			if ns, ok := v.(int64); ok {
				m.Time = time.Unix(0, ns)
			}
		case k == headerDelay || k == headerCC || k == "x-death" || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-"):
		default:
			if s, ok := v.(string); ok {
				m.Headers[k] = s
			} else {
				m.Headers[k] = fmt.Sprint(v)
			}
		}
	}
	return messaging.Delivery{Message: m, Acker: acker{ch: ch, tag: dv.DeliveryTag}, Lag: -1}
}

// Stop cancels the consumer; the channel stays open so held messages can still be settled.
func (c *consumer) Stop() {
	c.stopOnce.Do(func() {
		close(c.stop)
		c.mu.Lock()
		ch, tag := c.ch, c.tag
		c.mu.Unlock()
		if ch != nil {
			ch.Cancel(tag, false)
		}
	})
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
	}
}

func (c *consumer) Close() error {
	c.mu.Lock()
	ch := c.ch
	c.mu.Unlock()
	if ch != nil {
		ch.Close()
	}
	c.d.mu.Lock()
	delete(c.d.subs, c)
	c.d.mu.Unlock()
	return nil
}

type acker struct {
	ch  *amqp.Channel
	tag uint64
}

func (a acker) Ack() error     { return a.ch.Ack(a.tag, false) }
func (a acker) Release() error { return a.ch.Nack(a.tag, false, true) }
