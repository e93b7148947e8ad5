// Package kafka is the Kafka backend of package messaging, on franz-go.
//
//	bus, err := kafka.Open(ctx, kafka.Options{Brokers: []string{"localhost:9092"}, Prefix: "events"}, messaging.Options{})
//
// A topic "user.created" is the Kafka topic "events.user.created", created on its first
// publish (Options.CreateTopics) with Options.Partitions. A message's Key is the record key,
// so one key stays on one partition and keeps its order across the members of a group.
// Patterns become regular expressions over topic names (ConsumeRegex): "*" is one token,
// ">" one or more; subscribers look for new matching topics every MetadataRefresh.
//
// The producer is idempotent and waits for all in-sync replicas; Publish returns once every
// record of the call is acknowledged.
//
// A group is a Kafka consumer group named "<prefix>.<group>.<pattern>". Offsets are
// committed only up to the oldest record whose handler has not succeeded: with concurrent
// handlers records finish out of order, so each partition keeps its records in order and
// commits the prefix that is done. When a rebalance revokes a partition, records of it not
// yet started are dropped (the next owner gets them), running ones are waited for, and the
// done prefix is committed before the partition is given up. A partition the group has no
// offset for starts from its oldest record. A subscription without a group reads every
// matching partition directly and commits nothing; it hands over the records stamped from a
// second before it subscribed on, and skips older ones — reading them first, so on topics
// with a long history prefer a group.
//
// Kafka cannot give one record back, so a message released at Close (not yet started, or
// waiting for a retry) is not committed: the next member of the group gets it.
//
// Delays go through one topic per delay, "<prefix>._delay.<ms>", so each holds its records
// in the order they fall due; a relay group in every Driver that subscribes or publishes a
// delayed message waits for each record's time, publishes it to its topic, then commits it.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/messaging"
)

// Options configure the Kafka backend.
type Options struct {
	// Brokers are the seed brokers, host:port. Defaults to ["localhost:9092"].
	Brokers []string
	// Prefix is the first token of every topic name. Defaults to "events".
	Prefix string
	// Partitions of a topic created on first publish. Defaults to 3.
	Partitions int32
	// ReplicationFactor of a created topic; -1 (the default) is the broker's default.
	ReplicationFactor int16
	// CreateTopics creates a topic on its first publish. Defaults to true; set NoCreate to
	// turn it off.
	NoCreate bool
	// MaxPayload is the largest payload accepted. Defaults to 1000000 (Kafka's default
	// message.max.bytes is 1048588, less room for headers and the batch).
	MaxPayload int
	// MetadataRefresh is how often subscribers look for new matching topics. Defaults to 5s.
	MetadataRefresh time.Duration
	// DialTimeout bounds one connection attempt; Open fails when no broker answers within
	// it. Defaults to 5s.
	DialTimeout time.Duration
	// CommitInterval is how often done offsets are committed. Defaults to 1s.
	CommitInterval time.Duration
	// SessionTimeout of group members. Defaults to 10s.
	SessionTimeout time.Duration
	// Extra are more franz-go options for every client (SASL, TLS, …).
	Extra []kgo.Opt
}

func (o *Options) setDefaults() {
	if len(o.Brokers) == 0 {
		o.Brokers = []string{"localhost:9092"}
	}
	if o.Prefix == "" {
		o.Prefix = "events"
	}
	if o.Partitions == 0 {
		o.Partitions = 3
	}
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = -1
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = 1000000
	}
	if o.MetadataRefresh == 0 {
		o.MetadataRefresh = 5 * time.Second
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.CommitInterval == 0 {
		o.CommitInterval = time.Second
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 10 * time.Second
	}
}

// FromConfig returns the Options of a configuration's messaging block.
func FromConfig(m config.Messaging) Options {
	return Options{Brokers: m.Kafka.Brokers, Prefix: m.Topic, Partitions: int32(m.Kafka.Partitions),
		ReplicationFactor: int16(m.Kafka.ReplicationFactor), NoCreate: !m.Kafka.CreateTopics, MaxPayload: m.MaxPayload,
		MetadataRefresh: m.Kafka.MetadataRefresh.D()}
}

// Header names of the fields Kafka has no place for.
const (
	headerID        = "Shoal-Id"
	headerTarget    = "Shoal-Target"
	headerDeliverAt = "Shoal-Deliver-At"
)

const delayToken = "_delay"

