package eventstore

import (
	"context"
	"time"
)

// Store is an event store backend: the memory store of this package, or the SQLite and
// PostgreSQL store of package sqlstore. Every method is safe for concurrent use, and every
// backend passes the conformance suite in package eventstoretest.
type Store interface {
	Appender
	Reader
	Checkpoints
	Snapshots
	Groups
	// Stats describes the store.
	Stats(ctx context.Context) (Stats, error)
	// Close releases the store's resources (not a database handed to it). Calls after the
	// first return nil; other methods then return ErrClosed.
	Close() error
}

// Appender appends events.
type Appender interface {
	// Append appends events to stream, atomically: all of them or none, at consecutive
	// versions and consecutive global positions. It checks expected against the stream's
	// version first and returns a *ConflictError when it does not hold. An append whose
	// event IDs are already stored, by an earlier append of the same events to the same
	// stream, is a retry: it writes nothing and returns that append's result with
	// Duplicate set (if expected would have allowed the earlier append). Invalid input
	// (see [PrepareAppend]) is refused before anything is written.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events ...EventData) (AppendResult, error)
}

// Reader reads streams and the global order.
type Reader interface {
	// ReadStream reads a stream's events in version order (or reverse, with Backward). It
	// returns ErrStreamNotFound when the stream has no events at all; a read past the end
	// of an existing stream returns no events and no error.
	ReadStream(ctx context.Context, stream string, opts ReadStreamOptions) ([]RecordedEvent, error)
	// ReadAll reads the global order. Forward reads never miss an event: an event that
	// becomes visible later always has a position greater than every position read before
	// it (no gaps are ever visible, on every backend).
	ReadAll(ctx context.Context, opts ReadAllOptions) (AllSlice, error)
	// Head is the position of the last event (0: none).
	Head(ctx context.Context) (Position, error)
	// StreamVersion is the stream's version (0: no events) and the time of its last event.
	StreamVersion(ctx context.Context, stream string) (int64, time.Time, error)
	// VersionAt is the stream's version as of t: the version of its last event appended at
	// or before t (0 when none was).
	VersionAt(ctx context.Context, stream string, t time.Time) (int64, error)
	// WaitForAppend returns once the head is past after, or with ctx's error. It may return
	// early (spuriously); callers read and wait again. Backends wake waiters promptly for
	// appends of any process: LISTEN/NOTIFY on PostgreSQL, polling on SQLite.
	WaitForAppend(ctx context.Context, after Position) error
}

// ReadStreamOptions bound a stream read.
type ReadStreamOptions struct {
	// From is the first version read (inclusive): forward, 0 or 1 is the start; backward,
	// 0 is the end.
	From int64
	// Backward reads from From down to version 1.
	Backward bool
	// Limit is the most events returned; 0 returns every one.
	Limit int
}

// ReadAllOptions bound a read of the global order.
type ReadAllOptions struct {
	// From is the first position read (inclusive): forward, 0 or 1 is the start; backward,
	// 0 is the end.
	From Position
	// Backward reads from From down to position 1.
	Backward bool
	// Limit is the most events returned. Defaults to 1000; at most 10000.
	Limit int
	// Filter selects events; the zero Filter selects all.
	Filter Filter
}

// Limits of reads.
const (
	DefaultReadLimit = 1000
	MaxReadLimit     = 10000
)

// ReadLimit is opts.Limit with its default and maximum applied. For backends.
func (o ReadAllOptions) ReadLimit() int {
	switch {
	case o.Limit <= 0:
		return DefaultReadLimit
	case o.Limit > MaxReadLimit:
		return MaxReadLimit
	}
	return o.Limit
}

// ScanWindow is how many positions a filtered read examines at most, so that a read with
// a rare filter returns in bounded time (with few events, and Next advanced past the
// window). For backends.
func (o ReadAllOptions) ScanWindow() Position {
	return Position(max(16*o.ReadLimit(), 16384))
}

// Filter selects events of the global order. A filtered read still moves Next past the
// events it did not select, so a subscription does not read them again.
type Filter struct {
	// StreamPrefixes selects events whose stream starts with one of them ("account-").
	StreamPrefixes []string
	// Types selects events of one of these types.
	Types []string
}

// IsZero reports whether f selects everything.
func (f Filter) IsZero() bool { return len(f.StreamPrefixes) == 0 && len(f.Types) == 0 }

