package discovery

import (
	"context"
	"slices"
	"sync"
)

// Merge returns a Provider whose set is the union of the sets of providers,
// e.g. the fleet's own instances and the static ones. When several providers
// report an instance with the same ID, the one given first wins.
//
// Its Watch watches every provider with the same context. The first event is
// sent once every provider has sent its first event, so it is the complete
// current union. An error from one provider is passed on unchanged, and the
// union keeps that provider's last good set. A provider that closes its
// channel early keeps its last set in the union. The merged channel closes
// after ctx is done and every provider's channel has closed.
//
// Merge of no providers is always empty.
func Merge(providers ...Provider) Provider {
	return merged(slices.Clone(providers))
}

// merged is the Provider that Merge returns.
type merged []Provider

var _ Provider = merged(nil)

// Watch implements [Provider].
func (m merged) Watch(ctx context.Context) <-chan Event {
	f, out := NewFeed()
	if len(m) == 0 {
		f.Send(Event{})
		context.AfterFunc(ctx, f.Close)
		return out
	}

	var (
		mu       sync.Mutex
		sets     = make([][]Instance, len(m))
		reported = make([]bool, len(m))
		waiting  = len(m) // providers that have not sent their first event
		pending  error    // latest error not yet sent: held back until every provider has reported
		wg       sync.WaitGroup
	)
	union := func() []Instance {
		var all []Instance
		seen := make(map[string]bool)
		for _, set := range sets {
			for _, i := range set {
				if !seen[i.ID] {
					seen[i.ID] = true
					all = append(all, i)
				}
			}
		}
		return all
	}
	for n, p := range m {
		ch := p.Watch(ctx)
		wg.Go(func() {
			for ev := range ch {
				mu.Lock()
				first := !reported[n]
				if first {
					reported[n] = true
					waiting--
				}
				if ev.Err != nil {
					pending = ev.Err
				} else {
					sets[n] = ev.Instances
				}
				if waiting == 0 {
					if ev.Err == nil || first {
						f.Send(Event{Instances: union()})
					}
					if pending != nil {
						f.Send(Event{Err: pending})
						pending = nil
					}
				}
				mu.Unlock()
			}
		})
	}
	go func() {
		wg.Wait()
		f.Close()
	}()
	return out
}
