package eventstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// GroupOptions configure a member of a competing-consumer group.
type GroupOptions struct {
	SubscribeOptions
	// Member names this member; it must be unique in the group. Defaults to the host name,
	// the process ID and a random suffix.
	Member string
	// Partitions is how many partitions the group's events are spread over (by a hash of
	// the stream, so one stream's events go to one member, in order). Every member must
	// use the same count. Defaults to 8.
	Partitions int
	// Heartbeat is how often the member renews its leases and rebalances. Defaults to 1s.
	Heartbeat time.Duration
	// LeaseTTL is how long a member's partitions stay its own without a heartbeat: after a
	// crash, its partitions move to the others this long after its last heartbeat.
	// Defaults to 10s; at least twice Heartbeat.
	LeaseTTL time.Duration
}

func (o *GroupOptions) setDefaults() {
	o.SubscribeOptions.setDefaults()
	if o.Member == "" {
		host, _ := os.Hostname()
		o.Member = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), NewID()[24:])
	}
	if o.Partitions <= 0 {
		o.Partitions = 8
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Second
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Second
	}
	o.LeaseTTL = max(o.LeaseTTL, 2*o.Heartbeat)
}

// SubscribeGroup starts a member of the competing-consumer group named group: the
// members running anywhere (the instances of a fleet) share the group's events, each
// event handled by one member, each stream's events by one member at a time in order. The
// events are spread over partitions by stream; each member owns a fair share of them
// under leases it renews every heartbeat, and commits each partition's checkpoint only
// while it owns it. When a member stops, Close hands its partitions over at once; when it
// crashes, they move after LeaseTTL, and their events since the last committed checkpoint
// are delivered again (at least once). SubscribeGroup returns after the first rebalance.
func SubscribeGroup(ctx context.Context, store Store, group string, h Handler, opts GroupOptions) (*Subscription, error) {
	opts.setDefaults()
	if err := ValidateLeaseRequest(LeaseRequest{Group: group, Member: opts.Member, Partitions: opts.Partitions, TTL: opts.LeaseTTL}); err != nil {
		return nil, err
	}
	s, err := newSubscription(ctx, store, group, h, opts.SubscribeOptions)
	if err != nil {
		return nil, err
	}
	g := &groupRun{s: s, opts: opts, group: group, cps: map[int]Position{}, dirty: map[int]bool{}}
	if err := g.rebalance(ctx); err != nil {
		s.release()
		return nil, fmt.Errorf("group %q: %w", group, err)
	}
	go s.run(g.loop)
	return s, nil
}

type groupRun struct {
	s     *Subscription
	opts  GroupOptions
	group string
	owned []int
	cps   map[int]Position // checkpoint per owned partition
	dirty map[int]bool
	beat  time.Time // next heartbeat
}

func (g *groupRun) rebalance(ctx context.Context) error {
	g.commit()
	now := g.opts.Clock.Now()
	leases, err := g.s.store.Rebalance(ctx, LeaseRequest{Group: g.group, Member: g.opts.Member,
		Partitions: g.opts.Partitions, Now: now, TTL: g.opts.LeaseTTL})
	g.beat = now.Add(g.opts.Heartbeat)
	if err != nil {
		return err
	}
	owned := make([]int, 0, len(leases))
	cps := make(map[int]Position, len(leases))
	for _, l := range leases {
		owned = append(owned, l.Partition)
		cps[l.Partition] = l.Checkpoint
		if old, kept := g.cps[l.Partition]; kept && old > l.Checkpoint {
			cps[l.Partition] = old // committed just now, or about to be
		}
	}
	g.owned, g.cps = owned, cps
	for p := range g.dirty {
		if _, ok := cps[p]; !ok {
			delete(g.dirty, p)
		}
	}
	g.setPos()
	return nil
}

