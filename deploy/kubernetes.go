package deploy

import (
	"fmt"
	"maps"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/deploy/crd"
)

// Security and scheduling constants of the generated pods.
const (
	// nonRootUID runs the container as an unprivileged user when its image does not say one
	// (65532 is distroless' "nonroot").
	nonRootUID = 65532
	// hpaMaxWindow is the longest stabilisation window the HPA accepts, in seconds.
	hpaMaxWindow = 3600
	// startupPeriod is how often the startup probe runs while an instance starts, in seconds.
	startupPeriod = 5
)

// kubeObjects are the Kubernetes objects of the service. Nil objects are not generated.
type kubeObjects struct {
	ServiceAccount *corev1.ServiceAccount
	Role           *rbacv1.Role
	RoleBinding    *rbacv1.RoleBinding
	Deployment     *appsv1.Deployment
	Service        *corev1.Service
	HPA            *autoscalingv2.HorizontalPodAutoscaler
	// ScaledObject replaces HPA when Choose picks KEDA: only one of them is set.
	ScaledObject   *crd.ScaledObject
	PDB            *policyv1.PodDisruptionBudget
	ServiceMonitor *crd.ServiceMonitor
}

// kubeFile pairs an object with the file it is written to.
type kubeFile struct {
	path string
	obj  any
}

// files lists the generated objects and their files, in a fixed order.
func (o *kubeObjects) files() []kubeFile {
	var fs []kubeFile
	add := func(path string, obj any, present bool) {
		if present {
			fs = append(fs, kubeFile{path, obj})
		}
	}
	add("serviceaccount.yaml", o.ServiceAccount, o.ServiceAccount != nil)
	add("role.yaml", o.Role, o.Role != nil)
	add("rolebinding.yaml", o.RoleBinding, o.RoleBinding != nil)
	add("deployment.yaml", o.Deployment, o.Deployment != nil)
	add("service.yaml", o.Service, o.Service != nil)
	add("hpa.yaml", o.HPA, o.HPA != nil)
	add("scaledobject.yaml", o.ScaledObject, o.ScaledObject != nil)
	add("pdb.yaml", o.PDB, o.PDB != nil)
	add("servicemonitor.yaml", o.ServiceMonitor, o.ServiceMonitor != nil)
	return fs
}

// kubernetesFiles is the kubernetes target: one file per object.
func (s *spec) kubernetesFiles() ([]File, error) {
	objs, err := s.kubeObjects()
	if err != nil {
		return nil, err
	}
	s.secretNote()
	s.autoscalerNote()
	var files []File
	for _, kf := range objs.files() {
		if (kf.path == "hpa.yaml" || kf.path == "scaledobject.yaml") && !s.c.Scaling.Enabled {
			continue // scaling is off: the Deployment keeps min_instances replicas
		}
		tree, err := toTree(kf.obj)
		if err != nil {
			return nil, err
		}
		f, err := s.treeFile(kf.path, tree, kubeComments[kf.path])
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// kubeComments are what an operator should know before applying a file.
var kubeComments = map[string]string{
	"deployment.yaml": "# replicas is min_instances: applying this file again resets a Deployment the HPA has\n" +
		"# scaled out to that, until the HPA scales it back (the Helm chart behaves the same).\n",
	"servicemonitor.yaml": "# Needs the Prometheus Operator's CRDs; without them, leave this file out.\n",
	"scaledobject.yaml": "# Needs KEDA installed in the cluster. It takes the place of an HPA (KEDA creates one\n" +
		"# itself); deploy.autoscaler: hpa generates a plain HPA instead.\n",
}

// kubeObjects builds every Kubernetes object of the service.
func (s *spec) kubeObjects() (*kubeObjects, error) {
	if s.imageDefaulted {
		s.warn("deploy.image", "no image is set; using %q — set deploy.image or pass --image", s.image)
	} else if strings.HasSuffix(s.image, ":latest") || !strings.ContainsAny(s.image[strings.LastIndex(s.image, "/")+1:], ":@") {
		s.warn("deploy.image", "%q has no fixed tag, so a rollback may not run the code that ran before; tag images with a version or digest", s.image)
	}
	s.literalSecrets()
	dep, err := s.deployment()
	if err != nil {
		return nil, err
	}
	o := &kubeObjects{Deployment: dep, Service: s.kubeService(), PDB: s.pdb()}
	if kind, _ := Choose(s.c); kind == AutoscalerKEDA {
		o.ScaledObject = s.scaledObject()
	} else {
		o.HPA = s.hpa()
	}
	if s.c.Scaling.ServiceDiscovery.Method == config.DiscoveryKubernetes {
		o.ServiceAccount, o.Role, o.RoleBinding = s.rbac()
	}
	if s.c.Observability.ScalingMetrics.Enabled {
		o.ServiceMonitor = s.serviceMonitor()
	}
	return o, nil
}

// meta is the metadata of an object of the workload.
func (s *spec) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: s.namespace, Labels: maps.Clone(s.labels)}
}

