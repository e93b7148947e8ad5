package discovery_test

import (
	"net/url"
	"testing"

	"github.com/shoal-sh/shoal/discovery"
)

func TestInstance_Equal(t *testing.T) {
	t.Parallel()
	base := func() discovery.Instance {
		return discovery.Instance{ID: "a", URL: &url.URL{Scheme: "http", Host: "h:1"}, Weight: 1}
	}
	for _, tc := range []struct {
		name   string
		change func(*discovery.Instance)
		equal  bool
	}{
		{"Same", func(*discovery.Instance) {}, true},
		{"EmptyMetaIsNilMeta", func(i *discovery.Instance) { i.Meta = map[string]string{} }, true},
		{"ID", func(i *discovery.Instance) { i.ID = "b" }, false},
		{"URL", func(i *discovery.Instance) { i.URL = &url.URL{Scheme: "https", Host: "h:1"} }, false},
		{"NilURL", func(i *discovery.Instance) { i.URL = nil }, false},
		{"Weight", func(i *discovery.Instance) { i.Weight = 2 }, false},
		{"Meta", func(i *discovery.Instance) { i.Meta = map[string]string{"version": "v2"} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := base(), base()
			tc.change(&b)
			if got := a.Equal(b); got != tc.equal {
				t.Fatalf("Equal = %v, want %v", got, tc.equal)
			}
			if got := b.Equal(a); got != tc.equal {
				t.Fatalf("Equal reversed = %v, want %v", got, tc.equal)
			}
		})
	}
}
