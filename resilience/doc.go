// Package resilience holds the failure-handling policies shoal's reverse
// proxy (and any service) puts around calls to an upstream:
//
//   - [Breaker], a circuit breaker per upstream instance, configured by the
//     seed's circuit_breaker block ([BreakerConfig]);
//   - [Retry], exponential backoff with full jitter and a deadline-aware
//     [Retry.Sleep];
//   - [Budget], a retry budget that caps retries at a fraction of recent
//     requests so that retries cannot amplify an outage.
//
// All time-based logic reads an injectable [Clock], so tests never sleep.
//
// A proxy request combines them like this (see the package example):
//
//	budget.Deposit()
//	for attempt := 0; attempt < retry.MaxAttempts(); attempt++ {
//		if attempt > 0 {
//			if !budget.Withdraw() { break }                                  // retry budget spent
//			if retry.Sleep(ctx, retry.Backoff(attempt-1)) != nil { break }   // deadline or cancel
//		}
//		up := pick()                                                         // skips upstreams whose Allow fails
//		ticket, err := up.breaker.Allow()
//		...
//		up.breaker.Record(ticket, ok)
//	}
//
// There is no separate timeout helper: context.WithTimeout(ctx, perTry)
// already yields the earlier of the per-try and the overall deadline, and
// Retry.Sleep refuses a backoff that would end after the overall deadline.
//
// # Own circuit breaker rather than gobreaker or failsafe-go
//
// The issue asked for a well-kept library unless a benchmark showed a reason
// not to, with an injectable clock. Both candidates were read (go doc and
// source) and benchmarked. One operation = get permission + record a success,
// uncontended and with b.RunParallel, on the 2-core development machine
// shared with other work (go1.26, linux/amd64, -benchtime 200ms -count 5,
// medians; time.Now alone costs ~51 ns on this VM):
//
//	                                     uncontended      parallel        allocs
//	sony/gobreaker/v2 v2.4.0 TwoStep     165 ns/op        167 ns/op       1 (48 B, the done closure)
//	sony/gobreaker/v2 v2.4.0 Execute     133 ns/op        -               0
//	failsafe-go v0.9.8 TryAcquirePermit  33 ns/op         35 ns/op        0
//	  + RecordSuccess
//	resilience.Breaker Allow + Record    3.5 ns/op        3.2 ns/op       0
//
// (The own breaker measured 3–6 ns in both modes over several runs as the
// other work on the machine came and went; bench_test.go has its numbers.)
//
// The reasons, in order of weight:
//
//  1. Neither lets a user inject a clock. gobreaker calls time.Now directly;
//     failsafe-go has a clock field but it is unexported (only its own tests
//     set it). Breaker tests against either would have to sleep through the
//     recovery timeout, which the issue rules out.
//  2. gobreaker misses the 50 ns target: a mutex plus two time.Now calls per
//     call, and its two-step API (the one a proxy needs, since the request
//     outlives the check) allocates a closure per call.
//  3. failsafe-go meets the target but takes a mutex on every call, counts an
//     outcome in whatever state the breaker is in when it arrives (a slow call
//     started while closed can fail a half-open trial: there is no
//     generation), and its circuitbreaker package needs a module not in
//     go.mod (github.com/bits-and-blooms/bitset).
//
// The own Breaker keeps state, both counters and a generation in one atomic
// word: in the closed state Allow and a successful Record are a single
// atomic load (no clock read, no write, so parallel callers do not contend),
// the Ticket is the generation (no allocation, stale outcomes ignored), and
// only state changes take a mutex. The comparison benchmark lived in a
// scratch module outside the repository, so that the project's go.mod does
// not gain failsafe-go's extra dependency; rerun it the same way (a module
// with a replace directive pointing at this repository) to update the table.
//
// Retry does not use cenkalti/backoff either; [Retry] explains why.
package resilience