// sharedMeta is the metadata of an object every version of a canary shares (the Service, its
// ServiceMonitor, the discovery RBAC): without version labels, so that generating for either
// version writes the same object.
func (s *spec) sharedMeta(name string) metav1.ObjectMeta {
	m := s.meta(name)
	delete(m.Labels, "version")
	delete(m.Labels, "app.kubernetes.io/version")
	return m
}

// serviceSelector selects the pods of every version.
func (s *spec) serviceSelector() map[string]string {
	return map[string]string{"app.kubernetes.io/name": s.name, "app.kubernetes.io/instance": s.name}
}

// deployment runs min_instances hardened pods with probes, drain and environment from the
// configuration.
func (s *spec) deployment() (*appsv1.Deployment, error) {
	c := s.c
	in := c.Scaling.Instances
	hc := c.Scaling.ServiceDiscovery.HealthCheck
	res, err := s.resources()
	if err != nil {
		return nil, err
	}
	fixed, literal := s.kubeEnv()

	period, timeout := hc.Interval.Seconds(), hc.Timeout.Seconds()
	httpProbe := func(path string) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}}
	}
	startPeriod := max(int32(startupPeriod), timeout)
	startFailures := max((in.Startup.InitialDelay.Seconds()+startPeriod-1)/startPeriod, 1)

	ports := []corev1.ContainerPort{{Name: "http", ContainerPort: s.port, Protocol: corev1.ProtocolTCP}}
	if s.metricsPort != 0 {
		ports = append(ports, corev1.ContainerPort{Name: "metrics", ContainerPort: s.metricsPort, Protocol: corev1.ProtocolTCP})
	}

	container := corev1.Container{
		Name:            s.name,
		Image:           s.image,
		ImagePullPolicy: pullPolicy(s.image),
		Ports:           ports,
		Env:             append(fixed, literal...),
		Resources:       res,
		// The startup probe holds the other two off for up to startup.initial_delay, so a slow
		// start is not killed and a fast one is not kept waiting.
		StartupProbe: &corev1.Probe{ProbeHandler: httpProbe(in.Startup.LivenessProbe),
			PeriodSeconds: startPeriod, TimeoutSeconds: timeout, SuccessThreshold: 1, FailureThreshold: startFailures},
		ReadinessProbe: &corev1.Probe{ProbeHandler: httpProbe(in.Startup.ReadinessProbe),
			PeriodSeconds: period, TimeoutSeconds: timeout,
			SuccessThreshold: int32(hc.HealthyThreshold), FailureThreshold: int32(hc.UnhealthyThreshold)},
		LivenessProbe: &corev1.Probe{ProbeHandler: httpProbe(in.Startup.LivenessProbe),
			PeriodSeconds: period, TimeoutSeconds: timeout,
			SuccessThreshold: 1, FailureThreshold: int32(hc.UnhealthyThreshold)},
		VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			RunAsNonRoot:             ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
	if d := int64(in.Shutdown.DrainTimeout.Seconds()); d > 0 {
		// Kubernetes removes the pod from the Service's endpoints while preStop runs: sleeping
		// drain_timeout lets every proxy and load balancer stop sending before SIGTERM. The
		// sleep action needs no shell in the image (Kubernetes 1.30 or later).
		container.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: d}}}
	}
	if lp := in.Startup.LivenessProbe; lp == "/health" || (c.Health.Enabled && lp == c.Health.Endpoint) {
		s.warn("scaling.instances.startup.liveness_probe", "%s is the health endpoint, which fails when a dependency (database, cache, another service) does, so an outage of one would restart every pod; point liveness at /live, which shoal's health package serves (Registry.Mount), and keep %s for readiness and monitoring", lp, lp)
	}
	sh := in.Shutdown
	if need := int64(sh.DrainTimeout.Seconds()) + int64(sh.GracefulTimeout.Seconds()); int64(sh.ForceTimeout.Seconds()) < need {
		s.warn("scaling.instances.shutdown.force_timeout", "%s is shorter than drain_timeout + graceful_timeout (%ds); terminationGracePeriodSeconds is %d so the instance keeps its whole graceful period after the drain", sh.ForceTimeout, need, need)
	}

	pod := corev1.PodSpec{
		Containers:                    []corev1.Container{container},
		TerminationGracePeriodSeconds: ptr(s.terminationGrace()),
		AutomountServiceAccountToken:  ptr(false),
		EnableServiceLinks:            ptr(false),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr(true),
			RunAsUser:      ptr(int64(nonRootUID)),
			RunAsGroup:     ptr(int64(nonRootUID)),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		TopologySpreadConstraints: []corev1.TopologySpreadConstraint{
			{MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.ScheduleAnyway,
				LabelSelector: &metav1.LabelSelector{MatchLabels: maps.Clone(s.selector)}},
			{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway,
				LabelSelector: &metav1.LabelSelector{MatchLabels: maps.Clone(s.selector)}},
		},
	}
	if c.Scaling.ServiceDiscovery.Method == config.DiscoveryKubernetes {
		// Kubernetes discovery watches EndpointSlices, so only then does the pod get a token,
		// for a ServiceAccount allowed nothing more.
		pod.ServiceAccountName = s.name
		pod.AutomountServiceAccountToken = ptr(true)
	}

	ann := maps.Clone(c.Scaling.ServiceDiscovery.Kubernetes.Annotations)
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: s.meta(s.workload),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(in.MinInstances)),
			Selector: &metav1.LabelSelector{MatchLabels: maps.Clone(s.selector)},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				// Surge first, never go below the replica count: with one replica,
				// maxUnavailable 1 would be an outage on every rollout.
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr(intstr.FromInt32(0)),
					MaxSurge:       ptr(intstr.FromString("25%")),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(s.labels), Annotations: ann},
				Spec:       pod,
			},
		},
	}
	return dep, nil
}

