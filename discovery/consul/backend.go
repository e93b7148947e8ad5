package consul

import (
	"fmt"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
)

func init() {
	discovery.RegisterBackend(config.DiscoveryConsul, discovery.Backend{
		NewProvider: func(cfg *config.Config, o discovery.BackendOptions) (discovery.Provider, error) {
			opts := FromConfig(cfg.Scaling.ServiceDiscovery)
			opts.Logger = o.Logger
			return New(opts)
		},
		NewRegistrar: func(cfg *config.Config, o discovery.BackendOptions) (discovery.Registrar, error) {
			opts := FromConfig(cfg.Scaling.ServiceDiscovery)
			opts.Logger = o.Logger
			return NewRegistrar(opts)
		},
		Describe: func(cfg *config.Config) string {
			opts := FromConfig(cfg.Scaling.ServiceDiscovery)
			opts.setDefaults()
			dc := opts.Datacenter
			if dc == "" {
				dc = "the agent's datacenter"
			}
			return fmt.Sprintf("consul %s service %q (%s, passing only)", opts.Address, opts.Service, dc)
		},
	})
}
