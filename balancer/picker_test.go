package balancer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// makeBackends returns n backends of weight 1 with distinct, address-like IDs.
func makeBackends(n int) []*Backend {
	bs := make([]*Backend, n)
	for i := range bs {
		bs[i] = NewBackend(fmt.Sprintf("10.0.%d.%d:8080", i/256, i%256), 1)
	}
	return bs
}

// pickers returns a fresh, empty picker for every algorithm, by name.
func pickers(t *testing.T) map[string]Picker {
	t.Helper()
	out := make(map[string]Picker, len(Algorithms))
	for _, name := range Algorithms {
		p, err := New(name)
		if err != nil {
			t.Fatalf("New(%q): %v", name, err)
		}
		out[name] = p
	}
	return out
}

// TestPicker is the conformance suite every algorithm runs: the contract of
// the Picker interface, independent of how each one distributes load.
func TestPicker(t *testing.T) {
	t.Parallel()
	for _, name := range Algorithms {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testPicker(t, func() Picker {
				p, err := New(name)
				if err != nil {
					t.Fatalf("New(%q): %v", name, err)
				}
				return p
			})
		})
	}
}

func testPicker(t *testing.T, newPicker func() Picker) {
	// contains reports whether b is one of set.
	contains := func(set []*Backend, b *Backend) bool { return slices.Contains(set, b) }

	t.Run("EmptyReturnsNil", func(t *testing.T) {
		t.Parallel()
		p := newPicker()
		if b := p.Pick(1, nil); b != nil {
			t.Errorf("before Update: Pick = %q, want nil", b.ID)
		}
		for _, set := range [][]*Backend{nil, {}, {nil, nil}} {
			p.Update(makeBackends(3))
			p.Update(set)
			if b := p.Pick(1, nil); b != nil {
				t.Errorf("after Update(%v): Pick = %q, want nil", set, b.ID)
			}
		}
	})

	t.Run("SingleBackend", func(t *testing.T) {
		t.Parallel()
		p := newPicker()
		bs := makeBackends(1)
		p.Update(bs)
		for k := range uint64(20) {
			if b := p.Pick(k, nil); b != bs[0] {
				t.Fatalf("Pick(%d) = %v, want the only backend", k, b)
			}
		}
		if b := p.Pick(1, bs); b != nil {
			t.Errorf("Pick excluding the only backend = %q, want nil", b.ID)
		}
	})

	t.Run("PicksFromSet", func(t *testing.T) {
		t.Parallel()
		for _, n := range []int{2, 5, 100} {
			p := newPicker()
			bs := makeBackends(n)
			p.Update(bs)
			seen := map[*Backend]bool{}
			for range 50 * n {
				b := p.Pick(rand.Uint64(), nil)
				if !contains(bs, b) {
					t.Fatalf("n=%d: Pick returned %v, not in the set", n, b)
				}
				seen[b] = true
			}
			// Every algorithm spreads load: each backend gets some of
			// 50n picks with random keys.
			if len(seen) != n {
				t.Errorf("n=%d: %d distinct backends picked in %d picks, want all", n, len(seen), 50*n)
			}
		}
	})

	t.Run("SkipsNilEntries", func(t *testing.T) {
		t.Parallel()
		p := newPicker()
		bs := makeBackends(2)
		p.Update([]*Backend{nil, bs[0], nil, bs[1], nil})
		for k := range uint64(50) {
			if b := p.Pick(k, nil); b == nil {
				t.Fatalf("Pick(%d) = nil with two backends", k)
			}
		}
	})

	t.Run("UpdateCopiesSlice", func(t *testing.T) {
		t.Parallel()
		p := newPicker()
		bs := makeBackends(3)
		in := slices.Clone(bs)
		p.Update(in)
		other := NewBackend("intruder", 1)
		for i := range in {
			in[i] = other
		}
		for k := range uint64(100) {
			if b := p.Pick(k, nil); b == other {
				t.Fatal("Pick returned a backend written into the caller's slice after Update")
			}
		}
	})

	t.Run("UpdateReplacesSet", func(t *testing.T) {
		t.Parallel()
		p := newPicker()
		old, cur := makeBackends(4), makeBackends(3)
		p.Update(old)
		p.Update(cur)
		for k := range uint64(200) {
			if b := p.Pick(k, nil); !contains(cur, b) {
				t.Fatalf("Pick(%d) = %v, want a backend of the current set", k, b)
			}
		}
	})

	t.Run("Exclude", func(t *testing.T) {
		t.Parallel()
		for _, n := range []int{3, 10, 100} {
			p := newPicker()
			bs := makeBackends(n)
			p.Update(bs)

			// All but one excluded: always the remaining one.
			last := bs[n-1]
			for k := range uint64(100) {
				if b := p.Pick(k, bs[:n-1]); b != last {
					t.Fatalf("n=%d: Pick(%d) with all but one excluded = %v, want %q", n, k, b, last.ID)
				}
			}
			// All excluded: nil.
			if b := p.Pick(7, bs); b != nil {
				t.Errorf("n=%d: Pick with all excluded = %q, want nil", n, b.ID)
			}
			// A random third excluded: never returned, and the rest
			// still all reachable.
			exclude := slices.Clone(bs)
			rand.Shuffle(len(exclude), func(i, j int) { exclude[i], exclude[j] = exclude[j], exclude[i] })
			exclude = exclude[:n/3]
			seen := map[*Backend]bool{}
			for range 50 * n {
				b := p.Pick(rand.Uint64(), exclude)
				if b == nil || slices.Contains(exclude, b) {
					t.Fatalf("n=%d: Pick = %v, want a backend not excluded", n, b)
				}
				seen[b] = true
			}
			if want := n - len(exclude); len(seen) != want {
				t.Errorf("n=%d: %d distinct backends picked, want all %d allowed", n, len(seen), want)
			}
		}
	})

	t.Run("ExcludeForeignBackend", func(t *testing.T) {
		t.Parallel()
		p := newPicker()
		bs := makeBackends(3)
		p.Update(bs)
		// A backend not in the set (or a different pointer with the
		// same ID) excludes nothing.
		foreign := []*Backend{NewBackend(bs[0].ID, 1), NewBackend("gone", 1)}
		for k := range uint64(30) {
			if b := p.Pick(k, foreign); !contains(bs, b) {
				t.Fatalf("Pick(%d) = %v, want a backend of the set", k, b)
			}
		}
	})

	t.Run("ConcurrentUpdateAndPick", func(t *testing.T) {
		t.Parallel()
		p := newPicker()
		all := makeBackends(40)
		sets := [][]*Backend{all[:3], all[3:40], nil, all[10:11], all[20:35]}
		p.Update(sets[0])

		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 2000 {
					var exclude []*Backend
					if i%3 == 0 {
						exclude = all[g : g+2]
					}
					b := p.Pick(uint64(i*7919+g), exclude)
					if b == nil {
						continue // the empty set, or everything excluded
					}
					if !contains(all, b) || slices.Contains(exclude, b) {
						t.Errorf("Pick = %q: not in any set, or excluded", b.ID)
						return
					}
					b.Acquire()
					b.Release(time.Duration(i%5) * time.Millisecond)
				}
			})
		}
		wg.Go(func() {
			for i := range 200 {
				p.Update(sets[i%len(sets)])
			}
		})
		wg.Wait()
		for _, b := range all {
			if got := b.InFlight(); got != 0 {
				t.Errorf("%s: InFlight = %d after balanced Acquire/Release, want 0", b.ID, got)
			}
		}
	})
}

