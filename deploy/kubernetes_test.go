package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/shoal-sh/shoal/deploy/crd"
)

// decoded are the objects of a generated target, each decoded strictly into its API type.
type decoded struct {
	ServiceAccounts  []*corev1.ServiceAccount
	Roles            []*rbacv1.Role
	RoleBindings     []*rbacv1.RoleBinding
	Deployments      []*appsv1.Deployment
	Services         []*corev1.Service
	HPAs             []*autoscalingv2.HorizontalPodAutoscaler
	PDBs             []*policyv1.PodDisruptionBudget
	ServiceMonitors  []*crd.ServiceMonitor
	ScaledObjects    []*crd.ScaledObject
	VirtualServices  []*crd.VirtualService
	DestinationRules []*crd.DestinationRule
}

// decodeStrict decodes one YAML document into the API type of its kind, refusing unknown
// fields, and adds it to d.
func (d *decoded) decodeStrict(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	into := func(dst any) error {
		if err := yaml.UnmarshalStrict(doc, dst); err != nil {
			return fmt.Errorf("%s/%s does not decode strictly: %w", tm.APIVersion, tm.Kind, err)
		}
		return nil
	}
	var err error
	switch gvk := tm.APIVersion + "/" + tm.Kind; gvk {
	case "v1/ServiceAccount":
		o := &corev1.ServiceAccount{}
		err = into(o)
		d.ServiceAccounts = append(d.ServiceAccounts, o)
	case "rbac.authorization.k8s.io/v1/Role":
		o := &rbacv1.Role{}
		err = into(o)
		d.Roles = append(d.Roles, o)
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		o := &rbacv1.RoleBinding{}
		err = into(o)
		d.RoleBindings = append(d.RoleBindings, o)
	case "apps/v1/Deployment":
		o := &appsv1.Deployment{}
		err = into(o)
		d.Deployments = append(d.Deployments, o)
	case "v1/Service":
		o := &corev1.Service{}
		err = into(o)
		d.Services = append(d.Services, o)
	case "autoscaling/v2/HorizontalPodAutoscaler":
		o := &autoscalingv2.HorizontalPodAutoscaler{}
		err = into(o)
		d.HPAs = append(d.HPAs, o)
	case "policy/v1/PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		err = into(o)
		d.PDBs = append(d.PDBs, o)
	case crd.MonitoringAPIVersion + "/ServiceMonitor":
		o := &crd.ServiceMonitor{}
		err = into(o)
		d.ServiceMonitors = append(d.ServiceMonitors, o)
	case crd.KEDAAPIVersion + "/ScaledObject":
		o := &crd.ScaledObject{}
		err = into(o)
		d.ScaledObjects = append(d.ScaledObjects, o)
	case crd.IstioAPIVersion + "/VirtualService":
		o := &crd.VirtualService{}
		err = into(o)
		d.VirtualServices = append(d.VirtualServices, o)
	case crd.IstioAPIVersion + "/DestinationRule":
		o := &crd.DestinationRule{}
		err = into(o)
		d.DestinationRules = append(d.DestinationRules, o)
	default:
		return fmt.Errorf("unexpected kind %s", gvk)
	}
	return err
}

// decodeTargets generates the Kubernetes-side targets of a fixture and decodes every object.
func decodeTargets(t *testing.T, fx fixture, targets ...string) *decoded {
	t.Helper()
	d := &decoded{}
	for _, target := range targets {
		for _, f := range generate(t, fx, target).Files {
			if err := d.decodeStrict(f.Data); err != nil {
				t.Fatalf("%s %s/%s: %v", fx.name, target, f.Path, err)
			}
		}
	}
	return d
}

// TestKubernetes_DecodesStrictly decodes every generated object into its API type with
// unknown fields refused: a misspelt or misplaced field fails here, not in the cluster.
func TestKubernetes_DecodesStrictly(t *testing.T) {
	t.Parallel()
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			d := decodeTargets(t, fx, Kubernetes, KEDA, Istio)
			// The kubernetes target's one autoscaler, and the keda target's ScaledObject.
			if len(d.Deployments) != 1 || len(d.Services) != 1 || len(d.HPAs)+len(d.ScaledObjects) != 2 || len(d.PDBs) != 1 ||
				len(d.ScaledObjects) < 1 || len(d.VirtualServices) != 1 || len(d.DestinationRules) != 1 {
				t.Fatalf("missing objects: %d Deployments, %d Services, %d HPAs, %d PDBs, %d ScaledObjects, %d VirtualServices, %d DestinationRules",
					len(d.Deployments), len(d.Services), len(d.HPAs), len(d.PDBs), len(d.ScaledObjects), len(d.VirtualServices), len(d.DestinationRules))
			}
		})
	}
	t.Run("an unknown field is refused", func(t *testing.T) {
		t.Parallel()
		d := &decoded{}
		err := d.decodeStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 3\n"))
		if err == nil || !strings.Contains(err.Error(), "replica") {
			t.Fatalf("got %v, want an unknown-field error", err)
		}
	})
}

