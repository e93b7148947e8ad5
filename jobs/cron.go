package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/robfig/cron/v3"
)

// Missed says what a schedule does about ticks that passed while no client ran it.
type Missed int

const (
	// MissedSkip forgets missed ticks: the next run is the next tick from now (the default).
	MissedSkip Missed = iota
	// MissedRunOnce enqueues one job for the latest missed tick, then carries on.
	MissedRunOnce
	// MissedRunAll enqueues one job per missed tick, at most 1000.
	MissedRunAll
)

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a five-field cron expression or a descriptor (@hourly, @every 5m), with an
// optional CRON_TZ=Zone/Name prefix.
//
// Across a DST change a schedule runs each wall-clock time it names at most once: when clocks
// go back, the repeated hour does not run again; when they go forward, a time in the skipped
// hour does not exist and does not run that day. @every is a fixed interval of real time, its
// ticks on multiples of the interval (so every instance computes the same ticks).
func ParseCron(spec string) (cron.Schedule, error) {
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("jobs: %q is not a cron expression (%v); write five fields such as \"0 * * * *\", a descriptor such as @hourly or @every 5m, optionally after CRON_TZ=Europe/Paris", spec, err)
	}
	if every, ok := s.(cron.ConstantDelaySchedule); ok {
		return everySchedule{every.Delay}, nil
	}
	return onceWallClock{s}, nil
}

// everySchedule is @every d with its ticks on multiples of d since the zero time (robfig's
// ConstantDelaySchedule counts from each process's start, so two instances would enqueue
// different ticks).
type everySchedule struct{ d time.Duration }

func (s everySchedule) Next(t time.Time) time.Time {
	if s.d <= 0 {
		return time.Time{}
	}
	return t.Truncate(s.d).Add(s.d)
}

// onceWallClock skips the second occurrence of a wall-clock time (clocks going back).
type onceWallClock struct{ cron.Schedule }

func (s onceWallClock) Next(t time.Time) time.Time {
	for i := 0; i < 4; i++ {
		n := s.Schedule.Next(t)
		if n.IsZero() || !repeatedWallClock(n) {
			return n
		}
		t = n
	}
	return time.Time{}
}

// repeatedWallClock reports whether the wall-clock reading of t also happened an hour earlier.
func repeatedWallClock(t time.Time) bool {
	e := t.Add(-time.Hour)
	y1, m1, d1 := t.Date()
	y2, m2, d2 := e.Date()
	return y1 == y2 && m1 == m2 && d1 == d2 && t.Hour() == e.Hour() && t.Minute() == e.Minute()
}

// ScheduleOption configures a schedule.
type ScheduleOption func(*schedule)

// InLocation evaluates the schedule in loc (its wall clock, across DST changes).
func InLocation(loc *time.Location) ScheduleOption { return func(s *schedule) { s.loc = loc } }

// OnMissed sets what happens to ticks missed while every client was down.
func OnMissed(m Missed) ScheduleOption { return func(s *schedule) { s.missed = m } }

// WithEnqueueOptions sets the options of every job the schedule enqueues (queue, priority…).
func WithEnqueueOptions(opts ...EnqueueOption) ScheduleOption {
	return func(s *schedule) { s.opts = append(s.opts, opts...) }
}

type schedule struct {
	name   string
	kind   string
	spec   cron.Schedule
	args   Args
	loc    *time.Location
	missed Missed
	opts   []EnqueueOption
}

