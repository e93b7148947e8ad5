package dns_test

import (
	"context"
	"log"
	"time"

	"github.com/shoal-sh/shoal/discovery/dns"
)

// Watch the A and AAAA records of a headless Kubernetes Service; every
// instance serves on port 8080.
func Example() {
	p, err := dns.New(dns.Options{
		Name:            "api.default.svc.cluster.local",
		Port:            8080,
		RefreshInterval: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for ev := range p.Watch(ctx) {
		if ev.Err != nil {
			log.Printf("discovery: %v (keeping the last set)", ev.Err)
			continue
		}
		for _, in := range ev.Instances {
			log.Println(in.ID, in.Weight)
		}
	}
}

// SRV records give each instance its port and weight.
func ExampleNew_srv() {
	p, err := dns.New(dns.Options{
		Name:       "_http._tcp.api.service.consul",
		RecordType: dns.RecordSRV,
		Resolver:   "127.0.0.1:8600", // Consul's DNS interface
	})
	if err != nil {
		log.Fatal(err)
	}
	instances, err := p.Resolve(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	log.Println(len(instances), "instances")
}