// resources converts deploy.resources; empty amounts are left unset.
func (s *spec) resources() (corev1.ResourceRequirements, error) {
	r := s.c.Deploy.Resources
	list := func(path string, a config.ResourceAmounts) (corev1.ResourceList, error) {
		l := corev1.ResourceList{}
		for _, q := range []struct {
			name corev1.ResourceName
			v    string
			key  string
		}{{corev1.ResourceCPU, a.CPU, "cpu"}, {corev1.ResourceMemory, a.Memory, "memory"}} {
			if q.v == "" {
				continue
			}
			v, err := resource.ParseQuantity(q.v)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %q is not a Kubernetes quantity", path, q.key, q.v)
			}
			l[q.name] = v
		}
		if len(l) == 0 {
			return nil, nil
		}
		return l, nil
	}
	req, err := list("deploy.resources.requests", r.Requests)
	if err != nil {
		return corev1.ResourceRequirements{}, err
	}
	lim, err := list("deploy.resources.limits", r.Limits)
	if err != nil {
		return corev1.ResourceRequirements{}, err
	}
	if _, ok := req[corev1.ResourceCPU]; !ok {
		s.warn("deploy.resources.requests.cpu", "is not set, so the HPA cannot compute CPU utilisation and target_cpu_utilization has no effect")
	}
	if _, ok := req[corev1.ResourceMemory]; !ok {
		s.warn("deploy.resources.requests.memory", "is not set, so the HPA cannot compute memory utilisation and target_memory_utilization has no effect")
	}
	return corev1.ResourceRequirements{Requests: req, Limits: lim}, nil
}