// Schedule enqueues args at every tick of spec. Every client of the fleet may run the same
// schedule: each tick is enqueued once, because its job carries the unique key
// (schedule, tick), kept in every state. Call before Start.
func (c *Client) Schedule(name, spec string, args Args, opts ...ScheduleOption) error {
	if name == "" || len(name) > 200 {
		return errors.New("jobs: a schedule needs a name of 1 to 200 characters")
	}
	kind, err := kindOf(args)
	if err != nil {
		return err
	}
	s := &schedule{name: name, kind: kind, args: args}
	for _, o := range opts {
		o(s)
	}
	if s.loc != nil {
		spec = "CRON_TZ=" + s.loc.String() + " " + spec
	}
	if s.spec, err = ParseCron(spec); err != nil {
		return fmt.Errorf("schedule %q: %w", name, err)
	}
	var eo enqueueOpts
	for _, o := range s.opts {
		o(&eo)
	}
	if eo.queue != "" {
		if _, ok := c.cfg.Queues[eo.queue]; !ok {
			return fmt.Errorf("schedule %q: %w %q; jobs.queues has %s", name, ErrUnknownQueue, eo.queue, queueNames(c.cfg.Queues))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.run != nil {
		return fmt.Errorf("jobs: Schedule(%q) after Start; add schedules first", name)
	}
	for _, o := range c.sched {
		if o.name == name {
			return fmt.Errorf("jobs: schedule %q is added twice; names must be unique", name)
		}
	}
	c.sched = append(c.sched, s)
	return nil
}

// ScheduleConfig adds the schedules of the jobs block (jobs.schedules): each enqueues its kind
// with empty arguments ({}).
func (c *Client) ScheduleConfig() error {
	for _, sc := range c.cfg.Schedules {
		q := sc.Queue
		if q == "" {
			q = "default"
		}
		if err := c.Schedule(sc.Name, sc.Cron, rawArgs{sc.Job, json.RawMessage(`{}`)}, WithEnqueueOptions(Queue(q))); err != nil {
			return err
		}
	}
	return nil
}

// Ticks returns the ticks of spec after from up to and including to, at most max.
func Ticks(s cron.Schedule, from, to time.Time, max int) []time.Time {
	var out []time.Time
	for t := s.Next(from); !t.IsZero() && !t.After(to) && len(out) < max; t = s.Next(t) {
		out = append(out, t)
	}
	return out
}

func (s *schedule) uniqueKey(tick time.Time) string {
	return "cron:" + s.name + ":" + strconv.FormatInt(tick.Unix(), 10)
}

// enqueueTick enqueues the job of one tick; a duplicate (another instance was first) is fine.
func (c *Client) enqueueTick(ctx context.Context, s *schedule, tick time.Time) (Result, error) {
	opts := append([]EnqueueOption{}, s.opts...)
	opts = append(opts, RunAt(tick), Unique(UniqueOpts{Key: s.uniqueKey(tick), States: allStates}),
		Metadata(map[string]string{"schedule": s.name, "tick": tick.UTC().Format(time.RFC3339)}))
	res, err := c.enqueue(ctx, nil, []Insert{{s.args, opts}})
	if err != nil {
		return Result{}, err
	}
	_, err = c.st.writer().exec(ctx, `UPDATE shoal_job_schedules SET last_tick = $2 WHERE name = $1 AND last_tick < $2`, s.name, tick.UnixMilli())
	return res[0], err
}

// lastTick reads (creating it at now) the schedule's last enqueued tick.
func (c *Client) lastTick(ctx context.Context, name string, now time.Time) (time.Time, error) {
	var ms int64
	err := queryOne(ctx, c.st.writer(), `SELECT last_tick FROM shoal_job_schedules WHERE name = $1`, []any{name}, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		q := `INSERT INTO shoal_job_schedules (name, last_tick) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`
		if c.st.d == "mysql" {
			q = `INSERT IGNORE INTO shoal_job_schedules (name, last_tick) VALUES ($1, $2)`
		}
		if _, err := c.st.writer().exec(ctx, q, name, now.UnixMilli()); err != nil {
			return time.Time{}, err
		}
		err = queryOne(ctx, c.st.writer(), `SELECT last_tick FROM shoal_job_schedules WHERE name = $1`, []any{name}, &ms)
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(ms), nil
}

// catchUp enqueues the ticks missed since the schedule's last tick, as its policy says.
func (c *Client) catchUp(ctx context.Context, s *schedule, now time.Time) error {
	if s.missed == MissedSkip {
		return nil
	}
	last, err := c.lastTick(ctx, s.name, now)
	if err != nil {
		return err
	}
	ticks := Ticks(s.spec, last, now, 1000)
	if s.missed == MissedRunOnce && len(ticks) > 1 {
		ticks = ticks[len(ticks)-1:]
	}
	for _, t := range ticks {
		if _, err := c.enqueueTick(ctx, s, t); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner2) scheduleLoop(list []*schedule) {
	defer r.bg.Done()
	c := r.c
	now := c.now()
	next := make([]time.Time, len(list))
	for i, s := range list {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := c.catchUp(ctx, s, now); err != nil {
			c.log.Error("jobs: catching up missed ticks failed", "schedule", s.name, "err", err)
		}
		if _, err := c.lastTick(ctx, s.name, now); err != nil {
			c.log.Error("jobs: reading the schedule's last tick failed", "schedule", s.name, "err", err)
		}
		cancel()
		next[i] = s.spec.Next(now)
	}
	for {
		earliest := time.Time{}
		for _, t := range next {
			if !t.IsZero() && (earliest.IsZero() || t.Before(earliest)) {
				earliest = t
			}
		}
		if earliest.IsZero() {
			return
		}
		wait := time.Until(earliest)
		if d := earliest.Sub(c.now()); d < wait {
			wait = d
		}
		select {
		case <-r.stopCh:
			return
		case <-time.After(wait):
		}
		now := c.now()
		for i, s := range list {
			for !next[i].IsZero() && !next[i].After(now) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := c.enqueueTick(ctx, s, next[i])
				cancel()
				if err != nil {
					c.log.Error("jobs: enqueuing a scheduled job failed; another instance may still enqueue it", "schedule", s.name, "tick", next[i], "err", err)
				}
				next[i] = s.spec.Next(next[i])
			}
		}
	}
}
