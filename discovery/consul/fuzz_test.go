package consul

import (
	"encoding/json"
	"testing"

	"github.com/hashicorp/consul/api"
)

// FuzzInstance feeds arbitrary /v1/health/service answers to the conversion
// into instances: no panic, and what is accepted is usable.
func FuzzInstance(f *testing.F) {
	f.Add(`[{"Node": {"Address": "10.0.0.1"}, "Service": {"ID": "a", "Port": 80, "Weights": {"Passing": 2}, "Meta": {"shoal_draining": "true", "v": "1"}}}]`)
	f.Add(`[{"Service": {"ID": "b", "Address": "fd00::1", "Port": 443, "Meta": {"shoal_scheme": "https"}}}]`)
	f.Add(`[{"Service": {"ID": "", "Port": 0}}, null, {}]`)
	f.Add(`[{"Service": {"ID": "c", "Address": "a b%zz", "Port": 70000, "Weights": {"Passing": 100000}}}]`)
	f.Fuzz(func(t *testing.T, body string) {
		var entries []*api.ServiceEntry
		if json.Unmarshal([]byte(body), &entries) != nil {
			return
		}
		for _, e := range entries {
			in, err := instance(e)
			if err != nil {
				continue
			}
			if in.ID == "" || in.URL == nil || in.URL.Host == "" || in.Weight < 1 || in.Weight > 1000 {
				t.Errorf("accepted an unusable instance %+v", in)
			}
			if _, ok := in.Meta[metaDraining]; ok {
				t.Errorf("shoal's own Meta key delivered: %+v", in.Meta)
			}
		}
	})
}