// Driver is the Kafka messaging.Driver.
type Driver struct {
	opts  Options
	pub   *kgo.Client
	admin *kadm.Client

	mu      sync.Mutex
	topics  map[string]bool // known to exist
	subs    map[*consumer]struct{}
	relay   *relay
	closed  bool
	closing chan struct{}
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

func (o *Options) client(extra ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{kgo.SeedBrokers(o.Brokers...), kgo.DialTimeout(o.DialTimeout),
		kgo.MetadataMaxAge(o.MetadataRefresh), kgo.MetadataMinAge(min(o.MetadataRefresh, 250*time.Millisecond))}
	return kgo.NewClient(append(append(base, o.Extra...), extra...)...)
}

// NewDriver connects to the brokers; it fails when none answers.
func NewDriver(ctx context.Context, opts Options) (*Driver, error) {
	opts.setDefaults()
	if err := messaging.ValidateTopic(opts.Prefix); err != nil || strings.Contains(opts.Prefix, ".") {
		return nil, fmt.Errorf("kafka: the prefix %q must be one token of letters, digits, \"_\" and \"-\" (messaging.topic)", opts.Prefix)
	}
	pub, err := opts.client(kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(0), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	if err := pub.Ping(pctx); err != nil {
		pub.Close()
		return nil, fmt.Errorf("kafka: no broker of %s answers: %w; are they running? Check messaging.kafka.brokers (KAFKA_BROKERS)", strings.Join(opts.Brokers, ","), err)
	}
	return &Driver{opts: opts, pub: pub, admin: kadm.NewClient(pub), topics: map[string]bool{}, subs: map[*consumer]struct{}{},
		closing: make(chan struct{})}, nil
}

// Client returns the producing client.
func (d *Driver) Client() *kgo.Client { return d.pub }

// Name implements messaging.Driver.
func (d *Driver) Name() string { return "kafka" }

// MaxPayload implements messaging.Driver.
func (d *Driver) MaxPayload() int { return d.opts.MaxPayload }

// TopicRegex returns the regular expression (RE2, as franz-go's ConsumeRegex uses) of the
// Kafka topics a pattern matches under prefix. Tokens starting with "_" (shoal's own
// topics) never match a wildcard.
func TopicRegex(prefix string, p messaging.Pattern) string {
	const tok = `[^._][^.]*`
	var b strings.Builder
	b.WriteString("^" + regexp.QuoteMeta(prefix))
	for _, t := range p.Tokens() {
		b.WriteString(`\.`)
		switch t {
		case "*":
			b.WriteString(tok)
		case ">":
			b.WriteString(tok + `(\.` + tok + `)*`)
		default:
			b.WriteString(regexp.QuoteMeta(t))
		}
	}
	b.WriteString("$")
	return b.String()
}

// ensureTopics creates the topics not known to exist.
func (d *Driver) ensureTopics(ctx context.Context, topics map[string]bool) error {
	var missing []string
	d.mu.Lock()
	for t := range topics {
		if !d.topics[t] {
			missing = append(missing, t)
		}
	}
	d.mu.Unlock()
	if len(missing) == 0 || d.opts.NoCreate {
		return nil
	}
	resp, err := d.admin.CreateTopics(ctx, d.opts.Partitions, d.opts.ReplicationFactor, nil, missing...)
	if err != nil {
		return fmt.Errorf("creating topics %v: %w", missing, err)
	}
	for _, r := range resp {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", r.Topic, r.Err)
		}
	}
	d.mu.Lock()
	for _, t := range missing {
		d.topics[t] = true
	}
	subs := make([]*consumer, 0, len(d.subs))
	for c := range d.subs {
		subs = append(subs, c)
	}
	d.mu.Unlock()
	for _, c := range subs {
		c.cl.ForceMetadataRefresh() // this process's subscribers see the new topic at once
	}
	return nil
}

func (d *Driver) record(m *messaging.Message) *kgo.Record {
	r := &kgo.Record{Topic: d.opts.Prefix + "." + m.Topic, Value: m.Payload, Timestamp: m.Time,
		Headers: make([]kgo.RecordHeader, 0, len(m.Headers)+1)}
	if m.Key != "" {
		r.Key = []byte(m.Key)
	}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: headerID, Value: []byte(m.ID)})
	for k, v := range m.Headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	if m.Delay > 0 {
		ms := max(m.Delay.Milliseconds(), 1)
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: headerTarget, Value: []byte(r.Topic)},
			kgo.RecordHeader{Key: headerDeliverAt, Value: []byte(strconv.FormatInt(time.Now().Add(m.Delay).UnixMilli(), 10))})
		r.Topic = d.opts.Prefix + "." + delayToken + "." + strconv.FormatInt(ms, 10)
	}
	return r
}

