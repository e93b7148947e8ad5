// Package dns discovers the instances of a service in DNS, as the seed's
// scaling.service_discovery.dns block configures: a [Provider] resolves a name
// every refresh interval and delivers the instances it finds through the
// [discovery.Provider] contract.
//
// # Record types
//
// With record type "A", the name's A and AAAA records are the instances'
// addresses and every instance serves on the configured port (the seed's
// service_discovery.port): http://10.0.0.7:8080, http://[fd00::7]:8080.
//
// With "SRV", each record names a target host and a port, and its weight
// becomes the instance's weight (raised to at least 1). Only the records of
// the lowest priority value are used: RFC 2782 makes the others backups to be
// tried only when those are unreachable, and the proxy balances over every
// instance it is given. A target of "." (the service is decidedly not
// available there) and a port of 0 are skipped. A target's addresses come from
// the response's additional section when it has any for that target, else
// from A and AAAA queries; a target with no addresses is skipped. When several
// records lead to the same address and port, the largest weight is kept.
//
// Every instance's ID is its URL, and Meta[MetaHostname] is the host name the
// address belongs to (the resolved name for A records, the target for SRV),
// e.g. for the TLS server name of an https instance. Record TTLs are
// honoured: the name is resolved again every refresh interval, or when the
// smallest TTL of the records used runs out if that is sooner (but not more
// often than Options.MinRefresh, 1s by default, for records with a TTL of 0).
//
// # Empty sets and errors
//
// A name the server answers with NXDOMAIN (no such name) or NOERROR without
// records of the type asked (NODATA) has no instances: that is an empty set,
// not an error, because it is the server's authoritative statement. Anything
// else — no answer within the timeout, SERVFAIL, REFUSED, a response that
// cannot be parsed — is an error ([*QueryError]): the event carries it and the
// consumer keeps the last good set. For SRV, an error resolving any target
// fails the whole resolution, so that a partial set never replaces a complete
// one. CNAME chains are followed, within a response and by asking for the
// chain's end.
//
// # Servers
//
// Queries go to Options.Resolver when it is set, with the name taken as fully
// qualified. Otherwise they go to the name servers of /etc/resolv.conf, read
// once by [New] and tried in order (127.0.0.1:53 when it lists none or cannot
// be read), and a name without a trailing dot is completed with its search
// domains and ndots option like the system resolver does — so that "api"
// finds api.default.svc.cluster.local in a Kubernetes pod. The first candidate
// name that has records wins. Queries use UDP with EDNS0 (1232 bytes) and are
// repeated over TCP when the response is truncated.
package dns
