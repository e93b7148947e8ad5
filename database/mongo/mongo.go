// Package mongo opens the MongoDB of shoal.yml's database block (mongodb://, mongodb+srv://)
// with the official driver, go.mongodb.org/mongo-driver/v2, and the same pool settings, errors
// and metrics as package database. It is a package of its own so that a program using SQL does
// not link the MongoDB driver.
//
//	c, err := mongo.Open(ctx, cfg.Database) // DATABASE_URL overrides database.url
//	if err != nil { return err }            // one sentence, password masked
//	defer c.Close(context.Background())
//	users := c.Database().Collection("users")
//
// The pool settings map onto the driver's: max_connections → maxPoolSize, min_connections →
// minPoolSize, idle_timeout → maxConnIdleTime, connect_timeout → connectTimeoutMS and the
// server selection timeout (so an unreachable server fails within it); parameters in the URL
// win. max_lifetime and acquire_timeout have no counterpart in the driver and are not honoured:
// bound a wait for a connection with the context (or timeoutMS in the URL). Read replicas are
// the driver's job on MongoDB — list the replica set's hosts and set readPreference (and
// maxStalenessSeconds) in the URL — so database.read_replicas is refused.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database"
)

// Client is an open MongoDB client and its database. It is safe for concurrent use.
type Client struct {
	client *mongo.Client
	db     *mongo.Database
	name   string
	max    int
	stats  poolStats
}

type poolStats struct {
	open, inUse     atomic.Int64
	waits, timeouts atomic.Uint64
	waitNanos       atomic.Int64
	acquire         prometheus.Histogram
}

const example = "mongodb://user:password@host:27017/name"

// Open connects to the MongoDB cfg describes and pings it within connect_timeout. Errors are
// one sentence naming the database with its password masked: database.ErrBadURL,
// database.ErrUnreachable or database.ErrAuth.
func Open(ctx context.Context, cfg config.Database) (*Client, error) {
	c := &Client{name: database.Redact(cfg.URL)}
	c.stats.acquire = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "shoal_db_pool_acquire_seconds", Help: "Time from asking for a connection to getting one.",
		ConstLabels: prometheus.Labels{"database": "mongodb", "pool": "primary"},
		Buckets:     prometheus.ExponentialBuckets(0.00001, 4, 11),
	})
	p, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	opts := p.opts.SetPoolMonitor(&event.PoolMonitor{Event: c.poolEvent})
	if opts.MaxPoolSize != nil {
		c.max = int(*opts.MaxPoolSize)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, errorf(database.ErrBadURL, "database %s cannot be used (%s); write it as %s", c.name, maskErr(err, p.url), example)
	}
	c.client, c.db = client, client.Database(p.dbName)
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := c.PingContext(pctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return c, nil
}

// parsed is a database block checked and turned into the driver's options.
type parsed struct {
	opts    *options.ClientOptions
	url     *url.URL
	dbName  string
	timeout time.Duration
}

