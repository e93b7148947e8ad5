package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shoal-sh/shoal/eventstore"
)

// now is the store's clock in UTC, to the microsecond.
func (s *Store) now() time.Time { return s.opts.Clock.Now().UTC().Truncate(time.Microsecond) }

// timeArg is t as the dialect stores it.
func (s *Store) timeArg(t time.Time) any {
	if s.pg {
		return t
	}
	return micros(t)
}

// timeDest scans a stored time; get returns it.
func (s *Store) timeDest() (dest any, get func() time.Time) {
	if s.pg {
		var t time.Time
		return &t, func() time.Time { return t.UTC() }
	}
	var us int64
	return &us, func() time.Time { return fromMicros(us) }
}

// Checkpoint implements eventstore.Checkpoints.
func (s *Store) Checkpoint(ctx context.Context, name string) (eventstore.Position, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var p int64
	err := s.db.SQL().QueryRowContext(ctx, s.db.Rebind("SELECT position FROM shoal_event_checkpoints WHERE name = $1"), name).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.wrap("reading checkpoint "+name, err)
	}
	return eventstore.Position(p), nil
}

// SaveCheckpoint implements eventstore.Checkpoints.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, pos eventstore.Position) error {
	if err := eventstore.ValidateName("checkpoint", name); err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	col := "updated_us"
	if s.pg {
		col = "updated_at"
	}
	q := s.db.Rebind(fmt.Sprintf(`INSERT INTO shoal_event_checkpoints (name, position, %[1]s) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position, %[1]s = excluded.%[1]s`, col))
	_, err := s.db.SQL().ExecContext(ctx, q, name, int64(pos), s.timeArg(s.now()))
	return s.wrap("saving checkpoint "+name, err)
}

// ListCheckpoints implements eventstore.Checkpoints.
func (s *Store) ListCheckpoints(ctx context.Context) ([]eventstore.CheckpointInfo, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	col := "updated_us"
	if s.pg {
		col = "updated_at"
	}
	rows, err := s.db.SQL().QueryContext(ctx, "SELECT name, position, "+col+" FROM shoal_event_checkpoints ORDER BY name")
	if err != nil {
		return nil, s.wrap("listing checkpoints", err)
	}
	defer rows.Close()
	var out []eventstore.CheckpointInfo
	for rows.Next() {
		var c eventstore.CheckpointInfo
		var p int64
		d, get := s.timeDest()
		if err := rows.Scan(&c.Name, &p, d); err != nil {
			return nil, s.wrap("listing checkpoints", err)
		}
		c.Position, c.Updated = eventstore.Position(p), get()
		out = append(out, c)
	}
	return out, s.wrap("listing checkpoints", rows.Err())
}

