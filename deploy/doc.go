// Package deploy generates, from one loaded configuration, what runs the service elsewhere:
// Kubernetes objects, a Helm chart, a KEDA ScaledObject, Istio routing, and a docker-compose
// development stack with its nginx.conf. `shoal generate` is its command line.
//
// Every Kubernetes object is built from the typed API structs (k8s.io/api, and the minimal
// structs of package crd for ServiceMonitor, ScaledObject, VirtualService and
// DestinationRule), compose files from typed structs, nginx.conf from a small directive tree;
// YAML is written by sigs.k8s.io/yaml with sorted keys. The output cannot be malformed, and the
// same configuration gives byte-identical files. Each file opens with a header naming its
// target (GeneratedBy reads it back).
//
// # Decisions
//
// Secrets are never written. Every ${VAR} of the configuration (config.Meta.Templates keeps the
// raw values) and every override variable the loader applied (DATABASE_URL ...) becomes an
// environment variable of the same name read from the Secret deploy.secret_name (default
// "<name>-secrets") with secretKeyRef — optional when the configuration has a default or does
// not use the value, as the seed's consul token under kubernetes discovery. shoal does not
// generate the Secret: a manifest with placeholder data, applied by mistake, would overwrite
// the real one, so the kubernetes and helm targets print the `kubectl create secret` command
// instead (and the chart's NOTES.txt repeats it). app.env values that look like secrets are
// read from the Secret too; secrets written literally into the configuration are warned about.
// The compose stack takes them from the environment (${VAR:?...}), never from the file.
//
// Shutdown: preStop sleeps shutdown.drain_timeout (the sleep action, Kubernetes 1.30 or
// later; no shell needed in the image) while the pod leaves the Service's endpoints, then the
// container gets SIGTERM and graceful_timeout to exit. terminationGracePeriodSeconds counts
// from the start of both, so it is drain_timeout + graceful_timeout, raised to force_timeout
// when that is longer, since force_timeout is when shoal itself kills an instance.
//
// The PodDisruptionBudget allows one voluntary disruption at a time (maxUnavailable: 1) rather
// than minAvailable: min_instances−1. It keeps at least min_instances−1 pods up, as the issue
// asks, since the Deployment never runs fewer than min_instances; with min_instances 1 it does
// not block node drains forever, as minAvailable 1 would; and when the HPA has scaled out it
// does not let a drain take all but min_instances−1 pods at once. Pods that are not ready may
// always be evicted (unhealthyPodEvictionPolicy: AlwaysAllow).
//
// Probes: a startup probe on the liveness path gives an instance up to startup.initial_delay
// to start; readiness and liveness then run every health_check.interval with its timeout,
// readiness needing healthy_threshold passes and both unhealthy_threshold failures.
// RollingUpdate surges by 25% and never goes below the replica count (maxUnavailable 0).
//
// Load balancing has no exact equivalent everywhere, and each target says so in a warning:
// a Kubernetes Service cannot balance by load and pins by client IP for ip_hash and
// session_affinity; Istio maps ip_hash to consistentHash.useSourceIp with a Maglev table (the
// address the calling Envoy sees, which behind a load balancer that hides client addresses is
// the balancer's — session_affinity then hashes the cookie shoal_affinity instead); nginx maps
// p2c_ewma to `random two least_conn`.
//
// One autoscaler per Deployment, never two, since an HPA and a KEDA ScaledObject (which makes
// an HPA of its own) fight: Choose picks it from deploy.autoscaler, and under "auto" picks KEDA
// only when an enabled auto_scaling rule scales up on latency, connections or queue depth,
// which an HPA cannot express. The kubernetes target and the chart write that one (hpa.yaml or
// scaledobject.yaml) and say which in a note; the keda target is the ScaledObject alone.
//
// Pods are selected by app.kubernetes.io/name and app.kubernetes.io/instance, as `helm create`
// does (the instance is the release in the chart, the service's name elsewhere), and carry the
// version labels of the image that runs: its tag, unless a canary pins version:. The chart
// names every object after its release, so two releases share a namespace; installed as a
// release named after the service it renders the kubernetes target's objects but for the
// labels only Helm sets (helm.sh/chart, managed-by Helm).
//
// Liveness is the configuration's liveness_probe (default /live); pointing it at the
// aggregated /health is warned about, since a dependency's outage would restart every pod.
//
// nginx -t: nginx resolves upstream host names when it loads its configuration, and the
// compose service name "app" resolves only inside the compose network, so the test runs
// nginx -t on the generated file with each upstream host put on 127.0.0.1 — nothing else
// changed — as the issue asks ("with upstreams on localhost").
package deploy