// parse checks cfg and applies the pool settings to the driver's options, without connecting
// (a mongodb+srv:// URL is looked up in DNS, as the driver does).
func parse(cfg config.Database) (parsed, error) {
	raw := cfg.URL
	name := database.Redact(raw)
	if raw == "" {
		return parsed{}, errorf(database.ErrBadURL, "database.url is empty; set it (or DATABASE_URL), e.g. %s", example)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
		return parsed{}, errorf(database.ErrBadURL, "database %s is not a mongodb:// or mongodb+srv:// URL; write it as %s", name, example)
	}
	if len(cfg.ReadReplicas) > 0 {
		return parsed{}, errorf(database.ErrBadURL, "database %s is MongoDB, which routes reads to replicas itself; list the replica set's hosts in database.url with readPreference=secondaryPreferred (and maxStalenessSeconds), and remove database.read_replicas", name)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" {
		dbName = cfg.Name
	}
	if dbName == "" {
		return parsed{}, errorf(database.ErrBadURL, "database %s names no database; add it to the path, as in %s", name, example)
	}
	if u.User == nil && cfg.User != "" {
		u.User = url.UserPassword(cfg.User, cfg.Password)
		raw = u.String()
	}
	q := u.Query()
	has := func(k string) bool {
		for key := range q {
			if strings.EqualFold(key, k) {
				return true
			}
		}
		return false
	}
	opts := options.Client().ApplyURI(raw)
	if !has("maxPoolSize") && cfg.MaxConnections > 0 {
		opts.SetMaxPoolSize(uint64(cfg.MaxConnections))
	}
	if !has("minPoolSize") && cfg.MinConnections > 0 {
		opts.SetMinPoolSize(uint64(cfg.MinConnections))
	}
	if !has("maxIdleTimeMS") && cfg.IdleTimeout > 0 {
		opts.SetMaxConnIdleTime(cfg.IdleTimeout.D())
	}
	timeout := cfg.ConnectTimeout.D()
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if !has("connectTimeoutMS") {
		opts.SetConnectTimeout(timeout)
	}
	if !has("serverSelectionTimeoutMS") {
		opts.SetServerSelectionTimeout(timeout)
	}
	if err := opts.Validate(); err != nil {
		return parsed{}, errorf(database.ErrBadURL, "database %s cannot be used (%s); write it as %s", name, maskErr(err, u), example)
	}
	return parsed{opts: opts, url: u, dbName: dbName, timeout: timeout}, nil
}

// maskErr is the driver's message with the URL's password taken out.
func maskErr(err error, u *url.URL) string {
	msg := err.Error()
	if pw, ok := u.User.Password(); ok && pw != "" {
		msg = strings.ReplaceAll(msg, pw, config.Redacted)
	}
	return database.Redact(msg)
}

// Client returns the driver's client.
func (c *Client) Client() *mongo.Client { return c.client }

// Database returns the database the URL names.
func (c *Client) Database() *mongo.Database { return c.db }

// Name returns the URL with its password masked.
func (c *Client) Name() string { return c.name }

// PingContext checks that the primary answers; the health package's database check calls it
// (health.WithDB("database", client)).
func (c *Client) PingContext(ctx context.Context) error {
	err := c.client.Ping(ctx, readpref.Primary())
	if err == nil {
		return nil
	}
	var ce mongo.CommandError
	switch {
	case errors.As(err, &ce) && (ce.Code == 18 || ce.Code == 13):
		return errorf(database.ErrAuth, "database %s refused the credentials (%s); check the user and password in database.url or DATABASE_URL", c.name, ce.Message)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("database %s: pinging was cancelled: %w", c.name, err)
	case mongo.IsTimeout(err) || mongo.IsNetworkError(err) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "server selection"):
		return errorf(database.ErrUnreachable, "database %s cannot be reached (%s); check that the server is running and that database.url names the right host and port", c.name, firstLine(err.Error()))
	}
	return fmt.Errorf("database %s: %w", c.name, err)
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// WithTransaction runs fn in a transaction of a new session and commits it; the driver runs it
// again on a TransientTransactionError and retries the commit on UnknownTransactionCommitResult.
// fn must use the ctx it is given. MongoDB needs a replica set (or sharded cluster) for
// transactions.
func (c *Client) WithTransaction(ctx context.Context, fn func(ctx context.Context) error) error {
	s, err := c.client.StartSession()
	if err != nil {
		return Classify(err)
	}
	defer s.EndSession(context.WithoutCancel(ctx))
	_, err = s.WithTransaction(ctx, func(ctx context.Context) (any, error) { return nil, fn(ctx) })
	return Classify(err)
}

// Close disconnects, waiting for in-use connections until ctx is done.
func (c *Client) Close(ctx context.Context) error { return c.client.Disconnect(ctx) }

