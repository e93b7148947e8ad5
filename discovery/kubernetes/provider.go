package kubernetes

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	informers "k8s.io/client-go/informers/discovery/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/shoal-sh/shoal/discovery"
)

// Provider watches a Service's EndpointSlices; see the package
// documentation. It is safe for concurrent use.
type Provider struct {
	opts   Options
	client k8s.Interface
}

var _ discovery.Provider = (*Provider)(nil)

// New returns a Provider for opts, connecting a client when opts.Client is
// nil (without contacting the API server yet).
func New(opts Options) (*Provider, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	client := opts.Client
	if client == nil {
		var err error
		if client, err = connect(opts); err != nil {
			return nil, err
		}
	}
	return &Provider{opts: opts, client: client}, nil
}

// selector is the label selector of the service's slices.
func (p *Provider) selector() string { return discoveryv1.LabelServiceName + "=" + p.opts.Service }

// Watch implements [discovery.Provider]. Each call runs an informer of its
// own until ctx is done; the first event is sent once the informer has
// listed the slices (or failed to).
func (p *Provider) Watch(ctx context.Context) <-chan discovery.Event {
	f, ch := discovery.NewFeed()
	w := &watch{p: p, f: f, slices: map[string]*slice{}}
	inf := informers.NewFilteredEndpointSliceInformer(p.client, p.opts.Namespace, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = p.selector() })
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		w.failed(err)
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.update(obj) },
		UpdateFunc: func(_, obj any) { w.update(obj) },
		DeleteFunc: func(obj any) { w.remove(obj) },
	})
	go func() {
		defer f.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			inf.RunWithContext(ctx)
		}()
		if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			w.synced()
		}
		<-done
	}()
	return ch
}

// watch is the state of one Watch call.
type watch struct {
	p *Provider
	f *discovery.Feed

	mu       sync.Mutex
	slices   map[string]*slice // by namespace/name
	isSynced bool
	inErr    bool
	scratch  []discovery.Instance   // the merged set, reused
	lists    [][]discovery.Instance // the slices' lists, reused
}

// slice is what one EndpointSlice contributes.
type slice struct {
	instances []discovery.Instance    // sorted by ID
	byAddr    map[addrPort]epInstance // to reuse unchanged instances
	warned    string                  // resource version warned about
}

type addrPort struct {
	addr string
	port int32
}

// epInstance is an instance with what it was made from.
type epInstance struct {
	in             discovery.Instance
	pod, node, zon string
}

func key(s *discoveryv1.EndpointSlice) string { return s.Namespace + "/" + s.Name }

// update records an added or changed slice.
func (w *watch) update(obj any) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.Labels[discoveryv1.LabelServiceName] != w.p.opts.Service || s.Namespace != w.p.opts.Namespace {
		// Not ours (a source that ignored the selector) — or no longer ours.
		if _, had := w.slices[key(s)]; had {
			delete(w.slices, key(s))
			w.sendLocked()
		}
		return
	}
	old := w.slices[key(s)]
	w.slices[key(s)] = w.build(s, old)
	w.sendLocked()
}

// remove forgets a deleted slice.
func (w *watch) remove(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, had := w.slices[key(s)]; had {
		delete(w.slices, key(s))
		w.sendLocked()
	}
}

// failed reports a list or watch error.
func (w *watch) failed(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inErr = true
	w.f.Send(discovery.Event{Err: fmt.Errorf("kubernetes: EndpointSlices of %s/%s: %w", w.p.opts.Namespace, w.p.opts.Service, err)})
}

// synced sends the first set once the informer has listed the slices.
func (w *watch) synced() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.isSynced = true
	w.sendLocked()
}

// sendLocked sends the merged set, once synced. w.mu must be held.
func (w *watch) sendLocked() {
	if !w.isSynced {
		return
	}
	w.inErr = false
	lists := w.lists[:0]
	for _, s := range w.slices {
		if len(s.instances) > 0 {
			lists = append(lists, s.instances)
		}
	}
	w.lists = lists
	all := mergeSorted(w.scratch[:0], lists)
	w.f.Send(discovery.Event{Instances: all}) // the feed copies the slice
	w.scratch = all
}

