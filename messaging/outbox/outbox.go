// Package outbox is the transactional outbox: messages written in the caller's SQL
// transaction (PostgreSQL, MySQL or SQLite through package database) and published by a
// relay, so "saved but not published" cannot happen, nor "published but rolled back".
//
//	ob, _ := outbox.New(db, outbox.Options{Publisher: bus})
//	ob.Migrate(ctx)                                   // its own table and version table
//	db.WithTx(ctx, nil, func(tx *sql.Tx) error {
//		saveOrder(ctx, tx, order)
//		return ob.Add(ctx, tx, &messaging.Message{Topic: "order.created", Key: order.ID, Payload: body})
//	})
//	go ob.Run(ctx)                                    // on every instance; one relays at a time
//
// The relay reads the table oldest first, publishes each run of messages, waits for the
// broker's confirmation, then deletes them. A relay that dies between the two publishes its
// batch again when it (or another) takes over: at least once, with the message IDs kept, so
// consumers can drop the duplicates (JetStream drops them itself within its window).
// Messages are published in the order they were written, which keeps the order of a key for
// transactions that committed one after the other; the order of transactions that committed
// at the same moment is not defined.
//
// One instance relays at a time: the relay holds a lease, a row of the database renewed
// every LeaseTTL/3 and taken over by another instance once it has expired — so the database
// decides, with no other coordinator. The lease uses each instance's clock, which must not
// be off by more than LeaseTTL.
package outbox

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/messaging"
)

//go:embed migrations
var migrations embed.FS

// Options configure an Outbox.
type Options struct {
	// Publisher is where the relay publishes (a *messaging.Bus). Required for Run.
	Publisher messaging.Publisher
	// MaxPayload refuses larger payloads in Add, where the error can reach the caller; the
	// broker would refuse them anyway and stall the relay. Defaults to the Publisher's
	// broker's limit when it is a *messaging.Bus, else 1 MiB.
	MaxPayload int
	// Holder names this instance in the lease. Defaults to hostname-pid-random.
	Holder string
	// LeaseTTL is how long a relay's lease lasts unrenewed: how soon another instance takes
	// over when the relaying one dies. Defaults to 10s.
	LeaseTTL time.Duration
	// PollInterval is how often the relay looks for new messages, and a follower for an
	// expired lease. Defaults to 200ms.
	PollInterval time.Duration
	// BatchSize is how many messages one round publishes. Defaults to 100.
	BatchSize int
	// Logger receives relay errors. Defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock of the lease. Defaults to time.Now.
	Now func() time.Time
}

// Outbox writes messages in transactions and relays them.
type Outbox struct {
	db     *database.DB
	opts   Options
	leader atomic.Bool
}

// New returns an Outbox on db.
func New(db *database.DB, opts Options) (*Outbox, error) {
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 1 << 20
		if b, ok := opts.Publisher.(*messaging.Bus); ok {
			opts.MaxPayload = b.Driver().MaxPayload()
		}
	}
	if opts.Holder == "" {
		host, _ := os.Hostname()
		opts.Holder = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), messaging.NewID()[24:])
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = 10 * time.Second
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = 100
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LeaseTTL < 3*opts.PollInterval {
		return nil, fmt.Errorf("outbox: lease TTL %s must be at least three poll intervals (%s)", opts.LeaseTTL, opts.PollInterval)
	}
	return &Outbox{db: db, opts: opts}, nil
}

// Migrate creates the outbox's tables (its own goose version table, shoal_outbox_migrations).
func (o *Outbox) Migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return database.Migrate(ctx, o.db, sub, database.WithTable("shoal_outbox_migrations"))
}

// Add writes msgs in tx; the relay publishes them once tx has committed, each to its Topic.
// Add fills in ID and Time when they are empty. A message is refused (and nothing written)
// for an invalid topic, a payload over MaxPayload or a negative delay.
func (o *Outbox) Add(ctx context.Context, tx *sql.Tx, msgs ...*messaging.Message) error {
	now := time.Now()
	for i, m := range msgs {
		switch {
		case m == nil:
			return fmt.Errorf("outbox: %w: message %d is nil", messaging.ErrInvalidMessage, i)
		case len(m.Payload) > o.opts.MaxPayload:
			return &messaging.PayloadError{Topic: m.Topic, Size: len(m.Payload), Limit: o.opts.MaxPayload, Backend: "outbox's"}
		case m.Delay < 0:
			return fmt.Errorf("outbox: %w: message %d has a negative delay", messaging.ErrInvalidMessage, i)
		}
		if err := messaging.ValidateTopic(m.Topic); err != nil {
			return fmt.Errorf("outbox: message %d (set its Topic): %w", i, err)
		}
	}
	q := o.db.Rebind("INSERT INTO shoal_outbox (msg_id, topic, msg_key, headers, payload, created_ns, delay_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)")
	for _, m := range msgs {
		if m.ID == "" {
			m.ID = messaging.NewID()
		}
		if m.Time.IsZero() {
			m.Time = now
		}
		h := "{}"
		if len(m.Headers) > 0 {
			b, _ := json.Marshal(m.Headers)
			h = string(b)
		}
		payload := m.Payload
		if payload == nil {
			payload = []byte{}
		}
		if _, err := tx.ExecContext(ctx, q, m.ID, m.Topic, m.Key, h, payload, m.Time.UnixNano(), m.Delay.Milliseconds()); err != nil {
			return fmt.Errorf("outbox: writing a message for %s: %w", m.Topic, database.Classify(err))
		}
	}
	return nil
}

