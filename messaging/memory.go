package messaging

import (
	"context"
	"sync"
)

// MemoryOptions configure a MemoryBroker.
type MemoryOptions struct {
	// MaxPayload is the largest payload accepted, in bytes. Defaults to 1 MiB, NATS's
	// default, so that what works here also works on a broker.
	MaxPayload int
	// Clock times delayed messages. Defaults to the system clock.
	Clock Clock
}

// MemoryBroker is an in-process broker for tests and single-process programs, with the
// semantics of the networked ones: fan-out subscriptions get what is published while they
// run, a group's messages are kept from its first subscription on and shared between its
// members, a member's unacknowledged messages go back to the group when its connection
// closes, and delayed messages are held until they are due. Nothing survives the process.
type MemoryBroker struct {
	opts MemoryOptions

	mu      sync.Mutex
	fanout  map[*memSub]struct{}
	groups  map[memGroupKey]*memQueue
	timers  sync.WaitGroup
	stop    chan struct{}
	stopped bool
}

type memGroupKey struct{ group, pattern string }

// NewMemoryBroker returns an empty broker. Close it to end its delayed-message timers.
func NewMemoryBroker(opts MemoryOptions) *MemoryBroker {
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 1 << 20
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	return &MemoryBroker{opts: opts, fanout: map[*memSub]struct{}{}, groups: map[memGroupKey]*memQueue{}, stop: make(chan struct{})}
}

// Connect returns a new connection to the broker, as a Driver for New.
func (b *MemoryBroker) Connect() Driver { return &memConn{b: b, subs: map[*memSub]struct{}{}} }

// Close drops delayed messages not yet due and ends their timers.
func (b *MemoryBroker) Close() error {
	b.mu.Lock()
	if !b.stopped {
		b.stopped = true
		close(b.stop)
	}
	b.mu.Unlock()
	b.timers.Wait()
	return nil
}

// NewMemory returns a Bus on a new MemoryBroker of its own.
func NewMemory(opts Options) (*Bus, error) {
	b := NewMemoryBroker(MemoryOptions{Clock: opts.Clock})
	return New(&ownedConn{memConn: b.Connect().(*memConn)}, opts)
}

// ownedConn closes its broker with itself.
type ownedConn struct{ *memConn }

func (c *ownedConn) Close() error {
	err := c.memConn.Close()
	c.b.Close()
	return err
}

// memQueue holds messages for a fan-out subscription or a group.
type memQueue struct {
	mu    sync.Mutex
	cond  *sync.Cond
	items []*Message
}

func newMemQueue() *memQueue {
	q := &memQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *memQueue) push(m *Message, front bool) {
	q.mu.Lock()
	if front {
		q.items = append([]*Message{m}, q.items...)
	} else {
		q.items = append(q.items, m)
	}
	q.mu.Unlock()
	q.cond.Broadcast()
}

func (b *MemoryBroker) route(m *Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.fanout {
		if s.spec.Pattern.Match(m.Topic) {
			s.q.push(m.clone(), false)
		}
	}
	for k, q := range b.groups {
		if Match(k.pattern, m.Topic) {
			q.push(m.clone(), false)
		}
	}
}

// memConn is one connection to a MemoryBroker.
type memConn struct {
	b      *MemoryBroker
	mu     sync.Mutex
	subs   map[*memSub]struct{}
	closed bool
}

func (c *memConn) Name() string    { return "memory" }
func (c *memConn) MaxPayload() int { return c.b.opts.MaxPayload }

func (c *memConn) Publish(ctx context.Context, msgs []*Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	for _, m := range msgs {
		m := m.clone()
		if m.Delay <= 0 {
			c.b.route(m)
			continue
		}
		d := m.Delay
		m.Delay = 0
		c.b.mu.Lock()
		if c.b.stopped {
			c.b.mu.Unlock()
			return ErrClosed
		}
		c.b.timers.Add(1)
		c.b.mu.Unlock()
		after := c.b.opts.Clock.After(d)
		go func() {
			defer c.b.timers.Done()
			select {
			case <-after:
				c.b.route(m)
			case <-c.b.stop:
			}
		}()
	}
	return nil
}

