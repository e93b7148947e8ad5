package kubernetes

import (
	"fmt"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
)

func init() {
	discovery.RegisterBackend(config.DiscoveryKubernetes, discovery.Backend{
		NewProvider: func(cfg *config.Config, o discovery.BackendOptions) (discovery.Provider, error) {
			opts := FromConfig(cfg.Scaling.ServiceDiscovery)
			opts.Logger = o.Logger
			return New(opts)
		},
		// No registrar: the pod's readiness is its registration.
		Describe: func(cfg *config.Config) string {
			sd := cfg.Scaling.ServiceDiscovery
			return fmt.Sprintf("kubernetes EndpointSlices of %s/%s, port %q", sd.Namespace, sd.ServiceName, sd.Kubernetes.PortName)
		},
	})
}
