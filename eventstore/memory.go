package eventstore

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"
)

// MemoryOptions configure a memory store.
type MemoryOptions struct {
	// Clock stamps events and leases. Defaults to the system clock.
	Clock Clock
}

// Memory is an event store in the process's memory: for tests, examples and a service
// that keeps nothing. It has every guarantee of the SQL stores within one process.
type Memory struct {
	clock Clock

	mu          sync.RWMutex
	events      []RecordedEvent // events[p-1] is at position p
	streams     map[string][]Position
	ids         map[string]Position
	checkpoints map[string]CheckpointInfo
	snapshots   map[string][]Snapshot // per stream, by version ascending
	groups      map[string]*memGroup
	appended    chan struct{} // closed and replaced on every append
	closed      bool
}

type memGroup struct {
	parts   []PartitionInfo
	members map[string]time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty memory store.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	return &Memory{clock: opts.Clock, streams: map[string][]Position{}, ids: map[string]Position{},
		checkpoints: map[string]CheckpointInfo{}, snapshots: map[string][]Snapshot{}, groups: map[string]*memGroup{},
		appended: make(chan struct{})}
}

// Append implements Appender.
func (m *Memory) Append(ctx context.Context, stream string, expected ExpectedVersion, events ...EventData) (AppendResult, error) {
	evs, err := PrepareAppend(stream, expected, events)
	if err != nil {
		return AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return AppendResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return AppendResult{}, ErrClosed
	}
	cur := int64(len(m.streams[stream]))
	var stored []RecordedEvent
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
		if p, ok := m.ids[e.ID]; ok {
			stored = append(stored, m.events[p-1])
		}
	}
	if len(stored) > 0 {
		return ResolveRetry(stream, expected, ids, stored, cur)
	}
	if !expected.Allows(cur) {
		return AppendResult{}, &ConflictError{Stream: stream, Expected: expected, Actual: cur}
	}
	var last time.Time
	if n := len(m.events); n > 0 {
		last = m.events[n-1].Time
	}
	t := EventTime(m.clock.Now(), last)
	first := Position(len(m.events) + 1)
	for i, e := range evs {
		p := first + Position(i)
		m.events = append(m.events, RecordedEvent{ID: e.ID, Stream: stream, Version: cur + int64(i) + 1, Position: p,
			Type: e.Type, Data: slices.Clone(e.Data), Metadata: cloneMetadata(e.Metadata), Time: t})
		m.streams[stream] = append(m.streams[stream], p)
		m.ids[e.ID] = p
	}
	close(m.appended)
	m.appended = make(chan struct{})
	n := int64(len(evs))
	return AppendResult{Stream: stream, FirstVersion: cur + 1, LastVersion: cur + n,
		FirstPosition: first, LastPosition: first + Position(n-1)}, nil
}

func cloneMetadata(md Metadata) Metadata {
	if md.Headers != nil {
		h := make(map[string]string, len(md.Headers))
		for k, v := range md.Headers {
			h[k] = v
		}
		md.Headers = h
	}
	return md
}

// ReadStream implements Reader.
func (m *Memory) ReadStream(ctx context.Context, stream string, opts ReadStreamOptions) ([]RecordedEvent, error) {
	if err := ValidateStream(stream); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	ps := m.streams[stream]
	if len(ps) == 0 {
		return nil, ErrStreamNotFound
	}
	var out []RecordedEvent
	add := func(i int) bool {
		out = append(out, m.events[ps[i]-1])
		return opts.Limit <= 0 || len(out) < opts.Limit
	}
	if opts.Backward {
		from := int64(len(ps))
		if opts.From > 0 && opts.From < from {
			from = opts.From
		}
		for i := from - 1; i >= 0 && add(int(i)); i-- {
		}
		return out, nil
	}
	for i := max(opts.From, 1) - 1; i < int64(len(ps)) && add(int(i)); i++ {
	}
	return out, nil
}

// ReadAll implements Reader.
func (m *Memory) ReadAll(ctx context.Context, opts ReadAllOptions) (AllSlice, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return AllSlice{}, ErrClosed
	}
	head := Position(len(m.events))
	limit := opts.ReadLimit()
	window := opts.ScanWindow()
	s := AllSlice{Head: head}
	if opts.Backward {
		from := head
		if opts.From > 0 && opts.From < head {
			from = opts.From
		}
		p := from
		for ; p >= 1 && len(s.Events) < limit && from-p < window; p-- {
			if e := m.events[p-1]; opts.Filter.Match(e.Stream, e.Type) {
				s.Events = append(s.Events, e)
			}
		}
		s.Next = p
		return s, nil
	}
	p := max(opts.From, 1)
	start := p
	for ; p <= head && len(s.Events) < limit && p-start < window; p++ {
		if e := m.events[p-1]; opts.Filter.Match(e.Stream, e.Type) {
			s.Events = append(s.Events, e)
		}
	}
	s.Next = p
	return s, nil
}

// Head implements Reader.
func (m *Memory) Head(ctx context.Context) (Position, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	return Position(len(m.events)), nil
}

