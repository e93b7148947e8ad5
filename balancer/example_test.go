package balancer_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/shoal-sh/shoal/balancer"
)

// A proxy builds the picker its config names, keeps it updated with the
// eligible backends and brackets every request with Acquire and Release.
func Example() {
	picker, err := balancer.New("least_connections")
	if err != nil {
		panic(err)
	}
	a := balancer.NewBackend("i-a", 1)
	b := balancer.NewBackend("i-b", 1)
	picker.Update([]*balancer.Backend{a, b})

	a.Acquire() // a request to a is still in flight

	key := balancer.HashKey("203.0.113.7")
	chosen := picker.Pick(key, nil)
	chosen.Acquire()
	// ... proxy the request ...
	chosen.Release(12 * time.Millisecond)
	fmt.Println(chosen.ID)

	// The request failed and is retried elsewhere.
	retry := picker.Pick(key, []*balancer.Backend{chosen})
	fmt.Println(retry.ID)

	// Nothing else left: nil, and the caller decides.
	fmt.Println(picker.Pick(key, []*balancer.Backend{a, b}) == nil)
	// Output:
	// i-b
	// i-a
	// true
}

func ExampleNew() {
	_, err := balancer.New("random")
	fmt.Println(err)
	// Output:
	// balancer: unknown load-balancing algorithm "random": use one of round_robin, least_connections, ip_hash, weighted_round_robin, p2c_ewma
}

func ExampleWeightedRoundRobin() {
	var w balancer.WeightedRoundRobin
	w.Update([]*balancer.Backend{
		balancer.NewBackend("a", 5),
		balancer.NewBackend("b", 1),
		balancer.NewBackend("c", 1),
	})
	var order []string
	for range 7 {
		order = append(order, w.Pick(0, nil).ID)
	}
	fmt.Println(strings.Join(order, " "))
	// Output:
	// a a b a c a a
}

func ExampleRoundRobin() {
	var r balancer.RoundRobin
	r.Update([]*balancer.Backend{
		balancer.NewBackend("a", 1),
		balancer.NewBackend("b", 1),
		balancer.NewBackend("c", 1),
	})
	for range 4 {
		fmt.Print(r.Pick(0, nil).ID, " ")
	}
	fmt.Println()
	// Output:
	// a b c a
}

func ExampleIPHash() {
	var h balancer.IPHash
	backends := []*balancer.Backend{
		balancer.NewBackend("i-a", 1),
		balancer.NewBackend("i-b", 1),
		balancer.NewBackend("i-c", 1),
	}
	h.Update(backends)
	key := balancer.HashKey("198.51.100.23") // the client IP, without the port
	first := h.Pick(key, nil)
	fmt.Println(first == h.Pick(key, nil)) // stable while the set is unchanged
	// Output:
	// true
}

// The proxy pins a client to the backend that served it, and falls back to
// the picker when that backend has left the eligible set.
func ExampleAffinity() {
	aff, err := balancer.NewAffinity([]byte("0123456789abcdef0123456789abcdef"), "shoal_lb")
	if err != nil {
		panic(err)
	}
	eligible := map[string]*balancer.Backend{"i-a": balancer.NewBackend("i-a", 1)}
	var picker balancer.RoundRobin
	picker.Update([]*balancer.Backend{eligible["i-a"]})

	route := func(cookie string) *balancer.Backend {
		if id, ok := aff.Verify(cookie); ok {
			if b := eligible[id]; b != nil {
				return b
			}
		}
		return picker.Pick(0, nil)
	}

	value := aff.Sign("i-a") // set as cookie aff.Name() on the first response
	fmt.Println(route(value).ID)
	fmt.Println(route(aff.Sign("i-gone")).ID) // pinned backend left
	_, ok := aff.Verify(strings.Replace(value, "a", "b", 1))
	fmt.Println(ok) // tampered
	// Output:
	// i-a
	// i-a
	// false
}
