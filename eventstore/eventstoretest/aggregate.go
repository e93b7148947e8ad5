package eventstoretest

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/eventstore"
)

// The suite's aggregate: an account.
type (
	opened    struct{ Owner string }
	deposited struct{ Amount int64 }
	withdrawn struct{ Amount int64 }
	// unregistered is a Go type the suite's registry does not know.
	unregistered struct{ X int }
)

type account struct {
	Owner   string
	Balance int64
	Ops     int
}

func (a *account) Apply(e any) {
	switch e := e.(type) {
	case opened:
		a.Owner = e.Owner
	case deposited:
		a.Balance += e.Amount
	case withdrawn:
		a.Balance -= e.Amount
	}
	a.Ops++
}

var errInsufficient = errors.New("insufficient funds")

func registry() *eventstore.Registry {
	r := eventstore.NewRegistry()
	eventstore.MustRegister[opened](r, "Opened")
	eventstore.MustRegister[deposited](r, "Deposited")
	eventstore.MustRegister[withdrawn](r, "Withdrawn")
	return r
}

func withdraw(n int64) func(a *eventstore.Aggregate[account]) error {
	return func(a *eventstore.Aggregate[account]) error {
		if !a.Exists() {
			return eventstore.ErrStreamNotFound
		}
		if a.State.Balance < n {
			return errInsufficient
		}
		a.Raise(withdrawn{n})
		return nil
	}
}

func deposit(n int64) func(a *eventstore.Aggregate[account]) error {
	return func(a *eventstore.Aggregate[account]) error {
		if !a.Exists() {
			return eventstore.ErrStreamNotFound
		}
		a.Raise(deposited{n})
		return nil
	}
}

func testRepository(t *testing.T, h *harness) {
	s := h.store()
	ctx := h.ctx()
	repo := eventstore.NewRepository[account](s, registry(), eventstore.RepositoryOptions{Prefix: "account-"})
	a, err := repo.Create(ctx, "1", func(a *eventstore.Aggregate[account]) error {
		a.SetMetadata(eventstore.Metadata{CorrelationID: "c-1"})
		a.Raise(opened{"ada"}, deposited{100})
		return nil
	})
	if err != nil || a.Version != 2 || a.State.Balance != 100 || len(a.Pending()) != 0 {
		t.Fatalf("Create = %+v, %v", a, err)
	}
	if _, err := repo.Create(ctx, "1", func(a *eventstore.Aggregate[account]) error { a.Raise(opened{"eve"}); return nil }); !eventstore.IsConflict(err) {
		t.Fatalf("second Create of the same id: %v, want a conflict", err)
	}
	if _, err := repo.Update(ctx, "1", withdraw(30)); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Update(ctx, "1", withdraw(500)); !errors.Is(err, errInsufficient) {
		t.Fatalf("overdraft: %v", err)
	}
	got, err := repo.Load(ctx, "1")
	if err != nil || got.State != (account{Owner: "ada", Balance: 70, Ops: 3}) || got.Version != 3 || got.Stream != "account-1" || got.Updated.IsZero() {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	evs, _ := s.ReadStream(ctx, "account-1", eventstore.ReadStreamOptions{})
	if len(evs) != 3 || evs[0].Type != "Opened" || evs[0].Metadata.CorrelationID != "c-1" || evs[2].Type != "Withdrawn" {
		t.Fatalf("stored events: %+v", evs)
	}
	// A missing aggregate loads as new; a command on it decides so.
	if n, err := repo.Load(ctx, "nobody"); err != nil || n.Exists() || n.Version != 0 {
		t.Fatalf("Load(nobody) = %+v, %v", n, err)
	}
	if _, err := repo.Update(ctx, "nobody", deposit(1)); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("Update(nobody): %v", err)
	}
	// Two copies loaded at the same version: the second save conflicts and writes nothing.
	x, _ := repo.Load(ctx, "1")
	y, _ := repo.Load(ctx, "1")
	x.Raise(deposited{1})
	y.Raise(deposited{2})
	if _, err := repo.Save(ctx, x); err != nil {
		t.Fatal(err)
	}
	var ce *eventstore.ConflictError
	if _, err := repo.Save(ctx, y); !errors.As(err, &ce) || ce.Expected != eventstore.Exact(3) || ce.Actual != 4 {
		t.Fatalf("stale save: %v, want a conflict expecting 3 at 4", err)
	}
	// An event of an unregistered Go type: nothing of the save is appended.
	z, _ := repo.Load(ctx, "1")
	z.Raise(deposited{5}, unregistered{1})
	if _, err := repo.Save(ctx, z); !errors.Is(err, eventstore.ErrUnknownEventType) || !strings.Contains(err.Error(), "nothing was appended") {
		t.Fatalf("save with an unregistered event: %v", err)
	}
	if v, _, _ := s.StreamVersion(ctx, "account-1"); v != 4 {
		t.Fatalf("version %d after a refused save, want 4", v)
	}
}

