package discovery

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
)

// LocalIP returns the address this machine is reached at, for registering
// an instance (the seed's get_local_ip): $POD_IP when set (the Kubernetes
// downward API), else an address of the interface of the default route
// (read from /proc/net/route on Linux), else the first global unicast
// address of an interface that is up, IPv4 before IPv6. It sends nothing on
// the network. It fails only when the machine has no such address.
func LocalIP() (netip.Addr, error) {
	if v := strings.TrimSpace(os.Getenv("POD_IP")); v != "" {
		if a, err := netip.ParseAddr(v); err == nil {
			return a.Unmap(), nil
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, err
	}
	if name := defaultRouteInterface("/proc/net/route"); name != "" {
		for _, ifc := range ifaces {
			if ifc.Name == name {
				if a, ok := bestAddr([]net.Interface{ifc}); ok {
					return a, nil
				}
			}
		}
	}
	if a, ok := bestAddr(ifaces); ok {
		return a, nil
	}
	return netip.Addr{}, errors.New("discovery: this machine has no global unicast address; set scaling.service_discovery.advertise_address")
}

// bestAddr returns the first global unicast IPv4 address of the interfaces
// that are up, else the first such IPv6 address.
func bestAddr(ifaces []net.Interface) (netip.Addr, bool) {
	var v6 netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			pfx, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := pfx.Addr().Unmap()
			if !ip.IsGlobalUnicast() {
				continue
			}
			if ip.Is4() {
				return ip, true
			}
			if !v6.IsValid() {
				v6 = ip
			}
		}
	}
	return v6, v6.IsValid()
}

// defaultRouteInterface returns the interface of the IPv4 default route in
// a /proc/net/route file, or "".
func defaultRouteInterface(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		// Iface Destination Gateway Flags ...; destination 00000000 is the default.
		if len(fields) >= 2 && fields[1] == "00000000" {
			return fields[0]
		}
	}
	return ""
}
