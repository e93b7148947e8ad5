// Package kubernetes discovers a service's instances from the EndpointSlices
// of its Kubernetes Service: `scaling.service_discovery.method: kubernetes`.
//
// A [Provider] runs an informer on the EndpointSlices labelled
// kubernetes.io/service-name=<service> in the configured namespace and merges
// the endpoints of all of them into one set. The informer lists them once,
// then watches, relisting after a watch is lost; the label selector is sent to
// the API server and checked again on every object received, because not
// every source honours it (client-go's fake clientset ignores selectors in
// watches).
//
// # Which port
//
// Each instance serves on the slice's port named PortName ("http" by
// default, the name `shoal generate kubernetes` gives the Service port) —
// not simply the first port, as some registries take. When no port has that
// name, the port numbered Port (service_discovery.port) is used; a slice
// with neither contributes no instance and a warning is logged.
//
// # Endpoint conditions
//
//   - ready (or ready unset, which the API defines as ready): an instance;
//   - not ready but serving and terminating: an instance with Draining set —
//     the pod is shutting down and finishes its requests, but the proxy sends
//     it no new ones;
//   - anything else (not ready, not serving): no instance.
//
// An address that appears in two slices (as during a slice's hand-over) is
// one instance, and a non-draining one wins. Instances are identified by
// their URL, and Meta carries the pod ("pod"), node ("node") and zone
// ("zone") when the slice names them.
//
// # Registration
//
// Kubernetes needs no registrar: a pod's readiness probe is its
// registration, and the EndpointSlice controller turns it into the
// conditions above. Nothing is written to the API server; the package
// registers the method with [discovery.RegisterBackend] with no registrar, and
// discovery.RegisterSelf refuses it. To drain, fail the pod's readiness (the
// health package's Registry.SetDraining does).
//
// # Errors
//
// A failed list or watch is delivered as an error event (the consumer keeps
// the last good set) while the informer retries with its backoff. The
// relist after it delivers the set again, changed or not, when the service
// has at least one EndpointSlice (the informer reports every listed object);
// a service without any slice stays at its empty set until one appears.
package kubernetes