// build returns what slice s contributes, reusing the instances of old for
// endpoints that did not change, so that an update of a slice allocates
// nothing per unchanged endpoint.
func (w *watch) build(s *discoveryv1.EndpointSlice, old *slice) *slice {
	o := w.p.opts
	port, ok := pickPort(s.Ports, o.PortName, o.Port)
	out := &slice{}
	if old != nil {
		out.warned = old.warned
	}
	if !ok {
		if out.warned != s.ResourceVersion {
			out.warned = s.ResourceVersion
			o.Logger.Warn("kubernetes discovery: EndpointSlice has no port named "+strconv.Quote(o.PortName)+
				" nor numbered "+strconv.Itoa(o.Port)+"; its endpoints are not used", "slice", key(s))
		}
		return out
	}
	out.instances = make([]discovery.Instance, 0, len(s.Endpoints))
	out.byAddr = make(map[addrPort]epInstance, len(s.Endpoints))
	for i := range s.Endpoints {
		ep := &s.Endpoints[i]
		if len(ep.Addresses) == 0 {
			continue
		}
		ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
		serving := ready
		if ep.Conditions.Serving != nil {
			serving = *ep.Conditions.Serving
		}
		terminating := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
		var draining bool
		switch {
		case ready && !terminating:
		case serving && terminating:
			draining = true
		default:
			continue
		}
		var pod, node, zone string
		if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
			pod = ep.TargetRef.Name
		}
		if ep.NodeName != nil {
			node = *ep.NodeName
		}
		if ep.Zone != nil {
			zone = *ep.Zone
		}
		ap := addrPort{ep.Addresses[0], port}
		if prev, ok := old.lookup(ap); ok && prev.in.Draining == draining && prev.pod == pod && prev.node == node && prev.zon == zone {
			out.byAddr[ap] = prev
			out.instances = append(out.instances, prev.in)
			continue
		}
		u := &url.URL{Scheme: o.Scheme, Host: net.JoinHostPort(ap.addr, strconv.Itoa(int(port)))}
		in := discovery.Instance{ID: u.String(), URL: u, Weight: 1, Draining: draining}
		if pod != "" || node != "" || zone != "" {
			in.Meta = map[string]string{}
			for k, v := range map[string]string{"pod": pod, "node": node, "zone": zone} {
				if v != "" {
					in.Meta[k] = v
				}
			}
		}
		out.byAddr[ap] = epInstance{in: in, pod: pod, node: node, zon: zone}
		out.instances = append(out.instances, in)
	}
	slices.SortFunc(out.instances, func(a, b discovery.Instance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// mergeSorted appends to dst the union of lists, each sorted by ID, sorted
// by ID with one instance per ID (a non-draining one when there is a
// choice): a k-way merge over a small heap, cheaper than sorting the
// concatenation because every slice's list is already sorted.
func mergeSorted(dst []discovery.Instance, lists [][]discovery.Instance) []discovery.Instance {
	// h holds the index of each list with instances left, as a min-heap on
	// the list's head.
	h := make([]int, 0, 32)
	pos := make([]int, len(lists))
	less := func(a, b int) bool { return lists[a][pos[a]].ID < lists[b][pos[b]].ID }
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(h) {
				return
			}
			if r := l + 1; r < len(h) && less(h[r], h[l]) {
				l = r
			}
			if !less(h[l], h[i]) {
				return
			}
			h[i], h[l] = h[l], h[i]
			i = l
		}
	}
	for i := range lists {
		h = append(h, i)
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(i)
	}
	for len(h) > 0 {
		top := h[0]
		in := lists[top][pos[top]]
		if n := len(dst); n > 0 && dst[n-1].ID == in.ID {
			if dst[n-1].Draining && !in.Draining {
				dst[n-1] = in
			}
		} else {
			dst = append(dst, in)
		}
		pos[top]++
		if pos[top] == len(lists[top]) {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		down(0)
	}
	return dst
}

func (s *slice) lookup(ap addrPort) (epInstance, bool) {
	if s == nil {
		return epInstance{}, false
	}
	e, ok := s.byAddr[ap]
	return e, ok
}

// pickPort returns the port named name, else the one numbered number.
func pickPort(ports []discoveryv1.EndpointPort, name string, number int) (int32, bool) {
	for _, p := range ports {
		if p.Port != nil && p.Name != nil && *p.Name == name {
			return *p.Port, true
		}
	}
	for _, p := range ports {
		if p.Port != nil && number > 0 && int(*p.Port) == number {
			return *p.Port, true
		}
	}
	return 0, false
}
