// Package etcd discovers and registers a service's instances in etcd, as
// go-zero and Kratos users run it: `scaling.service_discovery.method: etcd`.
//
// # Keys
//
// Each instance is one key, prefix/service/<instance ID> (prefix defaults
// to /shoal/services), whose value is JSON:
//
//	{"url": "http://10.0.0.7:8080", "weight": 1, "meta": {"version": "v2"}, "healthy": true, "draining": false}
//
// A [Registrar] puts its instances' keys on one lease of LeaseTTL that it
// keeps alive in the background, so that the keys of a process that dies —
// SIGKILL included — disappear when the lease runs out. SetHealth and Drain
// rewrite the value; Deregister deletes the key. When the keep-alive fails
// for a whole TTL (etcd was away) or etcd reports the lease gone, the
// registrar takes a new lease and puts every key again, retrying with
// backoff, so that an etcd outage longer than the TTL does not lose the
// registrations for good.
//
// # Watching
//
// A [Provider] reads every key under prefix/service/ and then follows them
// with an etcd watch from the revision it read, so that no change between
// the read and the watch is missed. Instances whose value says
// "healthy": false are left out; "draining": true is delivered as
// [discovery.Instance.Draining]. A key that is not shoal's JSON, or not
// directly under the service, is skipped with a warning in the log (once per
// revision of the key), never delivered and never fatal.
//
// When etcd compacts away the revision a watch was to resume from, the
// provider reads the keys again in full. An idle watch does not notice that
// etcd went away, so the provider asks etcd every ProbeInterval; when that
// fails it delivers an error (the consumer keeps the last good set), probes
// again with backoff, and once etcd answers it reads the keys in full and
// watches from there, delivering the set even when it is unchanged, so that
// the consumer learns etcd is back.
//
// Importing the package registers the method "etcd" with
// [discovery.RegisterBackend].
package etcd
