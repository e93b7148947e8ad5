package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"
)

// Applier is what an aggregate's state type does: fold one event (a value of a registered
// event type) into itself. Apply must not fail or have effects: it only changes the state,
// for stored events as for new ones; deciding belongs in the command, before Raise.
type Applier interface {
	Apply(event any)
}

// Aggregate is a stream's state S, folded from its events, with the events raised since it
// was loaded. Commands work on it and raise events; [Repository.Save] appends them with
// optimistic concurrency.
type Aggregate[S any] struct {
	// ID is the aggregate's id; its stream is the repository's prefix followed by ID.
	ID     string
	Stream string
	// State is S with every stored event up to Version applied, then the raised ones.
	State S
	// Version is the stream version State was loaded at (0: the stream had no events).
	Version int64
	// Updated is the time of the last stored event applied (zero for a new aggregate).
	Updated time.Time

	apply   func(*S, any)
	pending []any
	meta    Metadata
}

// Exists reports whether the aggregate has stored or raised events.
func (a *Aggregate[S]) Exists() bool { return a.Version > 0 || len(a.pending) > 0 }

// Raise records new events: each is applied to State at once and appended by Save.
func (a *Aggregate[S]) Raise(events ...any) {
	for _, e := range events {
		a.apply(&a.State, e)
		a.pending = append(a.pending, e)
	}
}

// Pending returns the events raised since the aggregate was loaded or saved.
func (a *Aggregate[S]) Pending() []any { return a.pending }

// SetMetadata sets the metadata the next Save stamps on every raised event (causation and
// correlation ids of the command, headers).
func (a *Aggregate[S]) SetMetadata(m Metadata) { a.meta = m }