// Classify returns err as a *database.Error matching database.ErrUniqueViolation (duplicate
// key, E11000), database.ErrNotFound (mongo.ErrNoDocuments) or database.ErrConflict (a
// transient transaction error), or err unchanged.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var de *database.Error
	if errors.As(err, &de) {
		return err
	}
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return &database.Error{Kind: database.ErrNotFound, Err: err}
	case mongo.IsDuplicateKeyError(err):
		return &database.Error{Kind: database.ErrUniqueViolation, Code: "11000", Err: err}
	}
	var le mongo.LabeledError
	if errors.As(err, &le) && le.HasErrorLabel("TransientTransactionError") {
		return &database.Error{Kind: database.ErrConflict, Err: err}
	}
	return err
}

func (c *Client) poolEvent(e *event.PoolEvent) {
	s := &c.stats
	switch e.Type {
	case event.ConnectionCreated:
		s.open.Add(1)
	case event.ConnectionClosed:
		s.open.Add(-1)
	case event.ConnectionCheckedOut:
		s.inUse.Add(1)
		s.acquire.Observe(e.Duration.Seconds())
		if e.Duration > time.Millisecond {
			s.waits.Add(1)
			s.waitNanos.Add(int64(e.Duration))
		}
	case event.ConnectionCheckedIn:
		s.inUse.Add(-1)
	case event.ConnectionCheckOutFailed:
		if e.Reason == event.ReasonTimedOut {
			s.timeouts.Add(1)
		}
	}
}

// Stats is the pool's state, as database.PoolStats (Reads stays 0).
func (c *Client) Stats() database.PoolStats {
	s := &c.stats
	open, inUse := int(s.open.Load()), int(s.inUse.Load())
	return database.PoolStats{Pool: "primary", Database: c.name, Open: open, InUse: inUse, Idle: max(open-inUse, 0),
		Max: c.max, WaitCount: int64(s.waits.Load()), WaitDuration: time.Duration(s.waitNanos.Load()),
		AcquireTimeouts: s.timeouts.Load()}
}

// Collector returns the Prometheus collector of the pool, with the names and labels of package
// database's (database="mongodb", pool="primary"). A wait is counted when a check-out took more
// than a millisecond: the driver does not say whether it queued.
func (c *Client) Collector() prometheus.Collector { return collector{c} }

type collector struct{ c *Client }

var labels = []string{"database", "pool"}

var descs = map[string]*prometheus.Desc{
	"open":     prometheus.NewDesc("shoal_db_pool_open_connections", "Connections open in the pool, in use or idle.", labels, nil),
	"in_use":   prometheus.NewDesc("shoal_db_pool_in_use_connections", "Connections of the pool in use.", labels, nil),
	"idle":     prometheus.NewDesc("shoal_db_pool_idle_connections", "Idle connections of the pool.", labels, nil),
	"max":      prometheus.NewDesc("shoal_db_pool_max_connections", "Most connections the pool opens (max_connections).", labels, nil),
	"waits":    prometheus.NewDesc("shoal_db_pool_waits_total", "Times a caller had to wait for a connection because the pool was busy.", labels, nil),
	"wait_s":   prometheus.NewDesc("shoal_db_pool_wait_seconds_total", "Total time callers waited for a connection.", labels, nil),
	"timeouts": prometheus.NewDesc("shoal_db_pool_acquire_timeouts_total", "Callers that gave up without a connection.", labels, nil),
}

func (k collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
	k.c.stats.acquire.Describe(ch)
}

func (k collector) Collect(ch chan<- prometheus.Metric) {
	st := k.c.Stats()
	g := func(d string, v float64) {
		ch <- prometheus.MustNewConstMetric(descs[d], prometheus.GaugeValue, v, "mongodb", "primary")
	}
	n := func(d string, v float64) {
		ch <- prometheus.MustNewConstMetric(descs[d], prometheus.CounterValue, v, "mongodb", "primary")
	}
	g("open", float64(st.Open))
	g("in_use", float64(st.InUse))
	g("idle", float64(st.Idle))
	g("max", float64(st.Max))
	n("waits", float64(st.WaitCount))
	n("wait_s", st.WaitDuration.Seconds())
	n("timeouts", float64(st.AcquireTimeouts))
	k.c.stats.acquire.Collect(ch)
}

// kindError is one sentence of its own that matches a sentinel of package database.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