// kubeEnv is the container's environment: fixed is what shoal sets and what comes from the
// Secret; literal is app.env's plain values, in key order, which the Helm chart takes from
// values.yaml. No secret value is ever written: ${VAR} becomes a secretKeyRef.
func (s *spec) kubeEnv() (fixed, literal []corev1.EnvVar) {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	secret := func(name, key string, optional bool) corev1.EnvVar {
		ref := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: s.secretName}, Key: key}
		if optional {
			ref.Optional = ptr(true)
		}
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ref}}
	}
	if s.env != "" {
		fixed = append(fixed, corev1.EnvVar{Name: "SHOAL_ENV", Value: s.env}, corev1.EnvVar{Name: "ENVIRONMENT", Value: s.env})
	}
	fixed = append(fixed,
		corev1.EnvVar{Name: "PORT", Value: fmt.Sprint(s.port)},
		field("SHOAL_INSTANCE_ID", "metadata.name"),
		field("K8S_NAMESPACE", "metadata.namespace"),
		field("K8S_POD_NAME", "metadata.name"))
	optional := map[string]bool{}
	for _, v := range s.secrets {
		fixed = append(fixed, secret(v.Name, v.Name, v.Optional))
		optional[v.Name] = v.Optional
	}
	for _, e := range s.appEnv {
		switch {
		case e.Secret:
			fixed = append(fixed, secret(e.Key, e.Key, false))
		case e.Template != "":
			refs := references(e.Template)
			if len(refs) == 1 && refs[0].whole && !refs[0].hasDefault {
				if refs[0].name != e.Key { // the same name is already set above
					fixed = append(fixed, secret(e.Key, refs[0].name, optional[refs[0].name]))
				}
				continue
			}
			for _, r := range refs {
				if r.hasDefault {
					s.warn("app.env."+e.Key, "Kubernetes has no defaults in $(VAR) references: when %s is not in Secret %q the value keeps \"$(%s)\"; put it in the Secret", r.name, s.secretName, r.name)
				}
			}
			fixed = append(fixed, corev1.EnvVar{Name: e.Key, Value: kubeTemplate(e.Template)})
		default:
			literal = append(literal, corev1.EnvVar{Name: e.Key, Value: kubeEscape(e.Value)})
		}
	}
	return fixed, literal
}

// kubeEscape protects a literal from Kubernetes' $(VAR) expansion: $ becomes $$, which
// Kubernetes turns back into $.
func kubeEscape(v string) string { return strings.ReplaceAll(v, "$", "$$") }

// kubeTemplate rewrites ${NAME...} references into Kubernetes' $(NAME), which expands
// variables defined earlier in the container's env; $$ stays $$, Kubernetes' escape for $.
func kubeTemplate(t string) string {
	var b strings.Builder
	for i := 0; i < len(t); {
		switch {
		case strings.HasPrefix(t[i:], "$$"):
			b.WriteString("$$")
			i += 2
		case strings.HasPrefix(t[i:], "${") && strings.IndexByte(t[i:], '}') > 0:
			end := i + strings.IndexByte(t[i:], '}')
			refs := references(t[i : end+1])
			if len(refs) == 1 {
				b.WriteString("$(" + refs[0].name + ")")
			} else {
				b.WriteString(t[i : end+1])
			}
			i = end + 1
		default:
			b.WriteByte(t[i])
			i++
		}
	}
	return b.String()
}

