package discovery

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"

	"github.com/shoal-sh/shoal/config"
)

// ErrNoRegistry is returned by [NewRegistrar] for a method that has no
// registry to write to: static (the list is the configuration) and
// kubernetes (the pod's readiness is its registration; nothing is written to
// the API server).
var ErrNoRegistry = errors.New("discovery: this method has no registry to register instances in")

// Backend is what a discovery method's package registers with
// [RegisterBackend], so that code holding only a configuration —
// `shoal proxy`, `shoal up`, [RegisterSelf] — can open it. Backends live in
// sub-packages (discovery/dns, discovery/etcd, discovery/consul,
// discovery/kubernetes) that register themselves when imported;
// discovery/backends imports them all.
type Backend struct {
	// NewProvider returns the method's watchable source of instances for the
	// service the configuration names. It must not block on the network: an
	// unreachable registry is reported by the provider's events.
	NewProvider func(cfg *config.Config, opts BackendOptions) (Provider, error)
	// NewRegistrar returns the method's registrar, or [ErrNoRegistry]. Nil
	// means ErrNoRegistry.
	NewRegistrar func(cfg *config.Config, opts BackendOptions) (Registrar, error)
	// Describe says where the instances come from, for logs and
	// `shoal scaling status`, e.g. "etcd 127.0.0.1:2379 /shoal/services/api".
	// Nil means the method's name.
	Describe func(cfg *config.Config) string
}

// BackendOptions are what a backend gets besides the configuration.
type BackendOptions struct {
	// Logger receives the backend's warnings (a lost lease, a retried
	// registration). Never nil when a backend is called through this package.
	Logger *slog.Logger
}

var (
	backendsMu sync.RWMutex
	backends   = map[string]Backend{
		config.DiscoveryStatic: {
			NewProvider: func(cfg *config.Config, _ BackendOptions) (Provider, error) {
				return Static(cfg.Scaling.ServiceDiscovery.Static)
			},
			Describe: func(cfg *config.Config) string {
				return fmt.Sprintf("static list (%d instances)", len(cfg.Scaling.ServiceDiscovery.Static.Instances))
			},
		},
	}
)

// RegisterBackend makes the backend available under method, the value of
// scaling.service_discovery.method. Backend packages call it from init; a
// second registration of a method replaces the first.
func RegisterBackend(method string, b Backend) {
	if b.NewProvider == nil {
		panic("discovery: RegisterBackend " + method + " without NewProvider")
	}
	backendsMu.Lock()
	defer backendsMu.Unlock()
	backends[method] = b
}

// backendPackages says which package to import for each method of the
// configuration, for the error of an unknown method.
var backendPackages = map[string]string{
	config.DiscoveryDNS:        "github.com/shoal-sh/shoal/discovery/dns",
	config.DiscoveryConsul:     "github.com/shoal-sh/shoal/discovery/consul",
	config.DiscoveryKubernetes: "github.com/shoal-sh/shoal/discovery/kubernetes",
	config.DiscoveryEtcd:       "github.com/shoal-sh/shoal/discovery/etcd",
}

// backend returns the backend of cfg's method.
func backend(cfg *config.Config) (Backend, error) {
	method := cfg.Scaling.ServiceDiscovery.Method
	backendsMu.RLock()
	b, ok := backends[method]
	backendsMu.RUnlock()
	if ok {
		return b, nil
	}
	if pkg, known := backendPackages[method]; known {
		return Backend{}, fmt.Errorf("discovery method %q is not linked into this program; import _ %q (or discovery/backends for every method)", method, pkg)
	}
	return Backend{}, fmt.Errorf("scaling.service_discovery.method %q is not one of %v", method, Methods())
}

// Methods returns the methods registered so far, sorted.
func Methods() []string {
	backendsMu.RLock()
	defer backendsMu.RUnlock()
	out := make([]string, 0, len(backends))
	for m := range backends {
		out = append(out, m)
	}
	sort.Strings(out)
	return slices.Clip(out)
}

func withLogger(opts BackendOptions) BackendOptions {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return opts
}

// NewProvider returns the provider of the configured method, wrapped in a
// [Tracker] described by the backend.
func NewProvider(cfg *config.Config, opts BackendOptions) (*Tracker, error) {
	b, err := backend(cfg)
	if err != nil {
		return nil, err
	}
	p, err := b.NewProvider(cfg, withLogger(opts))
	if err != nil {
		return nil, err
	}
	return Track(Describe(cfg), p, nil), nil
}

// NewRegistrar returns the registrar of the configured method, or
// [ErrNoRegistry] (wrapped) when the method has none.
func NewRegistrar(cfg *config.Config, opts BackendOptions) (Registrar, error) {
	b, err := backend(cfg)
	if err != nil {
		return nil, err
	}
	if b.NewRegistrar == nil {
		return nil, fmt.Errorf("%s discovery: %w", cfg.Scaling.ServiceDiscovery.Method, ErrNoRegistry)
	}
	return b.NewRegistrar(cfg, withLogger(opts))
}

// Describe says where the configured method finds instances.
func Describe(cfg *config.Config) string {
	b, err := backend(cfg)
	if err != nil || b.Describe == nil {
		return cfg.Scaling.ServiceDiscovery.Method
	}
	return b.Describe(cfg)
}
