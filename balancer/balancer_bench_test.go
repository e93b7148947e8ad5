// Measured with
//
//	go test -run x -bench . -benchtime 200ms ./balancer/
//
// on a 2-core AMD EPYC VM (linux/amd64, Go 1.26) shared with other engineers'
// builds and tests running at the same time (load average about 2), so treat
// the numbers as rough. BenchmarkPick uses b.RunParallel with GOMAXPROCS=2:
// ns/op is wall time divided by the picks both cores made, i.e. throughput,
// not the latency of one pick (about twice that).
//
//	BenchmarkPick                      n=3        n=100      n=1000     allocs
//	round_robin                        7.0 ns     8.1 ns     8.3 ns     0
//	least_connections                 11.6 ns    19.1 ns    17.9 ns     0  (n > 32 samples two)
//	ip_hash                            2.2 ns     2.4 ns     2.1 ns     0
//	weighted_round_robin               8.7 ns     9.3 ns     9.1 ns     0
//	p2c_ewma                          29.1 ns    30.8 ns    37.4 ns     0
//
//	BenchmarkPickExclude (n=100, 2 excluded): round_robin 9.4 ns,
//	least_connections 21.4 ns, ip_hash 3.0 ns, weighted_round_robin 12.9 ns,
//	p2c_ewma 16.4 ns; 0 allocs.
//
//	BenchmarkUpdate n=100 / n=1000: round_robin, least_connections, p2c_ewma
//	about 0.9 µs / 7 µs (2 allocs); ip_hash 2.4 ms / 6.4 ms (7 allocs, the
//	Maglev table); weighted_round_robin 51 µs / 3.6 ms (5 allocs).
//
//	BenchmarkBackend_AcquireRelease (both cores on one backend) 56 ns, 0 allocs.
//	BenchmarkHashKey IPv4 7.2 ns, IPv6 (28 bytes) 17.2 ns, 0 allocs.
//	BenchmarkAffinity Sign 534 ns (8 allocs), Verify 552 ns (8 allocs).
//
// The single-thread costs behind p2c_ewma, measured apart on the same machine:
// a monotonic clock read (time.Since) is 27 ns here, math.Exp 9 ns and
// rand.IntN 8 ns, which is why a p2c_ewma pick reads no clock, draws one
// random number for both samples and avoids math.Exp for fresh samples.

package balancer

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkPick measures one Pick per op, from every core at once
// (b.RunParallel), on sets of 3, 100 and 1000 backends whose in-flight counts
// and latency averages vary as in a live proxy. Keys vary per pick, as client
// addresses do.
func BenchmarkPick(b *testing.B) {
	for _, name := range Algorithms {
		b.Run(name, func(b *testing.B) {
			for _, n := range []int{3, 100, 1000} {
				b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
					p, err := New(name)
					if err != nil {
						b.Fatal(err)
					}
					bs := makeBackends(n)
					for _, bk := range bs {
						bk.Weight = 1 + rand.IntN(5)
						for range rand.IntN(4) {
							bk.Acquire()
						}
						bk.Release(time.Duration(1+rand.IntN(20)) * time.Millisecond)
					}
					p.Update(bs)
					keys := clientKeys(1024)
					b.ReportAllocs()
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						i := rand.IntN(len(keys))
						for pb.Next() {
							if p.Pick(keys[i&1023], nil) == nil {
								b.Error("Pick returned nil")
								return
							}
							i++
						}
					})
				})
			}
		})
	}
}

// BenchmarkPickExclude measures a retry: a Pick whose first choice may be
// one of the two excluded backends (of 100).
func BenchmarkPickExclude(b *testing.B) {
	for _, name := range Algorithms {
		b.Run(name, func(b *testing.B) {
			p, _ := New(name)
			bs := makeBackends(100)
			p.Update(bs)
			exclude := bs[:2]
			keys := clientKeys(1024)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					p.Pick(keys[i&1023], exclude)
					i++
				}
			})
		})
	}
}

// BenchmarkUpdate measures rebuilding a picker's snapshot for 100 and 1000
// backends (what a membership or health change costs).
func BenchmarkUpdate(b *testing.B) {
	for _, name := range Algorithms {
		for _, n := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/n=%d", name, n), func(b *testing.B) {
				p, _ := New(name)
				bs := makeBackends(n)
				for i, bk := range bs {
					bk.Weight = 1 + i%7
				}
				b.ReportAllocs()
				for b.Loop() {
					p.Update(bs)
				}
			})
		}
	}
}

// BenchmarkBackend_AcquireRelease measures the per-request bookkeeping the
// proxy does around every request, from every core on one backend (the
// worst case for contention).
func BenchmarkBackend_AcquireRelease(b *testing.B) {
	bk := NewBackend("x", 1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bk.Acquire()
			bk.Release(time.Millisecond)
		}
	})
}

// BenchmarkHashKey measures hashing an IPv4 and an IPv6 client address.
func BenchmarkHashKey(b *testing.B) {
	for _, s := range []string{"203.0.113.195", "2001:db8:85a3::8a2e:370:7334"} {
		b.Run(fmt.Sprintf("len=%d", len(s)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				HashKey(s)
			}
		})
	}
}

// BenchmarkAffinity measures signing and verifying a cookie value.
func BenchmarkAffinity(b *testing.B) {
	a := newTestAffinity(b)
	v := a.Sign("i-0123456789abcdef")
	b.Run("Sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.Sign("i-0123456789abcdef")
		}
	})
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.Verify(v)
		}
	})
}
