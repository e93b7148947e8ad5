package etcd

import (
	"fmt"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
)

func init() {
	discovery.RegisterBackend(config.DiscoveryEtcd, discovery.Backend{
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
			return fmt.Sprintf("etcd %v %s", opts.Endpoints, opts.dir())
		},
	})
}