// TestPicker_PickAllocs checks that Pick never allocates. It is not parallel:
// testing.AllocsPerRun counts every allocation in the process.
func TestPicker_PickAllocs(t *testing.T) {
	for name, p := range pickers(t) {
		t.Run(name, func(t *testing.T) {
			for _, n := range []int{3, 100} {
				bs := makeBackends(n)
				p.Update(bs)
				key := uint64(0)
				if a := testing.AllocsPerRun(200, func() { key++; p.Pick(HashKey("192.0.2.1")+key, nil) }); a != 0 {
					t.Errorf("n=%d: Pick allocates %v times, want 0", n, a)
				}
				exclude := bs[:2]
				if a := testing.AllocsPerRun(200, func() { key++; p.Pick(key, exclude) }); a != 0 {
					t.Errorf("n=%d: Pick with exclude allocates %v times, want 0", n, a)
				}
			}
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	t.Run("KnownNames", func(t *testing.T) {
		t.Parallel()
		want := map[string]string{
			"round_robin":          "*balancer.RoundRobin",
			"least_connections":    "*balancer.LeastConnections",
			"ip_hash":              "*balancer.IPHash",
			"weighted_round_robin": "*balancer.WeightedRoundRobin",
			"p2c_ewma":             "*balancer.P2CEWMA",
		}
		if len(Algorithms) != len(want) {
			t.Errorf("Algorithms = %v, want %d names", Algorithms, len(want))
		}
		for name, typ := range want {
			p, err := New(name)
			if err != nil {
				t.Errorf("New(%q): %v", name, err)
				continue
			}
			if got := fmt.Sprintf("%T", p); got != typ {
				t.Errorf("New(%q) = %s, want %s", name, got, typ)
			}
		}
	})
	t.Run("UnknownName", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"", "random", "Round_Robin", "round-robin"} {
			p, err := New(name)
			if p != nil || !errors.Is(err, ErrUnknownAlgorithm) {
				t.Errorf("New(%q) = %v, %v; want nil, ErrUnknownAlgorithm", name, p, err)
				continue
			}
			for _, valid := range Algorithms {
				if !strings.Contains(err.Error(), valid) {
					t.Errorf("New(%q) error %q does not list %q", name, err, valid)
				}
			}
		}
	})
}