// RepositoryOptions configure a Repository.
type RepositoryOptions struct {
	// Prefix is put before an aggregate's ID to make its stream name, e.g. "account-".
	Prefix string
	// SnapshotEvery saves a snapshot of the state whenever a save takes the stream past a
	// multiple of it; 0 saves none except on demand ([Repository.Snapshot]).
	SnapshotEvery int
	// SnapshotType names the state's snapshots; a change to the shape of S needs a new one
	// (older snapshots are then ignored). Defaults to the Go type's name.
	SnapshotType string
	// MaxAttempts bounds Update's runs of a command that keeps losing conflicts. Defaults
	// to 10.
	MaxAttempts int
	// Logger receives snapshots that failed (a failed snapshot fails no save). Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Repository loads and saves aggregates of state S (whose pointer is an [Applier]) in a
// store, encoding their events with a registry.
type Repository[S any] struct {
	store Store
	reg   *Registry
	opts  RepositoryOptions
	apply func(*S, any)
}

// NewRepository returns a repository of aggregates with state S:
//
//	accounts := eventstore.NewRepository[Account](store, reg, eventstore.RepositoryOptions{Prefix: "account-"})
func NewRepository[S any, PS interface {
	*S
	Applier
}](store Store, reg *Registry, opts RepositoryOptions) *Repository[S] {
	if opts.SnapshotType == "" {
		opts.SnapshotType = reflect.TypeFor[S]().Name()
		if opts.SnapshotType == "" || ValidateType(opts.SnapshotType) != nil {
			opts.SnapshotType = "state"
		}
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Repository[S]{store: store, reg: reg, opts: opts, apply: func(s *S, e any) { PS(s).Apply(e) }}
}

// Stream returns the stream name of the aggregate id.
func (r *Repository[S]) Stream(id string) string { return r.opts.Prefix + id }

// New returns an aggregate that has no events yet.
func (r *Repository[S]) New(id string) *Aggregate[S] {
	return &Aggregate[S]{ID: id, Stream: r.Stream(id), apply: r.apply}
}

// Load returns the aggregate's current state: from its latest snapshot, if any, and the
// events after it. A stream with no events gives an aggregate with Version 0 (Exists is
// false), not an error.
func (r *Repository[S]) Load(ctx context.Context, id string) (*Aggregate[S], error) {
	return r.load(ctx, id, 0)
}

// LoadAt returns the aggregate's state as of version (a temporal read): its events up to
// and including version (from a snapshot at or below it when there is one).
func (r *Repository[S]) LoadAt(ctx context.Context, id string, version int64) (*Aggregate[S], error) {
	if version < 1 {
		return r.New(id), nil
	}
	return r.load(ctx, id, version)
}

// LoadAsOf returns the aggregate's state as of t: with the events appended at or before t.
func (r *Repository[S]) LoadAsOf(ctx context.Context, id string, t time.Time) (*Aggregate[S], error) {
	v, err := r.store.VersionAt(ctx, r.Stream(id), t)
	if err != nil {
		return nil, err
	}
	return r.LoadAt(ctx, id, v)
}

func (r *Repository[S]) load(ctx context.Context, id string, upTo int64) (*Aggregate[S], error) {
	a := r.New(id)
	if err := ValidateStream(a.Stream); err != nil {
		return nil, err
	}
	snap, err := r.store.LoadSnapshot(ctx, a.Stream, r.opts.SnapshotType, upTo)
	switch {
	case err == nil:
		if err := json.Unmarshal(snap.Data, &a.State); err != nil {
			// A snapshot that does not decode is passed over: the events are the truth.
			r.opts.Logger.Warn("snapshot does not decode; loading from the events", "stream", a.Stream, "version", snap.Version,
				"error", &DecodeError{Type: snap.Type, Stream: a.Stream, Version: snap.Version, Err: err})
			var zero S
			a.State = zero
		} else {
			a.Version, a.Updated = snap.Version, snap.Time
		}
	case !errors.Is(err, ErrNoSnapshot):
		return nil, fmt.Errorf("loading %s: %w", a.Stream, err)
	}
	limit := 0
	if upTo > 0 {
		limit = int(upTo - a.Version)
		if limit <= 0 {
			return a, nil
		}
	}
	events, err := r.store.ReadStream(ctx, a.Stream, ReadStreamOptions{From: a.Version + 1, Limit: limit})
	if errors.Is(err, ErrStreamNotFound) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", a.Stream, err)
	}
	for _, e := range events {
		v, err := r.reg.Decode(e)
		if err != nil {
			return nil, fmt.Errorf("loading %s: %w", a.Stream, err)
		}
		r.apply(&a.State, v)
		a.Version, a.Updated = e.Version, e.Time
	}
	return a, nil
}

// Save appends the aggregate's raised events, expecting the stream to be still at the
// version it was loaded at: a *ConflictError (errors.Is ErrConflict) when another writer
// got there first. Every raised event must be of a registered type; otherwise nothing is
// appended. After a save the aggregate is at the new version with nothing pending, and a
// snapshot is saved when SnapshotEvery says so.
func (r *Repository[S]) Save(ctx context.Context, a *Aggregate[S]) (AppendResult, error) {
	if len(a.pending) == 0 {
		return AppendResult{Stream: a.Stream, FirstVersion: a.Version, LastVersion: a.Version}, nil
	}
	events := make([]EventData, len(a.pending))
	for i, v := range a.pending {
		d, err := r.reg.Encode(v)
		if err != nil {
			return AppendResult{}, fmt.Errorf("saving %s: %w; nothing was appended", a.Stream, err)
		}
		d.Metadata = a.meta
		events[i] = d
	}
	res, err := r.store.Append(ctx, a.Stream, Exact(a.Version), events...)
	if err != nil {
		return res, err
	}
	before := a.Version
	a.Version, a.pending = res.LastVersion, nil
	a.Updated = time.Time{}
	if n := int64(r.opts.SnapshotEvery); n > 0 && res.LastVersion/n > before/n {
		if err := r.Snapshot(ctx, a); err != nil {
			r.opts.Logger.Warn("saving a snapshot failed", "stream", a.Stream, "version", a.Version, "error", err)
		}
	}
	return res, nil
}

// Snapshot saves the aggregate's state at its version as a snapshot now. The aggregate
// must have nothing pending.
func (r *Repository[S]) Snapshot(ctx context.Context, a *Aggregate[S]) error {
	if len(a.pending) > 0 {
		return fmt.Errorf("snapshot of %s: it has %d unsaved events; save it first", a.Stream, len(a.pending))
	}
	if a.Version < 1 {
		return fmt.Errorf("snapshot of %s: it has no events", a.Stream)
	}
	data, err := json.Marshal(a.State)
	if err != nil {
		return fmt.Errorf("snapshot of %s: encoding the state: %w", a.Stream, err)
	}
	return r.store.SaveSnapshot(ctx, Snapshot{Stream: a.Stream, Version: a.Version, Type: r.opts.SnapshotType, Data: data})
}

// Update runs a command on the aggregate id and saves what it raised: load, run cmd, save;
// when the save loses a conflict, load again and run cmd again on the fresh state, up to
// MaxAttempts times. cmd decides on the aggregate's state and raises events, or returns an
// error (nothing is saved, and Update returns it). cmd may run more than once, so it must
// have no effects besides raising events.
func (r *Repository[S]) Update(ctx context.Context, id string, cmd func(a *Aggregate[S]) error) (*Aggregate[S], error) {
	var err error
	for attempt := 1; attempt <= r.opts.MaxAttempts; attempt++ {
		var a *Aggregate[S]
		a, err = r.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		if err = cmd(a); err != nil {
			return a, err
		}
		if _, err = r.Save(ctx, a); err == nil {
			return a, nil
		}
		if !IsConflict(err) {
			return a, err
		}
	}
	return nil, fmt.Errorf("updating %s: %d attempts lost conflicts with concurrent writers: %w", r.Stream(id), r.opts.MaxAttempts, err)
}

// Create runs cmd on a new aggregate id and saves it, expecting its stream not to exist:
// a *ConflictError when it does.
func (r *Repository[S]) Create(ctx context.Context, id string, cmd func(a *Aggregate[S]) error) (*Aggregate[S], error) {
	a := r.New(id)
	if err := cmd(a); err != nil {
		return a, err
	}
	if _, err := r.Save(ctx, a); err != nil {
		return a, err
	}
	return a, nil
}
