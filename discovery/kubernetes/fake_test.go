package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8swatch "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// cluster is client-go's fake clientset — no API server can run here — with
// a switch that makes listing and watching EndpointSlices fail, and a handle
// on the open watches so that a failure can end them, as a lost connection
// to the API server would. The fake's watches ignore label selectors; the
// provider must filter by itself.
type cluster struct {
	*fake.Clientset
	mu      sync.Mutex
	failing bool
	watches []k8swatch.Interface
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	c := &cluster{Clientset: fake.NewClientset()}
	c.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.failing {
			return true, nil, errors.New("connection refused (test)")
		}
		return false, nil, nil
	})
	c.PrependWatchReactor("endpointslices", func(a k8stesting.Action) (bool, k8swatch.Interface, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.failing {
			return true, nil, errors.New("connection refused (test)")
		}
		w, err := c.Tracker().Watch(a.GetResource(), a.GetNamespace())
		if err == nil {
			c.watches = append(c.watches, w)
		}
		return true, w, err
	})
	return c
}

// fail makes the API unreachable and ends the open watches.
func (c *cluster) fail() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failing = true
	for _, w := range c.watches {
		w.Stop()
	}
	c.watches = nil
}

// recover makes the API reachable again.
func (c *cluster) recover() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failing = false
}

// endpoint is one endpoint of a slice.
type endpoint struct {
	addr                        string
	ready, serving, terminating bool
	pod                         string
}

func ptr[T any](v T) *T { return &v }

// endpointSlice builds an EndpointSlice of service with the given ports and endpoints.
func endpointSlice(ns, name, service string, ports map[string]int32, eps ...endpoint) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for n, p := range ports {
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr(n), Port: ptr(p), Protocol: ptr(corev1.ProtocolTCP)})
	}
	for _, e := range eps {
		ep := discoveryv1.Endpoint{Addresses: []string{e.addr}, Conditions: discoveryv1.EndpointConditions{
			Ready: ptr(e.ready), Serving: ptr(e.serving), Terminating: ptr(e.terminating)}}
		if e.pod != "" {
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: e.pod}
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	return s
}

// put creates or updates a slice.
func (c *cluster) put(t testing.TB, s *discoveryv1.EndpointSlice) {
	t.Helper()
	api := c.DiscoveryV1().EndpointSlices(s.Namespace)
	if _, err := api.Update(context.Background(), s, metav1.UpdateOptions{}); err == nil {
		return
	}
	if _, err := api.Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// drop deletes a slice if it exists.
func (c *cluster) drop(t *testing.T, ns, name string) {
	t.Helper()
	_ = c.DiscoveryV1().EndpointSlices(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newProvider(t *testing.T, c *cluster) *Provider {
	t.Helper()
	p, err := New(Options{Namespace: "shop", Service: "api", Port: 8080, Client: c, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func addr(i int) string { return fmt.Sprintf("10.0.0.%d", i+1) }