// Publish implements messaging.Driver.
func (d *Driver) Publish(ctx context.Context, msgs []*messaging.Message) error {
	recs := make([]*kgo.Record, len(msgs))
	topics := map[string]bool{}
	delayed := false
	for i, m := range msgs {
		recs[i] = d.record(m)
		topics[recs[i].Topic] = true
		topics[d.opts.Prefix+"."+m.Topic] = true // a delayed message's own topic, too
		delayed = delayed || m.Delay > 0
	}
	if err := d.ensureTopics(ctx, topics); err != nil {
		return err
	}
	if delayed {
		if err := d.startRelay(); err != nil {
			return err
		}
	}
	return d.pub.ProduceSync(ctx, recs...).FirstErr()
}

// Subscribe implements messaging.Driver.
func (d *Driver) Subscribe(ctx context.Context, spec messaging.Spec, deliver func(messaging.Delivery)) (messaging.Consumer, error) {
	if err := d.startRelay(); err != nil {
		return nil, err
	}
	c := &consumer{d: d, spec: spec, deliver: deliver, parts: map[tp]*part{}, stop: make(chan struct{}), exited: make(chan struct{}),
		prefixLen: len(d.opts.Prefix) + 1}
	opts := []kgo.Opt{kgo.ConsumeRegex(), kgo.ConsumeTopics(TopicRegex(d.opts.Prefix, spec.Pattern)), kgo.FetchMaxWait(500 * time.Millisecond)}
	if spec.Group != "" {
		c.group = d.opts.Prefix + "." + spec.Group + "." + spec.Pattern.String()
		opts = append(opts, kgo.ConsumerGroup(c.group), kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(d.opts.SessionTimeout), kgo.OnPartitionsRevoked(c.revoked), kgo.OnPartitionsLost(c.lost))
	} else {
		// From the start, skipping what is older than the subscription: a by-time lookup
		// (AfterMilli) races with the first produce to a topic created meanwhile, and can
		// land after that record.
		opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		c.since = spec.Since.Add(-time.Second)
	}
	cl, err := d.opts.client(opts...)
	if err != nil {
		return nil, err
	}
	c.cl = cl
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		cl.Close()
		return nil, messaging.ErrClosed
	}
	d.subs[c] = struct{}{}
	d.mu.Unlock()
	go c.run()
	if c.group != "" {
		go c.committer()
	}
	return c, nil
}

// Close implements messaging.Driver: every client is closed without committing more.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.closing)
	subs := d.subs
	d.subs = map[*consumer]struct{}{}
	r := d.relay
	d.mu.Unlock()
	for c := range subs {
		c.Stop()
		c.cl.Close()
	}
	if r != nil {
		r.close()
	}
	d.pub.Close()
	return nil
}

type tp struct {
	topic     string
	partition int32
}

// part tracks one assigned partition's records in delivery order.
type part struct {
	gen      uint64
	revoking bool
	recs     []*rec // delivered, oldest first, until the done prefix is dropped
	inflight int
	commit   kgo.EpochOffset
	dirty    bool
}

type rec struct {
	offset int64
	epoch  int32
	done   bool
}

type consumer struct {
	d         *Driver
	spec      messaging.Spec
	group     string
	cl        *kgo.Client
	deliver   func(messaging.Delivery)
	prefixLen int
	since     time.Time // fan-out: records stamped before it are skipped

	mu       sync.Mutex
	parts    map[tp]*part
	gen      uint64
	stopOnce sync.Once
	stop     chan struct{}
	exited   chan struct{}
}

func (c *consumer) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

func (c *consumer) run() {
	defer close(c.exited)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-c.stop
		cancel()
	}()
	for {
		fs := c.cl.PollRecords(ctx, c.spec.Prefetch)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				if c.stopped() {
					return
				}
				c.handOver(r, p.HighWatermark)
			}
		})
	}
}

