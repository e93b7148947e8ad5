// Package discovery says which instances of a service exist and where they
// are: the [Provider] interface that shoal's reverse proxy watches, and the
// in-memory [Set] that the local fleet registers its instances with.
//
// A Provider delivers [Event] values on a channel: each is either the complete
// current set of instances or an error from the source, in which case the
// consumer keeps the last good set. Sets are deduplicated (an unchanged set is
// not sent again) and coalesced (a consumer that reads slowly gets the latest
// set, not a backlog), so the source never blocks on a consumer. [Feed]
// implements exactly that delivery and is what every provider in shoal is
// built on; a new backend should use it too and pass the conformance suite in
// package discoverytest.
//
// Backends live in sub-packages so that importing this package stays cheap:
// discovery/dns resolves A, AAAA or SRV records. This package provides
//
//   - [Set], membership changed in code (the fleet under `shoal up`);
//   - [Static], a Set from the seed's scaling.service_discovery.static block;
//   - [Merge], the union of several providers (the fleet's own instances plus
//     the static ones).
//
// The consumer side typically looks like this:
//
//	for ev := range provider.Watch(ctx) {
//		if ev.Err != nil {
//			log.Printf("discovery: %v (keeping %d instances)", ev.Err, len(current))
//			continue
//		}
//		current = ev.Instances
//		picker.Update(backendsFor(current))
//	}
package discovery
