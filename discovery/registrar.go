package discovery

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotRegistered is returned by [Registrar.SetHealth] and
// [Registrar.Drain] for an ID that was not registered through that
// Registrar (or was deregistered since).
var ErrNotRegistered = errors.New("discovery: instance is not registered")

// InvalidInstanceError is returned by [Registrar.Register] for an instance the
// registry cannot hold: no ID, no URL, or a URL the backend cannot express.
type InvalidInstanceError struct {
	// ID of the instance, possibly empty.
	ID string
	// Reason says what is wrong and how to fix it.
	Reason string
}

// Error implements error.
func (e *InvalidInstanceError) Error() string {
	return fmt.Sprintf("discovery: cannot register instance %q: %s", e.ID, e.Reason)
}

// Registrar puts instances into a registry that the [Provider] of the same
// backend reads: the seed's ServiceDiscovery register_instance,
// update_health, mark_draining and deregister. One Registrar may hold many
// instances (the fleet under `shoal up` registers each of its own), told
// apart by their IDs. Its methods are safe for concurrent use.
//
// What the Provider of the same registry then delivers:
//
//   - after Register, the instance, healthy and not draining, with its ID,
//     URL, Weight and Meta (a backend may add Meta keys of its own; DNS keeps
//     only the address, so there the ID is the URL);
//   - after SetHealth(id, false), nothing for it, until SetHealth(id, true);
//   - after Drain, the instance with Draining set — or, where the registry
//     cannot mark an instance (DNS), nothing for it. Either way the proxy
//     sends it no new requests. It stays draining until Deregister or a new
//     Register, whatever SetHealth says;
//   - after Deregister, nothing for it.
type Registrar interface {
	// Register adds in to the registry, healthy and not draining, replacing
	// an instance with the same ID, and keeps it there — renewing its lease
	// or TTL in the background, and registering it again should the registry
	// lose it — until Deregister or Close. It returns once the registry has
	// it, or with why not: an [*InvalidInstanceError], or the backend's error
	// (the registry is unreachable, the token refused); the caller may retry.
	Register(ctx context.Context, in Instance) error
	// SetHealth reports the instance healthy or not: an unhealthy instance
	// stays registered but providers do not deliver it. [ErrNotRegistered]
	// for an unknown ID.
	SetHealth(ctx context.Context, id string, healthy bool) error
	// Drain marks the instance as leaving; see the type's documentation.
	// [ErrNotRegistered] for an unknown ID.
	Drain(ctx context.Context, id string) error
	// Deregister removes the instance from the registry and stops keeping it
	// alive. Deregistering an unknown ID is not an error.
	Deregister(ctx context.Context, id string) error
	// Close stops the background work and releases connections. It does not
	// deregister: instances still registered disappear when their lease or
	// TTL runs out, as if the process had died. Call Deregister first to
	// leave gracefully.
	Close() error
}

// CheckInstance returns an [*InvalidInstanceError] for an instance without an
// ID or an http(s) URL with a host; backends call it first in Register.
func CheckInstance(in Instance) error {
	switch {
	case in.ID == "":
		return &InvalidInstanceError{Reason: "it has no ID; give each instance an ID unique in its service"}
	case in.URL == nil || in.URL.Host == "":
		return &InvalidInstanceError{ID: in.ID, Reason: "it has no URL with a host; give scheme://host:port"}
	case in.URL.Scheme != "http" && in.URL.Scheme != "https":
		return &InvalidInstanceError{ID: in.ID, Reason: fmt.Sprintf("its URL %s is not http:// or https://", in.URL.Redacted())}
	}
	return nil
}
