package discovery

import (
	"context"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// Instance is one reachable copy of a service.
//
// Instances that a [Provider] delivers are shared between watchers: treat URL
// and Meta as read-only.
type Instance struct {
	// ID is the instance's stable identity, unique within a set: the URL for
	// static and DNS discovery, the fleet's instance id under `shoal up`. The
	// proxy keys its per-instance state (breakers, affinity cookies) by it.
	// [Set] defaults it to URL.String().
	ID string
	// URL is where the instance serves: scheme://host:port, no path.
	URL *url.URL
	// Weight is the instance's relative capacity for weighted_round_robin, at
	// least 1. [Set] raises smaller values to 1.
	Weight int
	// Meta holds free-form labels, e.g. "version": "v2" or "pid". May be nil.
	Meta map[string]string
	// Draining marks an instance that is still registered but leaving: a
	// [Registrar] drained it, or it is a Kubernetes endpoint that is
	// terminating but still serving. The proxy sends it no new requests and
	// lets its in-flight requests finish, exactly as for an instance that
	// left the set.
	Draining bool
}

// Equal reports whether i and o have the same ID, URL, Weight, Meta and
// Draining. A nil and an empty Meta are equal. It does not allocate.
func (i Instance) Equal(o Instance) bool {
	return i.ID == o.ID && i.Weight == o.Weight && i.Draining == o.Draining && SameURL(i.URL, o.URL) &&
		maps.Equal(i.Meta, o.Meta)
}

// SameURL reports whether a and b are the same URL (u.String() of both are
// equal, nil being ""), without allocating for the scheme://host[:port]
// URLs that instances have.
func SameURL(a, b *url.URL) bool {
	switch {
	case a == b:
		return true
	case a == nil || b == nil:
		return urlString(a) == urlString(b)
	}
	if a.Opaque == "" && b.Opaque == "" && a.User == nil && b.User == nil && a.Path == "" && b.Path == "" &&
		a.RawPath == "" && b.RawPath == "" && !a.ForceQuery && !b.ForceQuery && a.RawQuery == "" && b.RawQuery == "" &&
		a.Fragment == "" && b.Fragment == "" && a.OmitHost == b.OmitHost {
		return a.Scheme == b.Scheme && a.Host == b.Host
	}
	return a.String() == b.String()
}

// urlString is u.String(), or "" for a nil u.
func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

// Event is what a [Provider] delivers: the complete current set of instances,
// or an error from the source. On an error the consumer keeps its last good
// set; Instances is nil then.
type Event struct {
	// Instances is the complete current set, sorted by ID. Nil or empty when
	// the service has no instances (or when Err is set).
	Instances []Instance
	// Err is a failure of the source, e.g. a DNS query that timed out. The
	// source keeps trying; a later event with Err == nil means it recovered.
	Err error
}

// Provider is a watchable source of instances.
type Provider interface {
	// Watch sends the full instance set now and after every change until ctx
	// is done, then closes the channel. It must be safe to call concurrently,
	// and each call gets its own channel.
	//
	// Delivery follows [Feed]: the first event is the current set (or an
	// error when the source cannot be read at all); an unchanged set is not
	// sent again, except right after an error, so that the consumer learns
	// the source has recovered; a slow consumer is not sent a backlog but the
	// latest state when it next reads (a set that was replaced before it was
	// read is skipped), so the source is never blocked by a consumer. After
	// ctx is done the channel is closed promptly, whether or not anyone reads
	// it, and an undelivered event is dropped.
	Watch(ctx context.Context) <-chan Event
}

// normalize returns a copy of in sorted by ID, so that sets compare in
// order. Instances are copied shallowly (URL and Meta are shared).
func normalize(in []Instance) []Instance {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	if !slices.IsSortedFunc(out, byID) {
		slices.SortStableFunc(out, byID)
	}
	return out
}

func byID(a, b Instance) int { return strings.Compare(a.ID, b.ID) }

// equalSets reports whether two sets normalised by [normalize] are equal.
func equalSets(a, b []Instance) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) > 0 && &a[0] == &b[0] {
		return true
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
