package dns

import (
	"fmt"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
)

func init() {
	discovery.RegisterBackend(config.DiscoveryDNS, discovery.Backend{
		NewProvider: func(cfg *config.Config, _ discovery.BackendOptions) (discovery.Provider, error) {
			return New(FromConfig(cfg.Scaling.ServiceDiscovery))
		},
		NewRegistrar: func(cfg *config.Config, o discovery.BackendOptions) (discovery.Registrar, error) {
			sd := cfg.Scaling.ServiceDiscovery
			if sd.DNS.Update.Server == "" {
				return nil, fmt.Errorf("dns discovery: %w: set scaling.service_discovery.dns.update.server to a server accepting RFC 2136 updates", discovery.ErrNoRegistry)
			}
			u := UpdateFromConfig(sd)
			u.Logger = o.Logger
			return NewRegistrar(FromConfig(sd), u)
		},
		Describe: func(cfg *config.Config) string {
			o := FromConfig(cfg.Scaling.ServiceDiscovery)
			o.setDefaults()
			at := o.Resolver
			if at == "" {
				at = "the system resolver"
			}
			return fmt.Sprintf("dns %s records of %s via %s", o.RecordType, o.Name, at)
		},
	})
}
