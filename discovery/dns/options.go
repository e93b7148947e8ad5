package dns

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/shoal-sh/shoal/config"
)

// Record types.
const (
	// RecordA resolves A and AAAA records; instances serve on Options.Port.
	RecordA = "A"
	// RecordSRV resolves SRV records; they give each instance's port and weight.
	RecordSRV = "SRV"
)

// Options configure a [Provider]. [FromConfig] fills them from the seed.
type Options struct {
	// Name to resolve: the instances' host name for "A", the service's SRV
	// name (e.g. "_http._tcp.api.example.com") for "SRV". Required. See the
	// package documentation for how a name without a trailing dot is
	// completed.
	Name string
	// RecordType is "A" (A and AAAA records) or "SRV". Defaults to "A".
	RecordType string
	// Port every instance serves on, 1-65535. Required for "A"; ignored for
	// "SRV", whose records carry the ports.
	Port int
	// RefreshInterval is the pause between the end of one resolution and the
	// start of the next. Defaults to 30s.
	RefreshInterval time.Duration
	// MinRefresh bounds how soon a name is resolved again when its records'
	// TTL runs out before RefreshInterval. Defaults to 1s.
	MinRefresh time.Duration
	// Timeout bounds one resolution, every query and retry included. Defaults
	// to 5s.
	Timeout time.Duration
	// Resolver is the DNS server (host:port, e.g. "10.0.0.2:53") to query.
	// Defaults to the name servers of /etc/resolv.conf.
	Resolver string
	// Scheme of the instances' URLs, "http" or "https". Defaults to "http".
	Scheme string
}

// FromConfig returns the options the seed's service_discovery block sets:
// its dns block, with Name defaulting to service_name and Port taken from
// service_discovery.port.
func FromConfig(sd config.ServiceDiscovery) Options {
	name := sd.DNS.Name
	if name == "" {
		name = sd.ServiceName
	}
	return Options{
		Name:            name,
		RecordType:      sd.DNS.RecordType,
		Port:            sd.Port,
		RefreshInterval: sd.DNS.RefreshInterval.D(),
		Resolver:        sd.DNS.Resolver,
	}
}

// setDefaults fills in the zero fields that have a default.
func (o *Options) setDefaults() {
	if o.RecordType == "" {
		o.RecordType = RecordA
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = 30 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MinRefresh == 0 {
		o.MinRefresh = time.Second
	}
	if o.Scheme == "" {
		o.Scheme = "http"
	}
}

// Validate reports every problem of o, as [New] would after filling in the
// defaults (zero values that have a default are not problems).
func (o Options) Validate() error {
	o.setDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Name == "" {
		bad("Name: is required, e.g. \"api.example.com\" or \"_http._tcp.api.example.com\"")
	} else if _, ok := miekg.IsDomainName(o.Name); !ok {
		bad("Name: %q is not a domain name", o.Name)
	}
	switch o.RecordType {
	case RecordA:
		if o.Port < 1 || o.Port > 65535 {
			bad("Port: record type \"A\" needs the instances' port (service_discovery.port), 1-65535, got %d", o.Port)
		}
	case RecordSRV:
	default:
		bad("RecordType: %q is not \"A\" or \"SRV\"", o.RecordType)
	}
	if o.RefreshInterval < 0 {
		bad("RefreshInterval: must be longer than zero, got %s", o.RefreshInterval)
	}
	if o.Timeout < 0 {
		bad("Timeout: must be longer than zero, got %s", o.Timeout)
	}
	if o.Resolver != "" {
		host, port, err := net.SplitHostPort(o.Resolver)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			bad("Resolver: %q is not host:port, e.g. \"127.0.0.1:53\"", o.Resolver)
		}
	}
	if o.Scheme != "http" && o.Scheme != "https" {
		bad("Scheme: %q is not \"http\" or \"https\"", o.Scheme)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dns discovery options: %w", err)
	}
	return nil
}
