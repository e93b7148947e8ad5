// Package backends links every discovery method of shoal into a program:
// import it for its side effect, and discovery.NewProvider,
// discovery.NewRegistrar and discovery.RegisterSelf accept any
// scaling.service_discovery.method.
//
//	import _ "github.com/shoal-sh/shoal/discovery/backends"
package backends

import (
	_ "github.com/shoal-sh/shoal/discovery/consul"     // method: consul
	_ "github.com/shoal-sh/shoal/discovery/dns"        // method: dns
	_ "github.com/shoal-sh/shoal/discovery/etcd"       // method: etcd
	_ "github.com/shoal-sh/shoal/discovery/kubernetes" // method: kubernetes
)
