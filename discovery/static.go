package discovery

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/shoal-sh/shoal/config"
)

// maxStaticWeight is the largest weight of a static instance, as the
// configuration allows.
const maxStaticWeight = 1000

// Static returns a [Set] holding the instances of the seed's
// scaling.service_discovery.static block. Each URL must be http:// or
// https:// with a host and nothing after the port but an optional "/"; it is
// normalised to scheme://host:port (lowercase, the scheme's default port
// filled in) and that string is the instance's ID. A weight of 0 means 1;
// otherwise it must be 1-1000. Two entries with the same normalised URL are an
// error. The error names every bad entry by its path in the configuration.
//
// Under `shoal up` the fleet adds its own instances to the returned Set (or
// merges them in with [Merge]).
func Static(cfg config.StaticDiscovery) (*Set, error) {
	var (
		errs      []error
		instances = make([]Instance, 0, len(cfg.Instances))
		seen      = make(map[string]int, len(cfg.Instances))
	)
	for n, in := range cfg.Instances {
		path := fmt.Sprintf("scaling.service_discovery.static.instances[%d]", n)
		u, err := parseInstanceURL(in.URL)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.url: %w", path, err))
		}
		if in.Weight < 0 || in.Weight > maxStaticWeight {
			errs = append(errs, fmt.Errorf("%s.weight: must be between 1 and %d, got %d", path, maxStaticWeight, in.Weight))
		}
		if u == nil {
			continue
		}
		id := u.String()
		if first, dup := seen[id]; dup {
			errs = append(errs, fmt.Errorf("%s.url: %s is already instances[%d]; list each instance once", path, id, first))
			continue
		}
		seen[id] = n
		instances = append(instances, Instance{ID: id, URL: u, Weight: max(in.Weight, 1)})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("static discovery: %w", err)
	}
	return NewSet(instances...), nil
}

// parseInstanceURL parses and normalises the URL of a static instance.
func parseInstanceURL(raw string) (*url.URL, error) {
	const example = "e.g. http://127.0.0.1:9001"
	if strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("is required, %s", example)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL, %s", config.RedactURL(raw), example)
	}
	scheme := strings.ToLower(u.Scheme)
	port := map[string]string{"http": "80", "https": "443"}[scheme]
	switch {
	case port == "" || u.Opaque != "":
		return nil, fmt.Errorf("%q is not an http:// or https:// URL, %s", config.RedactURL(raw), example)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%q has no host, %s", config.RedactURL(raw), example)
	case u.User != nil:
		return nil, fmt.Errorf("%q has user information; instances are reached without credentials in the URL", config.RedactURL(raw))
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("%q has a path, query or fragment; give only scheme://host:port", raw)
	}
	if p := u.Port(); p != "" {
		port = p
	}
	if err := checkPort(port); err != nil {
		return nil, fmt.Errorf("%q: %w", raw, err)
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(strings.ToLower(u.Hostname()), port)}, nil
}

// checkPort reports whether p is a decimal port 1-65535.
func checkPort(p string) error {
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' || n > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return nil
}
