package resilience

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Budget caps retries at a fraction of recent requests, so that retries
// cannot multiply the load on a failing service (Finagle's RetryBudget, gRPC's
// retry throttling). Every original request deposits ratio of a retry; every
// retry withdraws a whole one, and only if the balance allows it. Deposits
// and withdrawals expire after ttl, and a reserve of minPerSec·ttl retries is
// always available so that a service with little traffic can still retry.
//
// The guarantee: within any ttl window, with N deposits, at most
// ratio·N + minPerSec·ttl_seconds withdrawals succeed (ratio is used with a
// precision of 1/1000, rounded down).
//
// Budget is lock-free: Deposit is one CAS on the current time slot, Withdraw
// one CAS plus a read of ten slots. It is safe for concurrent use.
type Budget struct {
	slots   [budgetSlots]atomic.Uint64
	deposit int64 // tokens one Deposit adds
	reserve int64 // tokens always available on top of the window's balance
	width   int64 // nanoseconds one slot covers: ttl / budgetSlots
	clock   Clock
	epoch   time.Time
}

const (
	// budgetSlots is how many time slots the ttl window is divided into;
	// tokens expire between (budgetSlots-1)/budgetSlots·ttl and ttl after
	// they were deposited.
	budgetSlots = 10
	// withdrawTokens is the price of one retry; a Deposit adds
	// ratio·withdrawTokens, rounded down.
	withdrawTokens = 1000
	// A slot packs the slot's time index (its low 24 bits) above a 40-bit
	// balance stored with a bias, so that resetting a stale slot and adding
	// to it is a single CAS.
	slotValueBits = 40
	slotValueBias = 1 << (slotValueBits - 1)
	slotValueMask = 1<<slotValueBits - 1
	slotIndexMask = 1<<(64-slotValueBits) - 1
	slotValueMax  = slotValueBias - 1
)

// MaxBudgetRatio is the largest ratio NewBudget accepts: ten retries per
// request is already far beyond any sane budget.
const MaxBudgetRatio = 10

// NewBudget returns a budget that lets ratio retries through per original
// request (0.2: one retry per five requests), plus minPerSec retries per
// second whatever the traffic, counted over a sliding window of ttl (Finagle
// defaults: 0.2, 10, 10s). clock nil means the system clock.
//
// It panics if ratio is not in [0, MaxBudgetRatio], minPerSec is negative or
// ttl is shorter than 10ns: these are programming errors, like a
// non-positive interval given to time.NewTicker.
func NewBudget(ratio float64, minPerSec int, ttl time.Duration, clock Clock) *Budget {
	if !(ratio >= 0 && ratio <= MaxBudgetRatio) { // also catches NaN
		panic(fmt.Sprintf("resilience: NewBudget: ratio must be between 0 and %d, got %v", MaxBudgetRatio, ratio))
	}
	if minPerSec < 0 {
		panic(fmt.Sprintf("resilience: NewBudget: minPerSec must not be negative, got %d", minPerSec))
	}
	if ttl < budgetSlots {
		panic(fmt.Sprintf("resilience: NewBudget: ttl must be at least %dns, got %s", budgetSlots, ttl))
	}
	clock = clockOrSystem(clock)
	b := &Budget{
		// The tiny epsilon keeps 0.29·1000 = 289.99999999999997 at 290.
		deposit: int64(math.Floor(ratio*withdrawTokens + 1e-9)),
		reserve: int64(math.Floor(float64(minPerSec) * ttl.Seconds() * withdrawTokens)),
		width:   int64(ttl / budgetSlots),
		clock:   clock,
		epoch:   clock.Now(),
	}
	// An all-zero word would read as tag 0 holding -slotValueBias tokens;
	// start every slot empty instead.
	for i := range b.slots {
		b.slots[i].Store(slotIndexMask<<slotValueBits | slotValueBias)
	}
	return b
}

// Deposit records one original request (not a retry). Call it for every
// request, successful or not.
func (b *Budget) Deposit() {
	if b.deposit > 0 {
		b.add(b.index(), b.deposit)
	}
}

// Withdraw asks for one retry and reports whether it may be made. When it
// returns false, do not retry: return the last error to the caller.
func (b *Budget) Withdraw() bool {
	idx := b.index()
	// Take first and check afterwards, so concurrent withdrawals can never
	// overdraw: each sees the others' withdrawals in the balance.
	b.add(idx, -withdrawTokens)
	if b.balance(idx) < 0 {
		b.add(idx, withdrawTokens)
		return false
	}
	return true
}

// Available returns how many retries Withdraw would allow now, for metrics
// and the status page.
func (b *Budget) Available() int {
	return int(max(b.balance(b.index()), 0) / withdrawTokens)
}

// index returns the number of the time slot the clock is in now.
func (b *Budget) index() int64 {
	return max(int64(b.clock.Now().Sub(b.epoch)), 0) / b.width
}

// balance returns the tokens left in the window that ends with slot idx.
func (b *Budget) balance(idx int64) int64 {
	total := b.reserve
	for i := idx; i > idx-budgetSlots && i >= 0; i-- {
		w := b.slots[i%budgetSlots].Load()
		if w>>slotValueBits == uint64(i)&slotIndexMask {
			total += slotValue(w)
		}
	}
	return total
}

// add adds v tokens to slot idx, first clearing the slot if it still holds
// an older slot's tokens. If the slot already belongs to a newer index (this
// goroutine read the clock a whole ttl ago), v goes to that newer slot.
func (b *Budget) add(idx int64, v int64) {
	s := &b.slots[idx%budgetSlots]
	tag := uint64(idx) & slotIndexMask
	for {
		w := s.Load()
		cur := int64(0)
		if held := w >> slotValueBits; held == tag || isNewer(held, tag) {
			tag, cur = held, slotValue(w)
		}
		n := min(max(cur+v, -slotValueMax), slotValueMax)
		if s.CompareAndSwap(w, tag<<slotValueBits|uint64(n+slotValueBias)) {
			return
		}
	}
}

// isNewer reports whether slot tag a is a few windows after tag b (tags are
// slot indexes modulo 2^24). Anything further apart is a stale slot.
func isNewer(a, b uint64) bool {
	d := int32(uint32(a-b)<<8) >> 8 // sign-extend the 24-bit difference
	return d > 0 && d <= 4*budgetSlots
}

func slotValue(w uint64) int64 { return int64(w&slotValueMask) - slotValueBias }