// TestKubernetes_CrossReferences checks that the objects fit together: selectors match the
// pod labels, probes and Service target ports name container ports, the HPA, PDB and
// ScaledObject point at the Deployment, the ServiceMonitor finds the Service, RBAC binds the
// pods' ServiceAccount, and the Istio objects agree with the Service.
func TestKubernetes_CrossReferences(t *testing.T) {
	t.Parallel()
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			c := load(t, fx)
			d := decodeTargets(t, fx, Kubernetes, KEDA, Istio)
			dep, svc := d.Deployments[0], d.Services[0]
			pod := dep.Spec.Template
			podLabels := labels.Set(pod.Labels)
			ctr := pod.Spec.Containers[0]
			ports := map[string]int32{}
			for _, p := range ctr.Ports {
				ports[p.Name] = p.ContainerPort
			}
			ns := c.Scaling.ServiceDiscovery.Namespace

			selects := func(what string, sel *metav1.LabelSelector) {
				t.Helper()
				s, err := metav1.LabelSelectorAsSelector(sel)
				if err != nil || s.Empty() || !s.Matches(podLabels) {
					t.Errorf("%s selector %v does not select the pods (%v): %v", what, sel, pod.Labels, err)
				}
			}
			selects("Deployment", dep.Spec.Selector)
			selects("PodDisruptionBudget", d.PDBs[0].Spec.Selector)
			for _, tsc := range pod.Spec.TopologySpreadConstraints {
				selects("topology spread", tsc.LabelSelector)
			}
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
				t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, pod.Labels)
			}

			// Replicas, probes, grace period, security.
			in := c.Scaling.Instances
			if *dep.Spec.Replicas != int32(in.MinInstances) {
				t.Errorf("replicas %d, want min_instances %d", *dep.Spec.Replicas, in.MinInstances)
			}
			for name, p := range map[string]*corev1.Probe{"readiness": ctr.ReadinessProbe, "liveness": ctr.LivenessProbe, "startup": ctr.StartupProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("%s probe missing", name)
					continue
				}
				if _, ok := ports[p.HTTPGet.Port.StrVal]; !ok {
					t.Errorf("%s probe port %v is not a container port %v", name, p.HTTPGet.Port, ports)
				}
			}
			if ctr.ReadinessProbe.HTTPGet.Path != in.Startup.ReadinessProbe || ctr.LivenessProbe.HTTPGet.Path != in.Startup.LivenessProbe {
				t.Errorf("probe paths %s, %s", ctr.ReadinessProbe.HTTPGet.Path, ctr.LivenessProbe.HTTPGet.Path)
			}
			if ctr.LivenessProbe.SuccessThreshold != 1 || ctr.StartupProbe.SuccessThreshold != 1 {
				t.Error("liveness and startup probes must have successThreshold 1")
			}
			sh := in.Shutdown
			if grace := *pod.Spec.TerminationGracePeriodSeconds; grace < int64(sh.DrainTimeout.Seconds()+sh.GracefulTimeout.Seconds()) {
				t.Errorf("terminationGracePeriodSeconds %d does not cover drain %s + graceful %s", grace, sh.DrainTimeout, sh.GracefulTimeout)
			}
			if ctr.Lifecycle.PreStop.Sleep.Seconds != int64(sh.DrainTimeout.Seconds()) {
				t.Errorf("preStop sleeps %d", ctr.Lifecycle.PreStop.Sleep.Seconds)
			}
			sc, psc := ctr.SecurityContext, pod.Spec.SecurityContext
			if !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
				!*psc.RunAsNonRoot || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("security context is not hardened: %+v %+v", sc, psc)
			}

			// The Service reaches the container; metrics are scraped where they are served.
			for _, p := range svc.Spec.Ports {
				if _, ok := ports[p.TargetPort.StrVal]; !ok {
					t.Errorf("Service port %s targets %v, not a container port %v", p.Name, p.TargetPort, ports)
				}
			}
			if svc.Namespace != ns || dep.Namespace != ns {
				t.Errorf("namespaces %s, %s; want %s", svc.Namespace, dep.Namespace, ns)
			}
			if c.Scaling.ServiceDiscovery.Kubernetes.ServiceType == "Headless" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Error("a headless Service needs clusterIP: None")
			}
			for _, sm := range d.ServiceMonitors {
				if !labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
					t.Errorf("ServiceMonitor selector %v does not select the Service %v", sm.Spec.Selector.MatchLabels, svc.Labels)
				}
				if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == sm.Spec.Endpoints[0].Port }) {
					t.Errorf("ServiceMonitor scrapes port %q, which the Service lacks", sm.Spec.Endpoints[0].Port)
				}
			}

			// One autoscaler, never two, and it and the budget point at the Deployment.
			kube := decodeTargets(t, fx, Kubernetes)
			kind, _ := Choose(c)
			switch {
			case kind == AutoscalerHPA && (len(kube.HPAs) != 1 || len(kube.ScaledObjects) != 0),
				kind == AutoscalerKEDA && (len(kube.HPAs) != 0 || len(kube.ScaledObjects) != 1):
				t.Errorf("the kubernetes target writes %d HPAs and %d ScaledObjects; want one %s", len(kube.HPAs), len(kube.ScaledObjects), kind)
			}
			for _, hpa := range d.HPAs {
				ref := hpa.Spec.ScaleTargetRef
				if ref.Kind != "Deployment" || ref.Name != dep.Name || ref.APIVersion != "apps/v1" {
					t.Errorf("HPA targets %+v, not Deployment %s", ref, dep.Name)
				}
				if *hpa.Spec.MinReplicas != int32(in.MinInstances) || hpa.Spec.MaxReplicas != int32(in.MaxInstances) {
					t.Errorf("HPA bounds %d-%d", *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
				}
			}
			for _, so := range d.ScaledObjects {
				if so.Spec.ScaleTargetRef.Name != dep.Name || so.Spec.ScaleTargetRef.Kind != "Deployment" {
					t.Errorf("ScaledObject targets %+v", so.Spec.ScaleTargetRef)
				}
			}
			if _, ok := ctr.Resources.Requests[corev1.ResourceCPU]; !ok {
				t.Error("no CPU request: the HPA could not compute utilisation")
			}

			// Secrets come from the Secret, and only from it.
			for _, e := range ctr.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name != c.Deploy.SecretName && e.ValueFrom.SecretKeyRef.Name != c.Name+"-secrets" {
					t.Errorf("env %s reads Secret %s", e.Name, e.ValueFrom.SecretKeyRef.Name)
				}
			}

			// The pods' ServiceAccount exists and is bound to the discovery Role.
			if sa := pod.Spec.ServiceAccountName; sa != "" {
				if len(d.ServiceAccounts) != 1 || d.ServiceAccounts[0].Name != sa {
					t.Errorf("pods run as %s, which is not generated", sa)
				}
				rb := d.RoleBindings[0]
				if rb.Subjects[0].Name != sa || rb.Subjects[0].Namespace != ns || rb.RoleRef.Name != d.Roles[0].Name {
					t.Errorf("RoleBinding %+v does not bind %s to %s", rb, sa, d.Roles[0].Name)
				}
				for _, r := range d.Roles[0].Rules {
					if !slices.Equal(r.Verbs, []string{"get", "list", "watch"}) {
						t.Errorf("the Role allows %v", r.Verbs)
					}
				}
			} else if *pod.Spec.AutomountServiceAccountToken {
				t.Error("the pods get an API token they do not need")
			}

			// Istio routes to the Service, and its subsets select pods.
			vs, dr := d.VirtualServices[0], d.DestinationRules[0]
			host := svc.Name + "." + ns + ".svc.cluster.local"
			if dr.Spec.Host != host || vs.Spec.Hosts[0] != host {
				t.Errorf("Istio hosts %s, %v; want %s", dr.Spec.Host, vs.Spec.Hosts, host)
			}
			for _, r := range vs.Spec.HTTP {
				total := int32(0)
				for _, dst := range r.Route {
					if dst.Destination.Host != host || dst.Destination.Port.Number != uint32(svc.Spec.Ports[0].Port) {
						t.Errorf("route %s goes to %+v", r.Name, dst.Destination)
					}
					if dst.Destination.Subset != "" && !slices.ContainsFunc(dr.Spec.Subsets, func(s crd.Subset) bool { return s.Name == dst.Destination.Subset }) {
						t.Errorf("route %s names subset %s, which the DestinationRule lacks", r.Name, dst.Destination.Subset)
					}
					total += dst.Weight
				}
				if len(r.Route) > 1 && total != 100 {
					t.Errorf("route %s weights add up to %d", r.Name, total)
				}
			}
			if len(dr.Spec.Subsets) > 0 && !slices.ContainsFunc(dr.Spec.Subsets, func(s crd.Subset) bool {
				return labels.SelectorFromSet(s.Labels).Matches(podLabels)
			}) {
				t.Errorf("no DestinationRule subset selects this Deployment's pods %v", pod.Labels)
			}
		})
	}
}