// commit saves the checkpoint of every partition that moved; a partition lost meanwhile is
// dropped.
func (g *groupRun) commit() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(g.s.stopCtx), 10*time.Second)
	defer cancel()
	for p := range g.dirty {
		err := g.s.store.CommitLease(ctx, g.group, g.opts.Member, p, g.cps[p])
		switch {
		case err == nil:
			delete(g.dirty, p)
		case errors.Is(err, ErrLeaseLost):
			g.opts.Logger.Warn("group member lost a partition to another member", "group", g.group, "member", g.opts.Member, "partition", p)
			delete(g.dirty, p)
			delete(g.cps, p)
			g.owned = slices.DeleteFunc(g.owned, func(q int) bool { return q == p })
		default:
			g.opts.Logger.Warn("group member cannot commit a checkpoint; it will try again", "group", g.group, "partition", p, "error", err)
		}
	}
	g.s.saved.Store(int64(g.low()))
}

// low is the lowest checkpoint of the owned partitions (where reading resumes).
func (g *groupRun) low() Position {
	var low Position = -1
	for _, p := range g.owned {
		if c := g.cps[p]; low < 0 || c < low {
			low = c
		}
	}
	return max(low, 0)
}

func (g *groupRun) setPos() { g.s.pos.Store(int64(g.low())) }

func (g *groupRun) loop() error {
	s := g.s
	defer func() {
		g.commit()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.stopCtx), 10*time.Second)
		defer cancel()
		if err := s.store.LeaveGroup(ctx, g.group, g.opts.Member); err != nil {
			s.opts.Logger.Warn("group member could not leave its group; its partitions move when its leases expire", "group", g.group, "error", err)
		}
	}()
	unsaved := 0
	for {
		if s.stopCtx.Err() != nil {
			return nil
		}
		if !g.opts.Clock.Now().Before(g.beat) {
			if err := g.rebalance(s.stopCtx); err != nil {
				if s.stopCtx.Err() != nil {
					return nil
				}
				s.opts.Logger.Warn("group member cannot rebalance; it will try again", "group", g.group, "error", err)
			}
		}
		if len(g.owned) == 0 {
			if !g.waitBeat(0, false) {
				return nil
			}
			continue
		}
		next := g.low() + 1
		sl, ok := s.read(ReadAllOptions{From: next, Limit: s.opts.BatchSize, Filter: s.opts.Filter})
		if !ok {
			return nil
		}
		for _, e := range sl.Events {
			if s.stopCtx.Err() != nil {
				return nil
			}
			p := PartitionOf(e.Stream, g.opts.Partitions)
			cp, mine := g.cps[p]
			if !mine || e.Position <= cp {
				continue
			}
			ok, err := s.handle(e)
			if !ok {
				return err
			}
			g.cps[p], g.dirty[p] = e.Position, true
			unsaved++
		}
		for _, p := range g.owned {
			if g.cps[p] < sl.Next-1 {
				g.cps[p], g.dirty[p] = sl.Next-1, true
			}
		}
		g.setPos()
		s.lag.Set(float64(max(sl.Head-g.low(), 0)))
		s.posG.Set(float64(g.low()))
		caughtUp := sl.Next > sl.Head
		if unsaved >= s.opts.CheckpointEvery || caughtUp {
			g.commit()
			unsaved = 0
		}
		if caughtUp && !g.waitBeat(sl.Next-1, true) {
			return nil
		}
	}
}

// waitBeat waits for the next heartbeat, or (when forAppend) for an append after pos,
// whichever comes first. It returns false when the subscription stops.
func (g *groupRun) waitBeat(pos Position, forAppend bool) bool {
	s := g.s
	d := g.beat.Sub(g.opts.Clock.Now())
	if d <= 0 {
		return s.stopCtx.Err() == nil
	}
	if !forAppend {
		return s.sleep(d)
	}
	ctx, cancel := context.WithCancel(s.stopCtx)
	defer cancel()
	timer, stopTimer := g.opts.Clock.After(d)
	defer stopTimer()
	go func() {
		select {
		case <-timer:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := s.store.WaitForAppend(ctx, pos)
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
		s.opts.Logger.Warn("group member cannot wait for appends; retrying", "group", g.group, "error", err)
		return s.sleep(s.opts.Backoff)
	}
	return s.stopCtx.Err() == nil
}
