package dns

import (
	"strings"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
)

func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts Options
		want []string // substrings of the error; none for valid options
	}{
		{"MinimalA", Options{Name: "api.test", Port: 8080}, nil},
		{"MinimalSRV", Options{Name: "_http._tcp.api.test.", RecordType: RecordSRV}, nil},
		{"Full", Options{Name: "api.test", RecordType: RecordA, Port: 1, RefreshInterval: time.Second,
			Timeout: time.Second, Resolver: "[::1]:53", Scheme: "https"}, nil},
		{"Empty", Options{}, []string{"Name: is required", "Port: record type \"A\" needs the instances' port"}},
		{"Everything", Options{Name: "bad..name", RecordType: "AAAA", RefreshInterval: -1, Timeout: -1,
			Resolver: "10.0.0.1", Scheme: "ftp"}, []string{
			`Name: "bad..name" is not a domain name`, `RecordType: "AAAA" is not "A" or "SRV"`,
			"RefreshInterval: must be longer than zero", "Timeout: must be longer than zero",
			`Resolver: "10.0.0.1" is not host:port`, `Scheme: "ftp" is not "http" or "https"`}},
		{"PortOutOfRange", Options{Name: "api.test", Port: 70000}, []string{"got 70000"}},
		{"ResolverPort", Options{Name: "api.test", Port: 80, Resolver: "10.0.0.1:0"}, []string{"Resolver:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.opts.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := New(tc.opts); err != nil {
					t.Fatalf("Validate passed but New failed: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if _, nerr := New(tc.opts); nerr == nil || nerr.Error() != err.Error() {
				t.Errorf("New returned %v, want the Validate error", nerr)
			}
		})
	}
}

func TestFromConfig(t *testing.T) {
	t.Parallel()
	sd := config.ServiceDiscovery{
		ServiceName: "shop",
		Port:        9000,
		DNS: config.DNSDiscovery{RecordType: "SRV", RefreshInterval: config.Duration(5 * time.Second),
			Resolver: "10.0.0.2:53"},
	}
	want := Options{Name: "shop", RecordType: RecordSRV, Port: 9000, RefreshInterval: 5 * time.Second, Resolver: "10.0.0.2:53"}
	if got := FromConfig(sd); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	sd.DNS.Name = "_http._tcp.shop.example.com"
	if got := FromConfig(sd); got.Name != sd.DNS.Name {
		t.Fatalf("Name = %q, want dns.name", got.Name)
	}
}
