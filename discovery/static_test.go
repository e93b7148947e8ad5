package discovery_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
)

func TestStatic(t *testing.T) {
	t.Parallel()

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		s, err := discovery.Static(config.StaticDiscovery{Instances: []config.StaticInstance{
			{URL: "http://127.0.0.1:9001", Weight: 5},
			{URL: "HTTPS://API.example.com/"},        // default port, lowercased, weight 0 means 1
			{URL: "http://[::1]:9002", Weight: 1000}, // IPv6
		}})
		if err != nil {
			t.Fatal(err)
		}
		got := s.Instances()
		want := []struct {
			id     string
			weight int
		}{
			{"http://127.0.0.1:9001", 5},
			{"http://[::1]:9002", 1000},
			{"https://api.example.com:443", 1},
		}
		if len(got) != len(want) {
			t.Fatalf("got %v", ids(got))
		}
		for n, w := range want {
			if got[n].ID != w.id || got[n].URL.String() != w.id || got[n].Weight != w.weight {
				t.Errorf("instance %d = {%s %s %d}, want {%s %s %d}", n, got[n].ID, got[n].URL, got[n].Weight, w.id, w.id, w.weight)
			}
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		s, err := discovery.Static(config.StaticDiscovery{})
		if err != nil || len(s.Instances()) != 0 {
			t.Fatalf("got %v, %v; want an empty set", s, err)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		_, err := discovery.Static(config.StaticDiscovery{Instances: []config.StaticInstance{
			{URL: "http://127.0.0.1:9001", Weight: 1},
			{URL: "", Weight: 1},
			{URL: "ftp://h:21", Weight: 1},
			{URL: "http://127.0.0.1:9001/", Weight: 1},
			{URL: "http://h:1/api", Weight: 1},
			{URL: "http://u:p@h:1", Weight: 1},
			{URL: "http://h:0", Weight: 1},
			{URL: "http://:80", Weight: 1},
			{URL: "http://h:1", Weight: 1001},
			{URL: "%zz", Weight: -1},
		}})
		if err == nil {
			t.Fatal("no error")
		}
		msg := err.Error()
		for _, want := range []string{
			"instances[1].url: is required",
			`instances[2].url: "ftp://h:21" is not an http:// or https:// URL`,
			"instances[3].url: http://127.0.0.1:9001 is already instances[0]",
			`instances[4].url: "http://h:1/api" has a path`,
			`instances[5].url: "http://u:[redacted]@h:1" has user information`, // the password is never printed
			`instances[6].url: "http://h:0": port "0" is not a number from 1 to 65535`,
			`instances[7].url: "http://:80" has no host`,
			"instances[8].weight: must be between 1 and 1000, got 1001",
			`instances[9].url: "%zz" is not a URL`,
			"instances[9].weight: must be between 1 and 1000, got -1",
		} {
			if !strings.Contains(msg, "scaling.service_discovery.static."+want) {
				t.Errorf("error lacks %q:\n%s", want, msg)
			}
		}
		if strings.Contains(msg, "instances[0]") && !strings.Contains(msg, "is already instances[0]") {
			t.Errorf("the valid entry 0 is reported:\n%s", msg)
		}
	})
}

// FuzzStatic checks that any URL is either refused or becomes an instance
// whose ID is its URL, of the form scheme://host:port.
func FuzzStatic(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:9001", "https://[::1]", "http://h:1/x?y#z", "//h", "http://%41:1", "http://h:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := discovery.Static(config.StaticDiscovery{Instances: []config.StaticInstance{{URL: raw, Weight: 1}}})
		if err != nil {
			return
		}
		in := s.Instances()[0]
		u, perr := url.Parse(in.ID)
		if perr != nil || in.ID != in.URL.String() || u.Port() == "" || u.Hostname() == "" || u.Path != "" ||
			(u.Scheme != "http" && u.Scheme != "https") {
			t.Fatalf("%q became %q (parse error %v)", raw, in.ID, perr)
		}
	})
}