func (c *memConn) Subscribe(ctx context.Context, spec Spec, deliver func(Delivery)) (Consumer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	s := &memSub{conn: c, spec: spec, deliver: deliver, unacked: map[*memAcker]struct{}{}, quit: make(chan struct{}), exited: make(chan struct{})}
	c.b.mu.Lock()
	if spec.Group == "" {
		s.q = newMemQueue()
		c.b.fanout[s] = struct{}{}
	} else {
		k := memGroupKey{spec.Group, spec.Pattern.String()}
		if c.b.groups[k] == nil {
			c.b.groups[k] = newMemQueue()
		}
		s.q = c.b.groups[k]
	}
	c.b.mu.Unlock()
	c.subs[s] = struct{}{}
	go s.loop()
	return s, nil
}

// Close drops the connection: its subscriptions end and their unacknowledged messages go
// back to their groups, as a broker does when a client disconnects.
func (c *memConn) Close() error {
	c.mu.Lock()
	c.closed = true
	subs := c.subs
	c.subs = map[*memSub]struct{}{}
	c.mu.Unlock()
	for s := range subs {
		s.Stop()
		s.requeue()
	}
	return nil
}

type memSub struct {
	conn    *memConn
	spec    Spec
	q       *memQueue
	deliver func(Delivery)

	mu       sync.Mutex
	unacked  map[*memAcker]struct{}
	stopOnce sync.Once
	quit     chan struct{}
	exited   chan struct{}
}

func (s *memSub) loop() {
	defer close(s.exited)
	for {
		s.q.mu.Lock()
		for len(s.q.items) == 0 || s.full() {
			select {
			case <-s.quit:
				s.q.mu.Unlock()
				return
			default:
			}
			s.q.cond.Wait()
		}
		select {
		case <-s.quit:
			s.q.mu.Unlock()
			return
		default:
		}
		m := s.q.items[0]
		s.q.items[0] = nil
		s.q.items = s.q.items[1:]
		a := &memAcker{s: s, m: m}
		s.mu.Lock()
		s.unacked[a] = struct{}{}
		s.mu.Unlock()
		s.q.mu.Unlock()
		s.deliver(Delivery{Message: m.clone(), Acker: a, Lag: -1})
	}
}

// full is called with q.mu held.
func (s *memSub) full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.unacked) >= s.spec.Prefetch
}

func (s *memSub) Stop() {
	s.stopOnce.Do(func() {
		close(s.quit)
		s.q.mu.Lock()
		s.q.cond.Broadcast()
		s.q.mu.Unlock()
		<-s.exited
		s.conn.b.mu.Lock()
		delete(s.conn.b.fanout, s)
		s.conn.b.mu.Unlock()
	})
}

func (s *memSub) Close() error {
	s.Stop()
	s.requeue()
	s.conn.mu.Lock()
	delete(s.conn.subs, s)
	s.conn.mu.Unlock()
	return nil
}

// requeue gives the unacknowledged messages back to the group.
func (s *memSub) requeue() {
	s.mu.Lock()
	left := s.unacked
	s.unacked = map[*memAcker]struct{}{}
	s.mu.Unlock()
	if s.spec.Group == "" {
		return
	}
	// Oldest first would need order; the group's members see them again as redeliveries.
	for a := range left {
		m := a.m.clone()
		m.Redelivered = true
		s.q.push(m, true)
	}
}

type memAcker struct {
	s *memSub
	m *Message
}

func (a *memAcker) settle() bool {
	a.s.mu.Lock()
	_, ok := a.s.unacked[a]
	delete(a.s.unacked, a)
	a.s.mu.Unlock()
	if ok {
		a.s.q.mu.Lock()
		a.s.q.cond.Broadcast() // a prefetch slot is free
		a.s.q.mu.Unlock()
	}
	return ok
}

func (a *memAcker) Ack() error {
	a.settle()
	return nil
}

func (a *memAcker) Release() error {
	if a.settle() && a.s.spec.Group != "" {
		m := a.m.clone()
		m.Redelivered = true
		a.s.q.push(m, true)
	}
	return nil
}

var _ Driver = (*memConn)(nil)