// Leader reports whether this Outbox holds the relay's lease now.
func (o *Outbox) Leader() bool { return o.leader.Load() }

// Run relays until ctx is done: it waits for the lease, relays while it holds it, and gives
// it up on return, so another instance takes over at once.
func (o *Outbox) Run(ctx context.Context) error {
	if o.opts.Publisher == nil {
		return errors.New("outbox: Run needs Options.Publisher")
	}
	defer o.release()
	t := time.NewTicker(o.opts.PollInterval)
	defer t.Stop()
	var renewed time.Time
	for {
		if ctx.Err() != nil {
			return nil
		}
		if !o.leader.Load() || o.opts.Now().Sub(renewed) >= o.opts.LeaseTTL/3 {
			ok, err := o.acquire(ctx)
			if err != nil && ctx.Err() == nil {
				o.opts.Logger.Warn("outbox: could not take or renew the relay's lease", "err", err)
			}
			o.leader.Store(ok)
			if ok {
				renewed = o.opts.Now()
			}
		}
		if o.leader.Load() {
			n, err := o.relay(ctx)
			if err != nil && ctx.Err() == nil {
				o.opts.Logger.Warn("outbox: relaying failed; retrying", "err", err)
			}
			if err == nil && n == o.opts.BatchSize {
				continue // more waiting
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (o *Outbox) acquire(ctx context.Context) (bool, error) {
	now := o.opts.Now().UnixMilli()
	res, err := o.db.SQL().ExecContext(ctx, o.db.Rebind(
		"UPDATE shoal_outbox_lease SET holder = $1, expires_ms = $2 WHERE name = 'relay' AND (holder = $3 OR expires_ms < $4)"),
		o.opts.Holder, now+o.opts.LeaseTTL.Milliseconds(), o.opts.Holder, now)
	if err != nil {
		return false, database.Classify(err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (o *Outbox) release() {
	if !o.leader.Swap(false) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o.db.SQL().ExecContext(ctx, o.db.Rebind("UPDATE shoal_outbox_lease SET expires_ms = 0 WHERE name = 'relay' AND holder = $1"), o.opts.Holder)
}

type row struct {
	id  int64
	msg *messaging.Message
}

// relay publishes one batch, oldest first, and deletes what the broker confirmed.
func (o *Outbox) relay(ctx context.Context) (int, error) {
	rows, err := o.db.SQL().QueryContext(ctx, o.db.Rebind(
		"SELECT id, msg_id, topic, msg_key, headers, payload, created_ns, delay_ms FROM shoal_outbox ORDER BY id LIMIT $1"), o.opts.BatchSize)
	if err != nil {
		return 0, database.Classify(err)
	}
	var batch []row
	for rows.Next() {
		var r row
		var h string
		var created, delay int64
		m := &messaging.Message{}
		if err := rows.Scan(&r.id, &m.ID, &m.Topic, &m.Key, &h, &m.Payload, &created, &delay); err != nil {
			rows.Close()
			return 0, err
		}
		if h != "{}" {
			json.Unmarshal([]byte(h), &m.Headers)
		}
		m.Time, m.Delay = time.Unix(0, created), time.Duration(delay)*time.Millisecond
		r.msg = m
		batch = append(batch, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for start := 0; start < len(batch); {
		end := start + 1
		for end < len(batch) && batch[end].msg.Topic == batch[start].msg.Topic {
			end++
		}
		msgs := make([]*messaging.Message, 0, end-start)
		for _, r := range batch[start:end] {
			msgs = append(msgs, r.msg)
		}
		if err := o.opts.Publisher.Publish(ctx, batch[start].msg.Topic, msgs...); err != nil {
			return 0, err
		}
		if err := o.delete(ctx, batch[start:end]); err != nil {
			return 0, err
		}
		start = end
	}
	return len(batch), nil
}

func (o *Outbox) delete(ctx context.Context, rs []row) error {
	var b strings.Builder
	args := make([]any, len(rs))
	b.WriteString("DELETE FROM shoal_outbox WHERE id IN (")
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(i+1))
		args[i] = r.id
	}
	b.WriteString(")")
	_, err := o.db.SQL().ExecContext(ctx, o.db.Rebind(b.String()), args...)
	return database.Classify(err)
}
