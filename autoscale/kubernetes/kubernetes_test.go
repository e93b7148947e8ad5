package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/config"
)

// No Kubernetes API server runs here: the tests use client-go's fake clientset. It keeps
// objects but does not implement the scale subresource, so withScale adds reactors that map it
// onto the Deployment as the API server does (spec.replicas, and status.selector from the
// Deployment's selector).
func withScale(cs *fake.Clientset, conflicts *int) {
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	cs.PrependReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		name := a.(k8stesting.GetAction).GetName()
		obj, err := cs.Tracker().Get(gvr, a.GetNamespace(), name)
		if err != nil {
			return true, nil, err
		}
		d := obj.(*appsv1.Deployment)
		sel, _ := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.Namespace, ResourceVersion: d.ResourceVersion},
			Spec:   autoscalingv1.ScaleSpec{Replicas: *d.Spec.Replicas},
			Status: autoscalingv1.ScaleStatus{Replicas: d.Status.Replicas, Selector: sel.String()}}, nil
	})
	cs.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		if conflicts != nil && *conflicts > 0 {
			*conflicts--
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, "shop", errors.New("the object has been modified"))
		}
		s := a.(k8stesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		obj, err := cs.Tracker().Get(gvr, a.GetNamespace(), s.Name)
		if err != nil {
			return true, nil, err
		}
		d := obj.(*appsv1.Deployment).DeepCopy()
		d.Spec.Replicas = &s.Spec.Replicas
		if err := cs.Tracker().Update(gvr, d, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, s, nil
	})
}

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func deployment(replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "prod"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}}}}
}

func pod(name string, app string, ready bool, started, transition time.Time) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "prod", Labels: map[string]string{"app": app}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &metav1.Time{Time: started},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.Time{Time: transition}}}}}
}

// promServer stands in for Prometheus' HTTP API (GET/POST /api/v1/query), which no server
// here answers: it returns vec(query) as an instant vector and records the queries.
type promServer struct {
	mu      sync.Mutex
	queries []string
	vec     func(query string) map[string]float64 // pod ("" for a sum) → value
	down    bool                                  // answer 503 as an overloaded Prometheus does
}

func (p *promServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	q := r.FormValue("query")
	p.mu.Lock()
	p.queries = append(p.queries, q)
	down := p.down
	p.mu.Unlock()
	if down {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]any{"status": "error", "errorType": "unavailable", "error": "too many queries"})
		return
	}
	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	res := []sample{}
	for pod, v := range p.vec(q) {
		m := map[string]string{}
		if pod != "" {
			m["pod"] = pod
		}
		res = append(res, sample{Metric: m, Value: [2]any{float64(now.Unix()), fmt.Sprint(v)}})
	}
	json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": res}})
}

func setup(t *testing.T, replicas int32, objs ...runtime.Object) (*Deployment, *fake.Clientset, *promServer, *int) {
	t.Helper()
	cs := fake.NewClientset(append([]runtime.Object{deployment(replicas)}, objs...)...)
	conflicts := new(int)
	withScale(cs, conflicts)
	ps := &promServer{vec: func(string) map[string]float64 { return nil }}
	srv := httptest.NewServer(ps)
	t.Cleanup(srv.Close)
	prom, err := NewPrometheus(srv.URL, "prod", "shop")
	if err != nil {
		t.Fatal(err)
	}
	return &Deployment{Client: cs, Namespace: "prod", Name: "shop", Metrics: prom}, cs, ps, conflicts
}

