package resilience

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func setupBudget(t *testing.T, ratio float64, minPerSec int, ttl time.Duration) (*Budget, *manualClock) {
	t.Helper()
	clock := newManualClock()
	return NewBudget(ratio, minPerSec, ttl, clock), clock
}

// withdrawAll withdraws until the budget refuses and returns how many it allowed.
func withdrawAll(b *Budget) int {
	n := 0
	for b.Withdraw() {
		n++
	}
	return n
}

func TestBudget_Withdraw(t *testing.T) {
	t.Parallel()

	// The seed-independent Finagle defaults: 20% of requests, plus 10 retries
	// a second over a 10 second window (a reserve of 100).
	const (
		ratio     = 0.2
		minPerSec = 10
		ttl       = 10 * time.Second
		reserve   = minPerSec * 10
	)

	t.Run("FullOutageCapsRetriesExactly", func(t *testing.T) {
		t.Parallel()
		for _, n := range []int{0, 1, 4, 5, 999, 1000, 12345} {
			b, _ := setupBudget(t, ratio, minPerSec, ttl)
			for range n {
				b.Deposit()
			}
			bound := n/5 + reserve // ratio·N + minPerSec·ttl_seconds, in whole retries
			if got := b.Available(); got != bound {
				t.Errorf("N=%d: Available() = %d, want %d", n, got, bound)
			}
			if got := withdrawAll(b); got != bound {
				t.Errorf("N=%d: %d retries allowed, want exactly ratio·N + minPerSec·ttl = %d", n, got, bound)
			}
		}
	})

	t.Run("OutageWithRetryingClientsStaysUnderBound", func(t *testing.T) {
		t.Parallel()
		b, clock := setupBudget(t, ratio, minPerSec, ttl)
		// 8000 requests over 8 s (inside one window), every one failing and
		// wanting up to 3 retries.
		const n = 8000
		retries := 0
		for range n {
			b.Deposit()
			for range 3 {
				if !b.Withdraw() {
					break
				}
				retries++
			}
			clock.Advance(time.Millisecond)
		}
		if bound := int(ratio*n) + reserve; retries > bound {
			t.Fatalf("%d retries for %d requests, want at most ratio·N + minPerSec·ttl = %d", retries, n, bound)
		} else if retries < bound-1 {
			t.Fatalf("%d retries for %d requests: the budget withheld retries it had (bound %d)", retries, n, bound)
		}
	})

	t.Run("LongOutageIsARate", func(t *testing.T) {
		t.Parallel()
		b, clock := setupBudget(t, ratio, minPerSec, ttl)
		// 100 requests a second for 100 s, each wanting unlimited retries.
		// Each of the ten aligned 10 s windows allows at most
		// ratio·1000 + reserve = 300 retries.
		const rps, seconds = 100, 100
		retries := 0
		for range rps * seconds {
			b.Deposit()
			for b.Withdraw() {
				retries++
			}
			clock.Advance(time.Second / rps)
		}
		windows := seconds / int(ttl/time.Second)
		bound := int(ratio*rps*seconds) + windows*reserve
		if retries > bound || retries < bound*9/10 {
			t.Fatalf("%d retries, want at most %d and not far below", retries, bound)
		}
	})

	t.Run("ConcurrentUseNeverOverdraws", func(t *testing.T) {
		t.Parallel()
		b, _ := setupBudget(t, ratio, minPerSec, ttl)
		var deposits, retries atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 2000 {
					b.Deposit()
					deposits.Add(1)
					for range 2 {
						if b.Withdraw() {
							retries.Add(1)
						}
					}
				}
			})
		}
		wg.Wait()
		if bound := deposits.Load()/5 + reserve; retries.Load() > bound {
			t.Fatalf("%d retries for %d requests, want at most %d", retries.Load(), deposits.Load(), bound)
		}
	})

	t.Run("TokensExpireAfterTTL", func(t *testing.T) {
		t.Parallel()
		b, clock := setupBudget(t, 0.5, 0, ttl)
		for range 100 {
			b.Deposit()
		}
		clock.Advance(ttl * 8 / 10) // still inside the window
		if got := b.Available(); got != 50 {
			t.Fatalf("Available() after 0.8·ttl = %d, want 50", got)
		}
		clock.Advance(ttl * 2 / 10)
		if b.Withdraw() {
			t.Fatal("Withdraw() succeeded a full ttl after the only deposits")
		}
	})

	t.Run("WithdrawalsExpireToo", func(t *testing.T) {
		t.Parallel()
		b, clock := setupBudget(t, 0, minPerSec, ttl)
		if got := withdrawAll(b); got != reserve {
			t.Fatalf("reserve allowed %d retries, want %d", got, reserve)
		}
		clock.Advance(ttl / 2)
		if b.Withdraw() {
			t.Fatal("reserve refilled within the window")
		}
		clock.Advance(ttl / 2)
		if got := withdrawAll(b); got != reserve {
			t.Fatalf("after ttl the reserve allowed %d retries, want %d", got, reserve)
		}
	})

	t.Run("ZeroBudgetRefusesEverything", func(t *testing.T) {
		t.Parallel()
		b, _ := setupBudget(t, 0, 0, ttl)
		b.Deposit()
		if b.Withdraw() {
			t.Fatal("Withdraw() succeeded with ratio 0 and no reserve")
		}
	})

	t.Run("ClockGoingBackwards", func(t *testing.T) {
		t.Parallel()
		b, clock := setupBudget(t, 1, 0, ttl)
		clock.Advance(-time.Hour)
		b.Deposit()
		if !b.Withdraw() || b.Withdraw() {
			t.Fatal("a clock before the budget's creation must count as its first slot")
		}
	})
}

func TestBudget_add(t *testing.T) {
	t.Parallel()
	b, _ := setupBudget(t, 1, 0, 10*time.Second)
	b.add(25, 7) // slot 5 now belongs to index 25
	b.add(15, 3) // a goroutine that read the clock a whole ttl ago
	if got := b.balance(25); got != 10 {
		t.Fatalf("balance(25) = %d, want 10: a stale add lands in the newer slot", got)
	}
	b.add(25+5*budgetSlots, 1) // far newer: the slot is reset
	if got := b.balance(25 + 5*budgetSlots); got != 1 {
		t.Fatalf("balance = %d, want 1 after the slot was reused", got)
	}
	b.add(26, slotValueMax) // saturates instead of spilling into the tag
	b.add(26, slotValueMax)
	if got := slotValue(b.slots[6].Load()); got != slotValueMax {
		t.Fatalf("slot value = %d, want saturated %d", got, int64(slotValueMax))
	}
}

func TestNewBudget(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"NegativeRatio":     func() { NewBudget(-0.1, 0, time.Second, nil) },
		"RatioTooLarge":     func() { NewBudget(MaxBudgetRatio+1, 0, time.Second, nil) },
		"NaNRatio":          func() { NewBudget(nanRatio(), 0, time.Second, nil) },
		"NegativeMinPerSec": func() { NewBudget(0.2, -1, time.Second, nil) },
		"ZeroTTL":           func() { NewBudget(0.2, 10, 0, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Fatal("NewBudget did not panic")
				}
			}()
			f()
		})
	}

	t.Run("RatioPrecision", func(t *testing.T) {
		t.Parallel()
		if b := NewBudget(0.29, 0, time.Second, nil); b.deposit != 290 {
			t.Fatalf("deposit for ratio 0.29 = %d, want 290", b.deposit)
		}
	})
}

func nanRatio() float64 {
	zero := 0.0
	return zero / zero
}