// kubeService exposes the pods of every version on server.port; its type comes from
// scaling.service_discovery.kubernetes.service_type.
func (s *spec) kubeService() *corev1.Service {
	sd := s.c.Scaling.ServiceDiscovery
	lb := s.c.Scaling.LoadBalancer
	meta := s.sharedMeta(s.service)
	meta.Annotations = maps.Clone(sd.Kubernetes.Annotations)
	appProtocol := "http"
	if lb.UpstreamProtocol == "h2c" {
		appProtocol = "kubernetes.io/h2c"
	}
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			Selector: s.serviceSelector(),
			Ports: []corev1.ServicePort{{Name: "http", Port: s.servicePort, TargetPort: intstr.FromString("http"),
				Protocol: corev1.ProtocolTCP, AppProtocol: ptr(appProtocol)}},
		},
	}
	if s.metricsPort != 0 {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "metrics", Port: s.metricsPort,
			TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP, AppProtocol: ptr("http")})
	}
	switch t := sd.Kubernetes.ServiceType; t {
	case "Headless":
		svc.Spec.Type = corev1.ServiceTypeClusterIP
		svc.Spec.ClusterIP = corev1.ClusterIPNone
	default:
		svc.Spec.Type = corev1.ServiceType(t)
	}
	switch {
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		if lb.Algorithm != config.RoundRobin || lb.SessionAffinity {
			s.warn("scaling.load_balancer.algorithm", "a headless Service does not balance: clients resolve every ready pod and pick one themselves, so %s is not applied", lb.Algorithm)
		}
	case lb.Algorithm == config.IPHash || lb.SessionAffinity:
		svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		path := "scaling.load_balancer.algorithm"
		if lb.SessionAffinity {
			path = "scaling.load_balancer.session_affinity"
		}
		s.warn(path, "a Service pins clients by source IP (sessionAffinity: ClientIP, 3 hours), not by hash or cookie; use the istio target for hashing that survives pod changes")
	case lb.Algorithm != config.RoundRobin:
		s.warn("scaling.load_balancer.algorithm", "a Service spreads connections over ready pods without regard to load (kube-proxy), so %s is not applied; the istio target maps it to Envoy", lb.Algorithm)
	}
	return svc
}

// behavior is the HPA's scaling behaviour, the same policy the local fleet's autoscaler follows
// (package autoscale): the stabilisation windows are scale_up_cooldown and scale_down_cooldown,
// the policies and their select mode are observability.auto_scaling.scale_up and scale_down
// (the HPA's defaults unless set).
func (s *spec) behavior() *autoscalingv2.HorizontalPodAutoscalerBehavior {
	in := s.c.Scaling.Instances
	as := s.c.Observability.AutoScaling
	window := func(path string, d config.Duration) *int32 {
		w := d.Seconds()
		if w > hpaMaxWindow {
			s.warn(path, "%s is longer than the HPA's longest stabilisation window; using %ds", d, hpaMaxWindow)
			w = hpaMaxWindow
		}
		return ptr(w)
	}
	rules := func(path string, d config.Duration, b config.ScalingBehavior) *autoscalingv2.HPAScalingRules {
		r := &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: window(path, d)}
		switch b.SelectPolicy {
		case config.SelectMin:
			r.SelectPolicy = ptr(autoscalingv2.MinChangePolicySelect)
		case config.SelectDisabled:
			r.SelectPolicy = ptr(autoscalingv2.DisabledPolicySelect)
		default:
			r.SelectPolicy = ptr(autoscalingv2.MaxChangePolicySelect)
		}
		for _, p := range b.Policies {
			t := autoscalingv2.PodsScalingPolicy
			if p.Type == config.PolicyPercent {
				t = autoscalingv2.PercentScalingPolicy
			}
			r.Policies = append(r.Policies, autoscalingv2.HPAScalingPolicy{Type: t, Value: int32(p.Value), PeriodSeconds: p.Period.Seconds()})
		}
		return r
	}
	return &autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleUp:   rules("scaling.instances.scale_up_cooldown", in.ScaleUpCooldown, as.ScaleUp),
		ScaleDown: rules("scaling.instances.scale_down_cooldown", in.ScaleDownCooldown, as.ScaleDown),
	}
}