func replicasOf(t *testing.T, cs *fake.Clientset) int32 {
	t.Helper()
	d, err := cs.AppsV1().Deployments("prod").Get(context.Background(), "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas
}

func TestDeployment_Scale(t *testing.T) {
	t.Parallel()
	d, cs, _, conflicts := setup(t, 3)
	ctx := context.Background()
	if err := d.Scale(ctx, 5, "test"); err != nil {
		t.Fatal(err)
	}
	if got := replicasOf(t, cs); got != 5 {
		t.Errorf("replicas %d, want 5", got)
	}
	*conflicts = 1 // someone else wrote the Deployment between our read and our write
	if err := d.Scale(ctx, 7, "test"); err != nil {
		t.Fatalf("a conflict is retried: %v", err)
	}
	if got := replicasOf(t, cs); got != 7 {
		t.Errorf("replicas %d, want 7", got)
	}
	*conflicts = 2
	if err := d.Scale(ctx, 8, "test"); !apierrors.IsConflict(errors.Unwrap(err)) {
		t.Errorf("two conflicts in a row give up with the conflict: %v", err)
	}
	missing := &Deployment{Client: cs, Namespace: "prod", Name: "nope"}
	if err := missing.Scale(ctx, 2, "test"); !errors.Is(err, ErrNoDeployment) {
		t.Errorf("err = %v, want ErrNoDeployment", err)
	}
}

func TestDeployment_Observe(t *testing.T) {
	t.Parallel()
	old := now.Add(-time.Hour)
	terminating := pod("shop-gone", "shop", true, old, old)
	terminating.DeletionTimestamp = &metav1.Time{Time: now}
	d, _, ps, _ := setup(t, 4,
		pod("shop-a", "shop", true, old, old),
		pod("shop-b", "shop", true, old, old),
		pod("shop-new", "shop", false, now.Add(-10*time.Second), now.Add(-10*time.Second)),
		pod("shop-sick", "shop", false, old, now.Add(-time.Minute)), // was ready, went unready
		terminating,
		pod("other-x", "other", true, old, old), // another app's pod
	)
	ps.vec = func(q string) map[string]float64 {
		switch {
		case strings.Contains(q, "shoal_cpu_utilization_ratio"):
			return map[string]float64{"shop-a": 80, "shop-b": 60, "other-x": 99}
		case strings.Contains(q, "shoal_memory_utilization_ratio"):
			return map[string]float64{"shop-a": 30, "shop-b": 30, "shop-new": 10}
		case strings.Contains(q, "histogram_quantile"):
			return map[string]float64{"": 250}
		case strings.Contains(q, "shoal_active_connections"):
			return map[string]float64{"": 42}
		case strings.HasPrefix(q, "sum(max by (queue) (avg_over_time(job_queue_depth{"):
			return map[string]float64{"": 120} // the jobs' backlog, once per queue however many pods report it
		}
		return nil
	}
	in, err := d.Observe(context.Background(), now, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if in.Current != 4 || len(in.Instances) != 4 {
		t.Fatalf("current %d with %d instances, want 4 and 4 (no terminating pod, no other app's): %+v", in.Current, len(in.Instances), in.Instances)
	}
	byID := map[string]autoscale.Instance{}
	for _, i := range in.Instances {
		byID[i.ID] = i
	}
	if a := byID["shop-a"]; !a.Ready || !a.HasCPU || a.CPU != 80 || a.ReadySince != old {
		t.Errorf("shop-a: %+v", a)
	}
	if n := byID["shop-new"]; n.Ready || !n.ReadySince.IsZero() || n.HasCPU || !n.HasMemory {
		t.Errorf("shop-new (starting, never ready): %+v", n)
	}
	if s := byID["shop-sick"]; s.Ready || s.ReadySince.IsZero() {
		t.Errorf("shop-sick (unready after being ready): %+v", s)
	}
	if in.Values[config.MetricResponseTimeP95] != 250 || in.Values[config.MetricActiveConnections] != 42 || in.Values[config.MetricJobQueueDepth] != 120 {
		t.Errorf("fleet values %v", in.Values)
	}
	if _, ok := in.Values[config.MetricRequestQueueDepth]; ok {
		t.Errorf("a metric without samples is left out: %v", in.Values)
	}
	for _, q := range ps.queries {
		if !strings.Contains(q, `{namespace="prod",job="shop"}`) || !strings.Contains(q, "[60s]") {
			t.Errorf("query %q does not select the Service's pods over at least a minute", q)
		}
	}
}

// TestDeployment_Autoscales runs the real autoscaler against the fake cluster: busy pods grow
// the Deployment, a `kubectl scale` is held for the window, and every evaluation is logged.
func TestDeployment_Autoscales(t *testing.T) {
	t.Parallel()
	old := now.Add(-time.Hour)
	d, cs, ps, _ := setup(t, 2, pod("shop-a", "shop", true, old, old), pod("shop-b", "shop", true, old, old))
	var mu sync.Mutex
	cpu := 140.0
	ps.vec = func(q string) map[string]float64 {
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(q, "shoal_cpu_utilization_ratio") {
			return map[string]float64{"shop-a": cpu, "shop-b": cpu}
		}
		return nil
	}
	s := autoscale.Settings{Min: 2, Max: 10, Interval: 15 * time.Second, Tolerance: 0.1, CPUInitializationPeriod: 5 * time.Minute,
		Targets: []autoscale.Target{{Metric: config.MetricCPUUtilization, Value: 70}}, ScaleUp: autoscale.HPAScaleUp, ScaleDown: autoscale.HPAScaleDown}
	a := autoscale.New(s)
	ctx := context.Background()
	dec := a.Evaluate(ctx, now, d, d)
	if dec.Change != autoscale.ChangeUp || dec.Desired != 4 || !dec.Applied {
		t.Fatalf("140%% on 2 pods against 70%%: %+v", dec)
	}
	if got := replicasOf(t, cs); got != 4 {
		t.Fatalf("the Deployment has %d replicas, want 4", got)
	}
	// Someone runs kubectl scale deployment shop --replicas=9 on an idle service.
	mu.Lock()
	cpu = 5
	mu.Unlock()
	nine := deployment(9)
	if _, err := cs.AppsV1().Deployments("prod").Update(ctx, nine, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	dec = a.Evaluate(ctx, now.Add(time.Minute), d, d)
	if dec.Change != autoscale.ChangeNone || !strings.Contains(dec.Reason, "outside the autoscaler") {
		t.Fatalf("the manual scale is held for the window: %+v", dec)
	}
	dec = a.Evaluate(ctx, now.Add(7*time.Minute), d, d)
	if dec.Change != autoscale.ChangeDown || replicasOf(t, cs) != int32(dec.Desired) {
		t.Fatalf("after the window the idle Deployment shrinks: %+v (replicas %d)", dec, replicasOf(t, cs))
	}
	if n := a.Log().Len(); n != 3 {
		t.Errorf("%d decisions logged, want 3", n)
	}
	// Prometheus down: the evaluation is logged with the error and changes nothing.
	ps.mu.Lock()
	ps.down = true
	ps.mu.Unlock()
	before := replicasOf(t, cs)
	dec = a.Evaluate(ctx, now.Add(8*time.Minute), d, d)
	if dec.Change != autoscale.ChangeNone || !strings.Contains(dec.Error, "503") || replicasOf(t, cs) != before {
		t.Errorf("an unreadable metric: %+v", dec)
	}
	if last := a.Log().Since(now.Add(8*time.Minute), 0); len(last) != 1 || last[0].Error == "" {
		t.Errorf("the failed evaluation is logged: %+v", last)
	}
}
