package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/shoal-sh/shoal/admin"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
)

// upDiscovery returns what the proxy of `shoal up` watches — the fleet's own set, the
// static instances, and, when the method has a registry (etcd, consul, dns with
// dns.update.server), that registry — tracked for the status, and the registrar the fleet
// registers its instances with (nil when the method has none: static, kubernetes, whose
// pods' readiness is their registration, and dns without update.server).
func upDiscovery(c *config.Config, set *discovery.Set, log *slog.Logger) (*discovery.Tracker, discovery.Registrar, string, error) {
	sd := c.Scaling.ServiceDiscovery
	sources := []discovery.Provider{set}
	source := "the fleet's own instances"
	if len(sd.Static.Instances) > 0 {
		static, err := discovery.Static(sd.Static)
		if err != nil {
			return nil, nil, "", err
		}
		sources = append(sources, static)
		source += " + " + discovery.Describe(c)
	}
	if sd.Method == config.DiscoveryStatic {
		return discovery.Track(source, discovery.Merge(sources...), nil), nil, "", nil
	}
	registrar, err := discovery.NewRegistrar(c, discovery.BackendOptions{Logger: log})
	if errors.Is(err, discovery.ErrNoRegistry) {
		log.Info("service discovery has no registry to register the fleet's instances in; the local proxy routes to them directly",
			"method", sd.Method, "why", err.Error())
		return discovery.Track(source, discovery.Merge(sources...), nil), nil, "", nil
	}
	if err != nil {
		return nil, nil, "", err
	}
	remote, err := discovery.NewProvider(c, discovery.BackendOptions{Logger: log})
	if err != nil {
		registrar.Close()
		return nil, nil, "", err
	}
	registry := discovery.Describe(c)
	return discovery.Track(source+" + "+registry, discovery.Merge(append(sources, remote)...), nil), registrar, registry, nil
}

// printDiscovery writes where the proxy's instances come from, when the set last changed,
// and the source's error while the last good set stays in use.
func printDiscovery(w io.Writer, st admin.Status, now time.Time) {
	if d := st.Discovery; d != nil {
		line := d.Source
		switch {
		case !d.Synced:
			line += "; no set read yet"
		default:
			line += fmt.Sprintf("; %d instances", d.Instances)
			if d.Draining > 0 {
				line += fmt.Sprintf(" (%d draining)", d.Draining)
			}
			line += ", last changed " + roundDur(now.Sub(d.Changed)) + " ago"
		}
		fmt.Fprintf(w, "discovery\t%s\n", line)
		if d.Error != "" {
			fmt.Fprintf(w, "discovery error\t%s (since %s ago; the last good set stays in use)\n", oneLine(d.Error), roundDur(now.Sub(d.ErrorSince)))
		}
	}
	if st.Registry != "" {
		fmt.Fprintf(w, "registered in\t%s (drain, wait drain_timeout, deregister on the way out)\n", st.Registry)
	}
}