// resourceMetric is an HPA metric on a container resource's utilisation of its request.
func resourceMetric(name corev1.ResourceName, percent int) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name:   name,
		Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(int32(percent))},
	}}
}

// hpa scales the Deployment between min_instances and max_instances on CPU and memory.
func (s *spec) hpa() *autoscalingv2.HorizontalPodAutoscaler {
	in := s.c.Scaling.Instances
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: s.meta(s.workload),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: s.workload},
			MinReplicas:    ptr(int32(in.MinInstances)),
			MaxReplicas:    int32(in.MaxInstances),
			Metrics: []autoscalingv2.MetricSpec{
				resourceMetric(corev1.ResourceCPU, in.TargetCPUUtilization),
				resourceMetric(corev1.ResourceMemory, in.TargetMemoryUtilization),
			},
			Behavior: s.behavior(),
		},
	}
}

// pdb allows one voluntary disruption at a time. That keeps at least min_instances−1 pods up
// (the Deployment never runs fewer than min_instances), keeps as many up as possible when the
// HPA has scaled out, and unlike minAvailable: min_instances−1 it neither blocks node drains
// with a single replica nor lets a drain take half a scaled-out fleet at once.
func (s *spec) pdb() *policyv1.PodDisruptionBudget {
	policy := policyv1.AlwaysAllow
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: s.meta(s.workload),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: maps.Clone(s.selector)},
			// A pod that is not ready serves nothing; evicting it must not wait for the budget.
			UnhealthyPodEvictionPolicy: &policy,
		},
	}
}

// serviceMonitor has the Prometheus Operator scrape the Service where metrics are served.
func (s *spec) serviceMonitor() *crd.ServiceMonitor {
	port := "http"
	if s.metricsPort != 0 {
		port = "metrics"
	}
	return &crd.ServiceMonitor{
		TypeMeta:   metav1.TypeMeta{APIVersion: crd.MonitoringAPIVersion, Kind: "ServiceMonitor"},
		ObjectMeta: s.sharedMeta(s.service),
		Spec: crd.ServiceMonitorSpec{
			Selector:          metav1.LabelSelector{MatchLabels: s.serviceSelector()},
			NamespaceSelector: &crd.NamespaceSelector{MatchNames: []string{s.namespace}},
			Endpoints:         []crd.Endpoint{{Port: port, Path: s.metricsPath}},
		},
	}
}

// rbac lets Kubernetes discovery read the namespace's Endpoints and EndpointSlices, and nothing
// else. EndpointSlice names are generated, so the Role cannot name them.
func (s *spec) rbac() (*corev1.ServiceAccount, *rbacv1.Role, *rbacv1.RoleBinding) {
	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: s.sharedMeta(s.name),
		// Pods opt in (automountServiceAccountToken on the pod); nothing else gets the token.
		AutomountServiceAccountToken: ptr(false),
	}
	verbs := []string{"get", "list", "watch"}
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: s.sharedMeta(s.name + "-discovery"),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"endpoints"}, Verbs: verbs},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: verbs},
		},
	}
	binding := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: s.sharedMeta(s.name + "-discovery"),
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: s.namespace}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
	}
	return sa, role, binding
}

// pullPolicy is what Kubernetes defaults to, written out so the chart's image.pullPolicy
// renders the same: Always for an image without a tag or tagged latest, IfNotPresent otherwise.
func pullPolicy(image string) corev1.PullPolicy {
	if _, tag := splitImage(image); (tag == "" || tag == "latest") && !strings.Contains(image, "@") {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// ptr returns a pointer to a copy of v.
func ptr[T any](v T) *T { return &v }