func (c *consumer) handOver(r *kgo.Record, hw int64) {
	if c.group == "" && r.Timestamp.Before(c.since) {
		return // published before this fan-out subscription
	}
	m := &messaging.Message{Topic: r.Topic[min(c.prefixLen, len(r.Topic)):], Payload: r.Value, Time: r.Timestamp,
		Headers: make(map[string]string, len(r.Headers))}
	if r.Key != nil {
		m.Key = string(r.Key)
	}
	for _, h := range r.Headers {
		if h.Key == headerID {
			m.ID = string(h.Value)
			continue
		}
		m.Headers[h.Key] = string(h.Value)
	}
	var a messaging.Acker = noAck{}
	if c.group != "" {
		k := tp{r.Topic, r.Partition}
		c.mu.Lock()
		p := c.parts[k]
		if p == nil {
			p = &part{gen: c.gen}
			c.parts[k] = p
		}
		if p.revoking {
			c.mu.Unlock()
			return
		}
		e := &rec{offset: r.Offset, epoch: r.LeaderEpoch}
		p.recs = append(p.recs, e)
		p.inflight++
		c.mu.Unlock()
		a = &acker{c: c, k: k, p: p, gen: p.gen, r: e}
	}
	c.deliver(messaging.Delivery{Message: m, Acker: a, Lag: max(hw-r.Offset-1, 0)})
}

// revoked waits for the running handlers of the partitions given up, then commits what is
// done, before the group hands them to another member.
func (c *consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.giveUp(revoked, true)
}

// lost drops the partitions: committing is no longer possible.
func (c *consumer) lost(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
	c.giveUp(lost, false)
}

func (c *consumer) giveUp(ps map[string][]int32, commit bool) {
	var keys []tp
	c.mu.Lock()
	for t, parts := range ps {
		for _, n := range parts {
			k := tp{t, n}
			if p := c.parts[k]; p != nil {
				p.revoking = true
				keys = append(keys, k)
			}
		}
	}
	c.mu.Unlock()
	if commit {
		deadline := time.Now().Add(c.d.opts.SessionTimeout)
		for time.Now().Before(deadline) {
			select {
			case <-c.d.closing:
				deadline = time.Now()
				continue
			default:
			}
			c.mu.Lock()
			busy := 0
			for _, k := range keys {
				busy += c.parts[k].inflight
			}
			c.mu.Unlock()
			if busy == 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.commit(keys)
	}
	c.mu.Lock()
	for _, k := range keys {
		delete(c.parts, k)
	}
	c.gen++
	c.mu.Unlock()
}

// commit commits the done prefix of the given partitions (all when keys is nil).
func (c *consumer) commit(keys []tp) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	c.mu.Lock()
	for k, p := range c.parts {
		if keys != nil && !containsTP(keys, k) || !p.dirty {
			continue
		}
		if offsets[k.topic] == nil {
			offsets[k.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[k.topic][k.partition] = p.commit
		p.dirty = false
	}
	c.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.cl.CommitOffsetsSync(ctx, offsets, nil)
}

func containsTP(keys []tp, k tp) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func (c *consumer) committer() {
	t := time.NewTicker(c.d.opts.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.commit(nil)
		case <-c.stop:
			return
		}
	}
}

func (c *consumer) Stop() {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.exited
}

// Close commits what is done and leaves the group.
func (c *consumer) Close() error {
	c.Stop()
	if c.group != "" {
		c.commit(nil)
	}
	c.d.mu.Lock()
	_, mine := c.d.subs[c]
	delete(c.d.subs, c)
	c.d.mu.Unlock()
	if mine {
		c.cl.Close()
	}
	return nil
}

type acker struct {
	c   *consumer
	k   tp
	p   *part
	gen uint64
	r   *rec
}

// settle marks the record done (or, released, just no longer in flight) and moves the
// partition's commit point past the done prefix.
func (a *acker) settle(done bool) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	p := a.p
	if a.c.parts[a.k] != p || a.r == nil {
		return // the partition was given up since: the next owner has the record
	}
	p.inflight--
	a.r.done = done
	a.r = nil
	for len(p.recs) > 0 && p.recs[0].done {
		p.commit = kgo.EpochOffset{Epoch: p.recs[0].epoch, Offset: p.recs[0].offset + 1}
		p.dirty = true
		p.recs[0] = nil
		p.recs = p.recs[1:]
	}
}

func (a *acker) Ack() error     { a.settle(true); return nil }
func (a *acker) Release() error { a.settle(false); return nil }

// Stale implements messaging.Staler: the partition is being given up, and a record not
// started yet is left for its next owner.
func (a *acker) Stale() bool {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if a.c.parts[a.k] == a.p && !a.p.revoking {
		return false
	}
	if a.c.parts[a.k] == a.p && a.r != nil {
		a.p.inflight--
		a.r = nil
	}
	return true
}

type noAck struct{}

func (noAck) Ack() error     { return nil }
func (noAck) Release() error { return nil }
