// Package kubernetes runs shoal's autoscaler against a Kubernetes Deployment: it scales through
// the Deployment's scale subresource (as the HPA does), reads the pods' readiness and start
// times from the API server, and their metrics from Prometheus with the same queries as the
// KEDA triggers `shoal generate keda` writes.
//
// It exists for what an HPA cannot express — the seed's threshold rules with their own
// cooldowns and steps, and one decision log for every evaluation — and so that the local fleet
// and the cluster are scaled by the same code. Run it in place of the HPA, not beside one: two
// autoscalers for one Deployment fight.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/config"
)

// Deployment is one Deployment of a cluster: the autoscaler's Source and its Scaler.
type Deployment struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	// Metrics reads the pods' metrics. Required by Observe.
	Metrics Metrics
}

var (
	_ autoscale.Source = (*Deployment)(nil)
	_ autoscale.Scaler = (*Deployment)(nil)
)

// ErrNoDeployment is returned when the Deployment does not exist.
var ErrNoDeployment = errors.New("no such Deployment")

// scale reads the scale subresource.
func (d *Deployment) scale(ctx context.Context) (*autoscalingv1.Scale, error) {
	s, err := d.Client.AppsV1().Deployments(d.Namespace).GetScale(ctx, d.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("deployment %s/%s: %w; deploy it first (shoal generate kubernetes) or pass --namespace and --deployment", d.Namespace, d.Name, ErrNoDeployment)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the scale of deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	return s, nil
}

// Scale sets the Deployment's replicas through its scale subresource, as `kubectl scale` does.
// A conflict (someone else changed it since it was read) is retried once with a fresh read.
func (d *Deployment) Scale(ctx context.Context, to int, reason string) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var s *autoscalingv1.Scale
		s, err = d.scale(ctx)
		if err != nil {
			return err
		}
		if int(s.Spec.Replicas) == to {
			return nil
		}
		s.Spec.Replicas = int32(to)
		_, err = d.Client.AppsV1().Deployments(d.Namespace).UpdateScale(ctx, d.Name, s, metav1.UpdateOptions{FieldManager: "shoal-autoscale"})
		if !apierrors.IsConflict(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("scaling deployment %s/%s to %d: %w", d.Namespace, d.Name, to, err)
	}
	return nil
}

// Observe returns the Deployment's replicas and its pods, each with its readiness, start and
// metrics averaged over window, and the fleet-wide metrics.
func (d *Deployment) Observe(ctx context.Context, now time.Time, window time.Duration) (autoscale.Input, error) {
	if d.Metrics == nil {
		return autoscale.Input{}, errors.New("no metrics source: give the Deployment a Metrics (Prometheus)")
	}
	s, err := d.scale(ctx)
	if err != nil {
		return autoscale.Input{}, err
	}
	sel, err := labels.Parse(s.Status.Selector)
	if err != nil || s.Status.Selector == "" {
		return autoscale.Input{}, fmt.Errorf("deployment %s/%s has no usable selector in its scale status (%q)", d.Namespace, d.Name, s.Status.Selector)
	}
	pods, err := d.Client.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return autoscale.Input{}, fmt.Errorf("listing the pods of deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	in := autoscale.Input{Time: now, Current: int(s.Spec.Replicas), Values: map[string]float64{}}
	cpu, err := d.Metrics.PerPod(ctx, config.MetricCPUUtilization, window)
	if err != nil {
		return autoscale.Input{}, err
	}
	mem, err := d.Metrics.PerPod(ctx, config.MetricMemoryUtilization, window)
	if err != nil {
		return autoscale.Input{}, err
	}
	for _, p := range pods.Items {
		// Filtered here too: a client (the fake one, for instance) may not apply the selector.
		if !sel.Matches(labels.Set(p.Labels)) || p.DeletionTimestamp != nil ||
			p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		in.Instances = append(in.Instances, instance(p, cpu, mem))
	}
	for _, m := range []string{config.MetricResponseTimeP95, config.MetricActiveConnections, config.MetricRequestQueueDepth, config.MetricJobQueueDepth} {
		v, ok, err := d.Metrics.Fleet(ctx, m, window)
		if err != nil {
			return autoscale.Input{}, err
		}
		if ok {
			in.Values[m] = v
		}
	}
	return in, nil
}

// neverReadyWithin is how long after its start a pod's readiness may turn false and still count
// as "never ready" (the HPA's delay of initial readiness status).
const neverReadyWithin = 30 * time.Second

// instance turns a pod into an autoscaler instance.
func instance(p corev1.Pod, cpu, mem map[string]float64) autoscale.Instance {
	in := autoscale.Instance{ID: p.Name}
	if p.Status.StartTime != nil {
		in.Started = p.Status.StartTime.Time
	}
	for _, c := range p.Status.Conditions {
		if c.Type != corev1.PodReady {
			continue
		}
		in.Ready = c.Status == corev1.ConditionTrue && p.Status.Phase == corev1.PodRunning
		switch {
		case in.Ready:
			in.ReadySince = c.LastTransitionTime.Time
		case !c.LastTransitionTime.IsZero() && c.LastTransitionTime.Sub(in.Started) > neverReadyWithin:
			in.ReadySince = c.LastTransitionTime.Time // it was ready once, and went unready
		}
	}
	in.CPU, in.HasCPU = cpu[p.Name]
	in.Memory, in.HasMemory = mem[p.Name]
	return in
}

// Client returns a clientset from kubeconfig (a path; empty means the in-cluster configuration,
// then $KUBECONFIG, then ~/.kube/config) and context (empty: the file's current context).
func Client(kubeconfig, context string) (kubernetes.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the Kubernetes client configuration: %w; pass --kubeconfig", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("making a Kubernetes client: %w", err)
	}
	return cs, nil
}