// StreamVersion implements Reader.
func (m *Memory) StreamVersion(ctx context.Context, stream string) (int64, time.Time, error) {
	if err := ValidateStream(stream); err != nil {
		return 0, time.Time{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, time.Time{}, ErrClosed
	}
	ps := m.streams[stream]
	if len(ps) == 0 {
		return 0, time.Time{}, nil
	}
	return int64(len(ps)), m.events[ps[len(ps)-1]-1].Time, nil
}

// VersionAt implements Reader.
func (m *Memory) VersionAt(ctx context.Context, stream string, t time.Time) (int64, error) {
	if err := ValidateStream(stream); err != nil {
		return 0, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	ps := m.streams[stream]
	// Times never go backwards along a stream: the first event after t ends the search.
	n := sort.Search(len(ps), func(i int) bool { return m.events[ps[i]-1].Time.After(t) })
	return int64(n), nil
}

// WaitForAppend implements Reader.
func (m *Memory) WaitForAppend(ctx context.Context, after Position) error {
	for {
		m.mu.RLock()
		ch, head, closed := m.appended, Position(len(m.events)), m.closed
		m.mu.RUnlock()
		if closed {
			return ErrClosed
		}
		if head > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Checkpoint implements Checkpoints.
func (m *Memory) Checkpoint(ctx context.Context, name string) (Position, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	return m.checkpoints[name].Position, nil
}

// SaveCheckpoint implements Checkpoints.
func (m *Memory) SaveCheckpoint(ctx context.Context, name string, pos Position) error {
	if err := validateName("checkpoint", name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.checkpoints[name] = CheckpointInfo{Name: name, Position: pos, Updated: m.clock.Now().UTC()}
	return nil
}

// ListCheckpoints implements Checkpoints.
func (m *Memory) ListCheckpoints(ctx context.Context) ([]CheckpointInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	out := make([]CheckpointInfo, 0, len(m.checkpoints))
	for _, c := range m.checkpoints {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b CheckpointInfo) int { return compareStrings(a.Name, b.Name) })
	return out, nil
}

// SaveSnapshot implements Snapshots.
func (m *Memory) SaveSnapshot(ctx context.Context, s Snapshot) error {
	if err := ValidateSnapshot(s); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	s.Data = slices.Clone(s.Data)
	if s.Time.IsZero() {
		s.Time = m.clock.Now().UTC().Truncate(time.Microsecond)
	}
	list := m.snapshots[s.Stream]
	list = slices.DeleteFunc(list, func(o Snapshot) bool { return o.Version == s.Version })
	list = append(list, s)
	slices.SortFunc(list, func(a, b Snapshot) int { return int(a.Version - b.Version) })
	// Keep the latest KeepSnapshots of each type.
	kept, n := make([]Snapshot, 0, len(list)), 0
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Type == s.Type {
			if n++; n > KeepSnapshots {
				continue
			}
		}
		kept = append(kept, list[i])
	}
	slices.Reverse(kept)
	m.snapshots[s.Stream] = kept
	return nil
}

// LoadSnapshot implements Snapshots.
func (m *Memory) LoadSnapshot(ctx context.Context, stream, typ string, maxVersion int64) (Snapshot, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return Snapshot{}, ErrClosed
	}
	list := m.snapshots[stream]
	for i := len(list) - 1; i >= 0; i-- {
		if s := list[i]; s.Type == typ && (maxVersion <= 0 || s.Version <= maxVersion) {
			return s, nil
		}
	}
	return Snapshot{}, ErrNoSnapshot
}

// Rebalance implements Groups.
func (m *Memory) Rebalance(ctx context.Context, req LeaseRequest) ([]Lease, error) {
	if err := ValidateLeaseRequest(req); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	g := m.groups[req.Group]
	if g == nil {
		g = &memGroup{members: map[string]time.Time{}}
		for i := range req.Partitions {
			g.parts = append(g.parts, PartitionInfo{Partition: i})
		}
		m.groups[req.Group] = g
	}
	if len(g.parts) != req.Partitions {
		return nil, GroupMismatch(req.Group, len(g.parts), req.Partitions)
	}
	g.members[req.Member] = req.Now.Add(req.TTL)
	var members []MemberInfo
	for name, exp := range g.members {
		if !exp.After(req.Now) {
			delete(g.members, name)
			continue
		}
		members = append(members, MemberInfo{Member: name, Expires: exp})
	}
	parts, _, leases := PlanRebalance(req, g.parts, members)
	g.parts = parts
	return leases, nil
}

// CommitLease implements Groups.
func (m *Memory) CommitLease(ctx context.Context, group, member string, partition int, pos Position) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	g := m.groups[group]
	if g == nil || partition < 0 || partition >= len(g.parts) || g.parts[partition].Owner != member {
		return ErrLeaseLost
	}
	g.parts[partition].Checkpoint = pos
	return nil
}

// LeaveGroup implements Groups.
func (m *Memory) LeaveGroup(ctx context.Context, group, member string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	g := m.groups[group]
	if g == nil {
		return nil
	}
	delete(g.members, member)
	for i := range g.parts {
		if g.parts[i].Owner == member {
			g.parts[i].Owner, g.parts[i].Expires = "", time.Time{}
		}
	}
	return nil
}

// ListGroups implements Groups.
func (m *Memory) ListGroups(ctx context.Context) ([]GroupInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	var out []GroupInfo
	for name, g := range m.groups {
		out = append(out, GroupInfo{Group: name, Partitions: slices.Clone(g.parts)})
	}
	slices.SortFunc(out, func(a, b GroupInfo) int { return compareStrings(a.Group, b.Group) })
	return out, nil
}

// Stats implements Store.
func (m *Memory) Stats(ctx context.Context) (Stats, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return Stats{}, ErrClosed
	}
	s := Stats{Backend: "memory", Events: int64(len(m.events)), Streams: int64(len(m.streams)), Head: Position(len(m.events))}
	if n := len(m.events); n > 0 {
		s.LastAppend = m.events[n-1].Time
	}
	for _, l := range m.snapshots {
		s.Snapshots += int64(len(l))
	}
	return s, nil
}

// Close implements Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		close(m.appended)
	}
	return nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