// Match reports whether f selects an event of stream and type typ.
func (f Filter) Match(stream, typ string) bool {
	if len(f.StreamPrefixes) > 0 {
		ok := false
		for _, p := range f.StreamPrefixes {
			if len(stream) >= len(p) && stream[:len(p)] == p {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(f.Types) > 0 {
		for _, t := range f.Types {
			if t == typ {
				return true
			}
		}
		return false
	}
	return true
}

// AllSlice is the result of a read of the global order.
type AllSlice struct {
	// Events read, in the order asked for.
	Events []RecordedEvent
	// Next is where a forward read continues (inclusive): every selected event before it
	// was in this slice or an earlier one. For a backward read it is the position below
	// the last one examined (0: the start was reached).
	Next Position
	// Head is the last position when the read was made; a forward read with Next > Head
	// has caught up.
	Head Position
}

// Checkpoints keep the positions subscriptions have handled, by subscription name.
type Checkpoints interface {
	// Checkpoint returns the position saved for name (0 when none is).
	Checkpoint(ctx context.Context, name string) (Position, error)
	// SaveCheckpoint saves pos for name.
	SaveCheckpoint(ctx context.Context, name string, pos Position) error
	// ListCheckpoints returns every saved checkpoint, by name.
	ListCheckpoints(ctx context.Context) ([]CheckpointInfo, error)
}

// CheckpointInfo is a saved checkpoint.
type CheckpointInfo struct {
	Name     string
	Position Position
	Updated  time.Time
}

// Snapshot is the state of a stream's aggregate at a version.
type Snapshot struct {
	Stream  string
	Version int64
	// Type names the state's type and revision; a loader ignores snapshots of another type,
	// so changing the state's shape only needs a new Type.
	Type string
	// Data is the state, JSON.
	Data []byte
	Time time.Time
}

// Snapshots keep aggregate snapshots.
type Snapshots interface {
	// SaveSnapshot stores s, replacing a snapshot of the same stream and version, and keeps
	// at most the KeepSnapshots (3) latest snapshots of each stream and type.
	SaveSnapshot(ctx context.Context, s Snapshot) error
	// LoadSnapshot returns the stream's latest snapshot of type typ at or below maxVersion
	// (any version when maxVersion ≤ 0), or ErrNoSnapshot.
	LoadSnapshot(ctx context.Context, stream, typ string, maxVersion int64) (Snapshot, error)
}

// Groups coordinate competing consumers: the members of a group share its partitions
// (events are assigned to a partition by a hash of their stream), each partition owned by
// one member at a time under a lease that expires unless renewed. A partition's checkpoint
// is committed only by its owner.
type Groups interface {
	// Rebalance renews member's membership and leases, and moves it towards its fair share
	// of the group's partitions: ceil(partitions / live members). It gives up partitions
	// beyond that share (highest first) and claims free or expired ones below it (lowest
	// first). It returns the partitions member owns afterwards, with their checkpoints.
	// The group is created with req.Partitions on first use; ErrGroupMismatch when it
	// exists with another count.
	Rebalance(ctx context.Context, req LeaseRequest) ([]Lease, error)
	// CommitLease saves pos as the checkpoint of a partition member owns, or returns
	// ErrLeaseLost when another member owns it now.
	CommitLease(ctx context.Context, group, member string, partition int, pos Position) error
	// LeaveGroup releases member's partitions and membership.
	LeaveGroup(ctx context.Context, group, member string) error
	// ListGroups describes every group's partitions.
	ListGroups(ctx context.Context) ([]GroupInfo, error)
}

// LeaseRequest is one member's heartbeat.
type LeaseRequest struct {
	Group, Member string
	Partitions    int
	// Now is the member's clock; leases and membership last until Now+TTL.
	Now time.Time
	TTL time.Duration
}

// Lease is a partition a member owns.
type Lease struct {
	Partition  int
	Checkpoint Position
}

// GroupInfo describes a group.
type GroupInfo struct {
	Group      string
	Partitions []PartitionInfo
}

// PartitionInfo describes one partition of a group.
type PartitionInfo struct {
	Partition  int
	Owner      string // "" when free
	Expires    time.Time
	Checkpoint Position
}

// Stats describes a store.
type Stats struct {
	Backend string
	Events  int64
	Streams int64
	Head    Position
	// LastAppend is the time of the last event (zero when there is none).
	LastAppend time.Time
	Snapshots  int64
}