// SaveSnapshot implements eventstore.Snapshots.
func (s *Store) SaveSnapshot(ctx context.Context, sn eventstore.Snapshot) error {
	if err := eventstore.ValidateSnapshot(sn); err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	if sn.Time.IsZero() {
		sn.Time = s.now()
	}
	col, data := "created_us", any(sn.Data)
	if s.pg {
		col, data = "created_at", string(sn.Data)
	}
	err := s.db.WithTx(ctx, nil, func(tx *sql.Tx) error {
		q := s.db.Rebind(fmt.Sprintf(`INSERT INTO shoal_event_snapshots (stream, version, type, data, %[1]s) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (stream, version) DO UPDATE SET type = excluded.type, data = excluded.data, %[1]s = excluded.%[1]s`, col))
		if _, err := tx.ExecContext(ctx, q, sn.Stream, sn.Version, sn.Type, data, s.timeArg(sn.Time)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM shoal_event_snapshots WHERE stream = $1 AND type = $2 AND version NOT IN
			(SELECT version FROM shoal_event_snapshots WHERE stream = $1 AND type = $2 ORDER BY version DESC LIMIT $3)`),
			sn.Stream, sn.Type, eventstore.KeepSnapshots)
		return err
	})
	return s.wrap("saving a snapshot of "+sn.Stream, err)
}

// LoadSnapshot implements eventstore.Snapshots.
func (s *Store) LoadSnapshot(ctx context.Context, stream, typ string, maxVersion int64) (eventstore.Snapshot, error) {
	if err := s.check(); err != nil {
		return eventstore.Snapshot{}, err
	}
	if maxVersion <= 0 {
		maxVersion = 1 << 62
	}
	var col string
	if s.pg {
		col = "data::text, created_at"
	} else {
		col = "data, created_us"
	}
	sn := eventstore.Snapshot{Stream: stream, Type: typ}
	d, get := s.timeDest()
	err := s.db.ReadSQL().QueryRowContext(ctx, s.db.Rebind("SELECT version, "+col+` FROM shoal_event_snapshots
		WHERE stream = $1 AND type = $2 AND version <= $3 ORDER BY version DESC LIMIT 1`), stream, typ, maxVersion).Scan(&sn.Version, &sn.Data, d)
	if errors.Is(err, sql.ErrNoRows) {
		return eventstore.Snapshot{}, eventstore.ErrNoSnapshot
	}
	if err != nil {
		return eventstore.Snapshot{}, s.wrap("loading a snapshot of "+stream, err)
	}
	sn.Time = get()
	return sn, nil
}

// Rebalance implements eventstore.Groups.
func (s *Store) Rebalance(ctx context.Context, req eventstore.LeaseRequest) ([]eventstore.Lease, error) {
	if err := eventstore.ValidateLeaseRequest(req); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	var leases []eventstore.Lease
	err := s.db.WithTx(ctx, nil, func(tx *sql.Tx) error {
		leases = nil
		if _, err := tx.ExecContext(ctx, s.db.Rebind("INSERT INTO shoal_event_groups (name, partitions) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"),
			req.Group, req.Partitions); err != nil {
			return err
		}
		lock := ""
		if s.pg {
			lock = " FOR UPDATE"
		}
		var n int
		if err := tx.QueryRowContext(ctx, s.db.Rebind("SELECT partitions FROM shoal_event_groups WHERE name = $1"+lock), req.Group).Scan(&n); err != nil {
			return err
		}
		if n != req.Partitions {
			return eventstore.GroupMismatch(req.Group, n, req.Partitions)
		}
		for i := range n {
			if _, err := tx.ExecContext(ctx, s.db.Rebind("INSERT INTO shoal_event_group_partitions (name, partition) VALUES ($1, $2) ON CONFLICT DO NOTHING"),
				req.Group, i); err != nil {
				return err
			}
		}
		until := req.Now.Add(req.TTL).UnixNano()
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO shoal_event_group_members (name, member, expires_ns) VALUES ($1, $2, $3)
			ON CONFLICT (name, member) DO UPDATE SET expires_ns = excluded.expires_ns`), req.Group, req.Member, until); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind("DELETE FROM shoal_event_group_members WHERE name = $1 AND expires_ns <= $2"),
			req.Group, req.Now.UnixNano()); err != nil {
			return err
		}
		members, err := s.members(ctx, tx, req.Group)
		if err != nil {
			return err
		}
		parts, err := s.partitions(ctx, tx, req.Group)
		if err != nil {
			return err
		}
		out, changed, ls := eventstore.PlanRebalance(req, parts, members)
		for _, i := range changed {
			p := out[i]
			var exp int64
			if !p.Expires.IsZero() {
				exp = p.Expires.UnixNano()
			}
			if _, err := tx.ExecContext(ctx, s.db.Rebind("UPDATE shoal_event_group_partitions SET owner = $1, expires_ns = $2 WHERE name = $3 AND partition = $4"),
				p.Owner, exp, req.Group, p.Partition); err != nil {
				return err
			}
		}
		leases = ls
		return nil
	})
	if err != nil {
		if errors.Is(err, eventstore.ErrGroupMismatch) {
			return nil, err
		}
		return nil, s.wrap("rebalancing group "+req.Group, err)
	}
	return leases, nil
}

func (s *Store) members(ctx context.Context, tx *sql.Tx, group string) ([]eventstore.MemberInfo, error) {
	rows, err := tx.QueryContext(ctx, s.db.Rebind("SELECT member, expires_ns FROM shoal_event_group_members WHERE name = $1"), group)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []eventstore.MemberInfo
	for rows.Next() {
		var m eventstore.MemberInfo
		var ns int64
		if err := rows.Scan(&m.Member, &ns); err != nil {
			return nil, err
		}
		m.Expires = time.Unix(0, ns)
		out = append(out, m)
	}
	return out, rows.Err()
}

type rowQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) partitions(ctx context.Context, q rowQuerier, group string) ([]eventstore.PartitionInfo, error) {
	rows, err := q.QueryContext(ctx, s.db.Rebind("SELECT partition, owner, expires_ns, checkpoint FROM shoal_event_group_partitions WHERE name = $1 ORDER BY partition"), group)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []eventstore.PartitionInfo
	for rows.Next() {
		var p eventstore.PartitionInfo
		var ns, cp int64
		if err := rows.Scan(&p.Partition, &p.Owner, &ns, &cp); err != nil {
			return nil, err
		}
		if ns != 0 {
			p.Expires = time.Unix(0, ns)
		}
		p.Checkpoint = eventstore.Position(cp)
		out = append(out, p)
	}
	return out, rows.Err()
}

// CommitLease implements eventstore.Groups.
func (s *Store) CommitLease(ctx context.Context, group, member string, partition int, pos eventstore.Position) error {
	if err := s.check(); err != nil {
		return err
	}
	res, err := s.db.SQL().ExecContext(ctx, s.db.Rebind("UPDATE shoal_event_group_partitions SET checkpoint = $1 WHERE name = $2 AND partition = $3 AND owner = $4"),
		int64(pos), group, partition, member)
	if err != nil {
		return s.wrap("committing a checkpoint of group "+group, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return eventstore.ErrLeaseLost
	}
	return nil
}

// LeaveGroup implements eventstore.Groups.
func (s *Store) LeaveGroup(ctx context.Context, group, member string) error {
	if err := s.check(); err != nil {
		return err
	}
	err := s.db.WithTx(ctx, nil, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Rebind("DELETE FROM shoal_event_group_members WHERE name = $1 AND member = $2"), group, member); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.db.Rebind("UPDATE shoal_event_group_partitions SET owner = '', expires_ns = 0 WHERE name = $1 AND owner = $2"), group, member)
		return err
	})
	return s.wrap("leaving group "+group, err)
}

// ListGroups implements eventstore.Groups.
func (s *Store) ListGroups(ctx context.Context) ([]eventstore.GroupInfo, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.db.SQL().QueryContext(ctx, "SELECT name FROM shoal_event_groups ORDER BY name")
	if err != nil {
		return nil, s.wrap("listing groups", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, s.wrap("listing groups", err)
		}
		names = append(names, n)
	}
	rows.Close()
	var out []eventstore.GroupInfo
	for _, n := range names {
		parts, err := s.partitions(ctx, s.db.SQL(), n)
		if err != nil {
			return nil, s.wrap("listing groups", err)
		}
		out = append(out, eventstore.GroupInfo{Group: n, Partitions: parts})
	}
	return out, nil
}

// Stats implements eventstore.Store.
func (s *Store) Stats(ctx context.Context) (eventstore.Stats, error) {
	if err := s.check(); err != nil {
		return eventstore.Stats{}, err
	}
	st := eventstore.Stats{Backend: "sqlite"}
	if s.pg {
		st.Backend = "postgres"
	}
	var head int64
	d, get := s.timeDest()
	col := "created_us"
	if s.pg {
		col = "created_at"
	}
	err := s.db.ReadSQL().QueryRowContext(ctx, `SELECT h.position, `+col+`,
		(SELECT COUNT(DISTINCT stream) FROM shoal_events), (SELECT COUNT(*) FROM shoal_event_snapshots)
		FROM shoal_events_head h WHERE h.id = 1`).Scan(&head, nullable{d}, &st.Streams, &st.Snapshots)
	if err != nil {
		return st, s.wrap("reading stats", err)
	}
	st.Head, st.Events = eventstore.Position(head), head
	if head > 0 {
		st.LastAppend = get()
	}
	return st, nil
}

// nullable scans NULL as "leave dest alone".
type nullable struct{ dest any }

func (n nullable) Scan(v any) error {
	if v == nil {
		return nil
	}
	switch d := n.dest.(type) {
	case *time.Time:
		t, ok := v.(time.Time)
		if !ok {
			return fmt.Errorf("a time column holds %T", v)
		}
		*d = t
	case *int64:
		i, ok := v.(int64)
		if !ok {
			return fmt.Errorf("a time column holds %T", v)
		}
		*d = i
	}
	return nil
}
