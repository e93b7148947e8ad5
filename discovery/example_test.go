package discovery_test

import (
	"context"
	"fmt"
	"net/url"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
)

// The fleet registers instances as they become ready and removes them when
// they stop; the proxy watches the set.
func ExampleSet() {
	fleet := discovery.NewSet()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := fleet.Watch(ctx)
	show := func() {
		ev := <-events
		fmt.Print(len(ev.Instances), " instances:")
		for _, i := range ev.Instances {
			fmt.Print(" ", i.ID, "=", i.URL)
		}
		fmt.Println()
	}
	show()

	fleet.Add(discovery.Instance{
		ID:   "api-1",
		URL:  &url.URL{Scheme: "http", Host: "127.0.0.1:9001"},
		Meta: map[string]string{"pid": "4242"},
	})
	show()
	fleet.Add(discovery.Instance{ID: "api-2", URL: &url.URL{Scheme: "http", Host: "127.0.0.1:9002"}})
	show()
	fleet.Remove("api-1")
	show()
	// Output:
	// 0 instances:
	// 1 instances: api-1=http://127.0.0.1:9001
	// 2 instances: api-1=http://127.0.0.1:9001 api-2=http://127.0.0.1:9002
	// 1 instances: api-2=http://127.0.0.1:9002
}

// Static reads the seed's static block; under `shoal up` the fleet's own
// instances are merged in.
func ExampleStatic() {
	static, err := discovery.Static(config.StaticDiscovery{Instances: []config.StaticInstance{
		{URL: "http://10.0.0.7:8080", Weight: 3},
		{URL: "https://api.example.com", Weight: 1},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fleet := discovery.NewSet(discovery.Instance{ID: "api-1", URL: &url.URL{Scheme: "http", Host: "127.0.0.1:9001"}})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := <-discovery.Merge(fleet, static).Watch(ctx)
	for _, i := range ev.Instances {
		fmt.Println(i.ID, i.URL, i.Weight)
	}

	_, err = discovery.Static(config.StaticDiscovery{Instances: []config.StaticInstance{{URL: "http://h:1/api", Weight: 1}}})
	fmt.Println(err)
	// Output:
	// api-1 http://127.0.0.1:9001 1
	// http://10.0.0.7:8080 http://10.0.0.7:8080 3
	// https://api.example.com:443 https://api.example.com:443 1
	// static discovery: scaling.service_discovery.static.instances[0].url: "http://h:1/api" has a path, query or fragment; give only scheme://host:port
}
