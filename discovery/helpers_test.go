package discovery_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/discovery"
)

// inst returns an instance at 127.0.0.1:port with the URL as its ID.
func inst(port int) discovery.Instance {
	u := &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port)}
	return discovery.Instance{ID: u.String(), URL: u, Weight: 1}
}

// ids returns the IDs of a set, in order.
func ids(set []discovery.Instance) []string {
	out := make([]string, len(set))
	for n, i := range set {
		out[n] = i.ID
	}
	return out
}

// watch watches p until the test ends.
func watch(t *testing.T, p discovery.Provider) (<-chan discovery.Event, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return p.Watch(ctx), cancel
}

// next returns the next event of ch, failing the test after a while.
func next(t *testing.T, ch <-chan discovery.Event) discovery.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	panic("unreachable")
}

// expectIDs checks that the next event of ch is a set with the given IDs.
func expectIDs(t *testing.T, ch <-chan discovery.Event, want ...string) {
	t.Helper()
	ev := next(t, ch)
	if ev.Err != nil {
		t.Fatalf("got error %v, want %v", ev.Err, want)
	}
	if got := ids(ev.Instances); !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// expectErr checks that the next event of ch is the error want.
func expectErr(t *testing.T, ch <-chan discovery.Event, want error) {
	t.Helper()
	if ev := next(t, ch); ev.Err != want {
		t.Fatalf("got %v (instances %v), want error %v", ev.Err, ids(ev.Instances), want)
	}
}

// expectClosed checks that ch closes, draining it.
func expectClosed(t *testing.T, ch <-chan discovery.Event) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("channel not closed within 10s")
		}
	}
}
