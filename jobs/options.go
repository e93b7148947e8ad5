package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnqueueOption sets one property of a job being enqueued.
type EnqueueOption func(*enqueueOpts)

type enqueueOpts struct {
	queue       string
	priority    *int
	runAt       time.Time
	delay       time.Duration
	maxAttempts int
	timeout     time.Duration
	unique      *UniqueOpts
	tags        []string
	metadata    map[string]string
}

// Queue puts the job in queue q (one of jobs.queues). Defaults to "default".
func Queue(q string) EnqueueOption { return func(o *enqueueOpts) { o.queue = q } }

// Priority orders jobs within their queue: higher runs first. Defaults to 0.
func Priority(p int) EnqueueOption { return func(o *enqueueOpts) { o.priority = &p } }

// RunAt makes the job wait until t.
func RunAt(t time.Time) EnqueueOption { return func(o *enqueueOpts) { o.runAt = t } }

// Delay makes the job wait d from now.
func Delay(d time.Duration) EnqueueOption { return func(o *enqueueOpts) { o.delay = d } }

// MaxAttempts is how many times the job may run in all (1 + retries). Defaults to the kind's
// policy, else jobs.max_retries + 1.
func MaxAttempts(n int) EnqueueOption { return func(o *enqueueOpts) { o.maxAttempts = n } }

// Timeout cancels one run's context after d. Defaults to the kind's, else none.
func Timeout(d time.Duration) EnqueueOption { return func(o *enqueueOpts) { o.timeout = d } }

// Tags label the job (shown by List and the CLI).
func Tags(tags ...string) EnqueueOption {
	return func(o *enqueueOpts) { o.tags = append(o.tags, tags...) }
}

// Metadata attaches key/value pairs to the job.
func Metadata(md map[string]string) EnqueueOption {
	return func(o *enqueueOpts) {
		if o.metadata == nil {
			o.metadata = map[string]string{}
		}
		for k, v := range md {
			o.metadata[k] = v
		}
	}
}

// UniqueOpts make a job unique: a second Enqueue with the same key, while the first job is in
// one of States, inserts nothing and returns the first job with Duplicate set.
type UniqueOpts struct {
	// ByArgs includes the arguments in the key (else only the kind and queue).
	ByArgs bool
	// ByPeriod includes the period the job's run time falls in (e.g. one job per hour).
	ByPeriod time.Duration
	// Key is extra text for the key (e.g. a tenant ID).
	Key string
	// States are those in which the job blocks a duplicate. Defaults to available, running
	// and completed (cancelled and discarded jobs free their key).
	States []State
}

// Unique makes the job unique (see [UniqueOpts]).
func Unique(u UniqueOpts) EnqueueOption { return func(o *enqueueOpts) { o.unique = &u } }

var defaultUniqueStates = []State{StateAvailable, StateRunning, StateCompleted}

// uniqueKey returns the stored key and the states (as a comma list) that keep it.
func (u *UniqueOpts) key(kind, queue string, args []byte, runAt time.Time) (string, string, error) {
	states := u.States
	if len(states) == 0 {
		states = defaultUniqueStates
	}
	var names []string
	for _, s := range states {
		if _, err := ParseState(string(s)); err != nil {
			return "", "", err
		}
		names = append(names, string(s))
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(kind)
	b.WriteByte(0)
	b.WriteString(queue)
	b.WriteByte(0)
	if u.ByArgs {
		b.Write(args)
	}
	b.WriteByte(0)
	if u.ByPeriod > 0 {
		b.WriteString(strconv.FormatInt(runAt.Truncate(u.ByPeriod).UnixMilli(), 10))
	}
	b.WriteByte(0)
	b.WriteString(u.Key)
	sum := sha256.Sum256([]byte(b.String()))
	return kind + ":" + hex.EncodeToString(sum[:16]), strings.Join(names, ","), nil
}

// KindOption configures a kind at Register.
type KindOption func(*kindConfig)

type kindConfig struct {
	maxRetries  *int
	backoff     func(attempt int) time.Duration
	timeout     time.Duration
	concurrency int
	rateN       int
	ratePer     time.Duration
}

// WithRetries sets how many times a failing job of the kind is run again before it is discarded.
func WithRetries(n int) KindOption { return func(k *kindConfig) { k.maxRetries = &n } }

// WithBackoff sets the delay before retry number attempt (1 after the first failure).
func WithBackoff(fn func(attempt int) time.Duration) KindOption {
	return func(k *kindConfig) { k.backoff = fn }
}

// WithTimeout cancels one run's context after d.
func WithTimeout(d time.Duration) KindOption { return func(k *kindConfig) { k.timeout = d } }

// WithConcurrency limits how many jobs of the kind run at once across every client on the
// database (every instance of the fleet), enforced by the database.
func WithConcurrency(n int) KindOption { return func(k *kindConfig) { k.concurrency = n } }

// WithRateLimit lets at most n jobs of the kind start per interval across every client on the
// database, enforced by the database.
func WithRateLimit(n int, per time.Duration) KindOption {
	return func(k *kindConfig) { k.rateN, k.ratePer = n, per }
}

func (k *kindConfig) validate(kind string) error {
	if k.maxRetries != nil && *k.maxRetries < 0 {
		return fmt.Errorf("jobs: kind %q: retries must be zero or more, got %d", kind, *k.maxRetries)
	}
	if k.concurrency < 0 {
		return fmt.Errorf("jobs: kind %q: concurrency must be zero (no limit) or more, got %d", kind, k.concurrency)
	}
	if k.rateN < 0 || (k.rateN > 0 && k.ratePer <= 0) {
		return fmt.Errorf("jobs: kind %q: rate limit needs n > 0 and a positive interval, got %d per %s", kind, k.rateN, k.ratePer)
	}
	return nil
}