// testRepositoryConflicts: concurrent commands on one aggregate, each retried on conflict
// by Update, none lost.
func testRepositoryConflicts(t *testing.T, h *harness) {
	ctx := h.ctx()
	reg := registry()
	repo := eventstore.NewRepository[account](h.store(), reg, eventstore.RepositoryOptions{Prefix: "acc-", MaxAttempts: 1000})
	if _, err := repo.Create(ctx, "x", func(a *eventstore.Aggregate[account]) error { a.Raise(opened{"bob"}); return nil }); err != nil {
		t.Fatal(err)
	}
	const workers, each = 6, 15
	var wg sync.WaitGroup
	for w := range workers {
		r := eventstore.NewRepository[account](h.store(), reg, eventstore.RepositoryOptions{Prefix: "acc-", MaxAttempts: 1000})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := r.Update(ctx, "x", deposit(int64(w*100+i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var want int64
	for w := range workers {
		for i := range each {
			want += int64(w*100 + i)
		}
	}
	a, err := repo.Load(ctx, "x")
	if err != nil || a.State.Balance != want || a.Version != 1+workers*each {
		t.Fatalf("after concurrent deposits: %+v, %v; want balance %d at version %d", a, err, want, 1+workers*each)
	}
	// A bound on attempts is reported with the conflict.
	tight := eventstore.NewRepository[account](h.store(), reg, eventstore.RepositoryOptions{Prefix: "acc-", MaxAttempts: 2})
	interfere := 0
	_, err = tight.Update(ctx, "x", func(a *eventstore.Aggregate[account]) error {
		interfere++
		if _, err := repo.Update(ctx, "x", deposit(1)); err != nil { // another writer wins every time
			return err
		}
		a.Raise(deposited{1})
		return nil
	})
	if !eventstore.IsConflict(err) || interfere != 2 || !strings.Contains(err.Error(), "2 attempts") {
		t.Fatalf("Update losing every conflict: %v after %d runs", err, interfere)
	}
}

func testRepositoryTemporal(t *testing.T, h *harness) {
	s := h.store()
	ctx := h.ctx()
	repo := eventstore.NewRepository[account](s, registry(), eventstore.RepositoryOptions{Prefix: "t-", SnapshotEvery: 5, Logger: quiet})
	t0 := h.clock.Now()
	if _, err := repo.Create(ctx, "1", func(a *eventstore.Aggregate[account]) error { a.Raise(opened{"ada"}); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 12; i++ {
		h.clock.Advance(time.Minute)
		if _, err := repo.Update(ctx, "1", deposit(int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Snapshots at 5 and 10.
	for _, v := range []int64{5, 10} {
		if sn, err := s.LoadSnapshot(ctx, "t-1", "account", v); err != nil || sn.Version != v {
			t.Fatalf("snapshot at %d: %+v, %v", v, sn, err)
		}
	}
	balanceAt := func(v int64) int64 { // 2+3+…+v
		var b int64
		for i := int64(2); i <= v; i++ {
			b += i
		}
		return b
	}
	for _, v := range []int64{1, 4, 5, 7, 10, 12} {
		a, err := repo.LoadAt(ctx, "1", v)
		if err != nil || a.Version != v || a.State.Balance != balanceAt(v) || a.State.Ops != int(v) {
			t.Fatalf("LoadAt(%d) = %+v, %v; want balance %d", v, a, err, balanceAt(v))
		}
	}
	if a, _ := repo.LoadAt(ctx, "1", 0); a.Exists() {
		t.Errorf("LoadAt(0) exists")
	}
	// As of a time: event v was appended at t0+(v-1) minutes.
	for _, c := range []struct {
		at   time.Duration
		want int64
	}{{-time.Second, 0}, {0, 1}, {90 * time.Second, 2}, {6 * time.Minute, 7}, {time.Hour, 12}} {
		a, err := repo.LoadAsOf(ctx, "1", t0.Add(c.at))
		if err != nil || a.Version != c.want || a.State.Balance != balanceAt(c.want) {
			t.Errorf("LoadAsOf(t0%+v) = version %d balance %d, %v; want version %d", c.at, a.Version, a.State.Balance, err, c.want)
		}
	}
	// A snapshot that does not decode is passed over: the events are the truth.
	if err := s.SaveSnapshot(ctx, eventstore.Snapshot{Stream: "t-1", Version: 12, Type: "account", Data: []byte(`{"Balance":"lots"}`)}); err != nil {
		t.Fatal(err)
	}
	if a, err := repo.Load(ctx, "1"); err != nil || a.State.Balance != balanceAt(12) {
		t.Fatalf("Load past a corrupt snapshot: %+v, %v", a, err)
	}
	// On demand.
	a, _ := repo.Load(ctx, "1")
	if err := repo.Snapshot(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.Raise(deposited{1})
	if err := repo.Snapshot(ctx, a); err == nil {
		t.Error("a snapshot with unsaved events was taken")
	}
}

func testDecodeErrors(t *testing.T, h *harness) {
	s := h.store()
	ctx := h.ctx()
	repo := eventstore.NewRepository[account](s, registry(), eventstore.RepositoryOptions{Prefix: "d-"})
	mustAppend(t, s, "d-1", eventstore.NoStream, ev("Opened", map[string]string{"Owner": "ada"}), ev("Frozen", nil))
	_, err := repo.Load(ctx, "1")
	var ute *eventstore.UnknownTypeError
	if !errors.As(err, &ute) || !errors.Is(err, eventstore.ErrUnknownEventType) || ute.Type != "Frozen" || ute.Position != 2 ||
		!strings.Contains(err.Error(), "no registered decoder") {
		t.Fatalf("an event type with no decoder: %v", err)
	}
	mustAppend(t, s, "d-2", eventstore.NoStream, ev("Opened", nil), ev("Deposited", map[string]string{"Amount": "ten"}))
	_, err = repo.Load(ctx, "2")
	var de *eventstore.DecodeError
	if !errors.As(err, &de) || !errors.Is(err, eventstore.ErrCorruptEvent) || de.Version != 2 || !strings.Contains(err.Error(), "does not decode") {
		t.Fatalf("corrupt event data: %v", err)
	}
	if _, err := repo.Update(ctx, "2", deposit(1)); !errors.Is(err, eventstore.ErrCorruptEvent) {
		t.Fatalf("Update of a corrupt stream: %v", err)
	}
	if v, _, _ := s.StreamVersion(ctx, "d-2"); v != 2 {
		t.Errorf("an update of a corrupt stream appended: version %d", v)
	}
	// Registering twice is refused.
	r := registry()
	if err := eventstore.Register[opened](r, "Other"); err == nil {
		t.Error("a Go type registered twice")
	}
	if err := eventstore.Register[struct{ Y int }](r, "Opened"); err == nil {
		t.Error("a name registered twice")
	}
	if err := eventstore.Register[*opened](r, "Ptr"); err == nil {
		t.Error("a pointer type registered")
	}
	if _, err := r.Encode(unregistered{}); !errors.Is(err, eventstore.ErrUnknownEventType) {
		t.Errorf("Encode of an unregistered type: %v", err)
	}
}
