package dns

import (
	"cmp"
	"context"
	"errors"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/shoal-sh/shoal/discovery"
)

const (
	// maxCNAMEs bounds the CNAME chain followed for one name, against loops.
	maxCNAMEs = 8
	// udpSize is the EDNS0 buffer size advertised, the DNS flag day 2020
	// value that avoids IP fragmentation.
	udpSize = 1232
)

// errCNAMELoop is returned, inside a QueryError, for a chain of more than
// maxCNAMEs CNAME records.
var errCNAMELoop = errors.New("CNAME chain too long or looping")

// resolution is one run of Resolve.
type resolution struct {
	p   *Provider
	ctx context.Context
	// ttl is the smallest TTL of the records the instances came from;
	// hasTTL is false until one was seen.
	ttl    uint32
	hasTTL bool
}

// saw records the TTL of a record an instance came from.
func (r *resolution) saw(rr miekg.RR) {
	if ttl := rr.Header().Ttl; !r.hasTTL || ttl < r.ttl {
		r.ttl, r.hasTTL = ttl, true
	}
}

// hosts resolves name's A and AAAA records into instances on the configured
// port; found reports whether there were any.
func (r *resolution) hosts(name string) (instances []discovery.Instance, found bool, err error) {
	addrs, err := r.addrs(name)
	if err != nil || len(addrs) == 0 {
		return nil, false, err
	}
	for _, a := range addrs {
		instances = append(instances, r.p.instance(a, uint16(r.p.opts.Port), 1, name))
	}
	return instances, true, nil
}

// srv resolves name's SRV records of the lowest priority value into
// instances; found reports whether name has SRV records.
func (r *resolution) srv(name string) (instances []discovery.Instance, found bool, err error) {
	rrs, msg, err := r.lookup(name, miekg.TypeSRV)
	if err != nil || len(rrs) == 0 {
		return nil, false, err
	}
	var srvs []*miekg.SRV
	for _, rr := range rrs {
		if s, ok := rr.(*miekg.SRV); ok {
			srvs = append(srvs, s)
		}
	}
	if len(srvs) == 0 {
		return nil, false, nil
	}
	lowest := slices.MinFunc(srvs, func(a, b *miekg.SRV) int { return cmp.Compare(a.Priority, b.Priority) }).Priority

	byID := make(map[string]int) // index in instances
	targets := make(map[string][]netip.Addr)
	for _, s := range srvs {
		if s.Priority != lowest || s.Target == "." || s.Port == 0 {
			continue
		}
		target := strings.ToLower(s.Target)
		addrs, ok := targets[target]
		if !ok {
			if addrs = glue(msg, target); len(addrs) == 0 {
				if addrs, err = r.addrs(target); err != nil {
					return nil, false, err
				}
			}
			targets[target] = addrs
		}
		for _, a := range addrs {
			in := r.p.instance(a, s.Port, max(int(s.Weight), 1), target)
			if n, dup := byID[in.ID]; dup {
				instances[n].Weight = max(instances[n].Weight, in.Weight)
				continue
			}
			byID[in.ID] = len(instances)
			instances = append(instances, in)
		}
	}
	return instances, true, nil
}

// glue returns the addresses the additional section of msg gives for target.
func glue(msg *miekg.Msg, target string) []netip.Addr {
	var addrs []netip.Addr
	for _, rr := range msg.Extra {
		if strings.EqualFold(rr.Header().Name, target) {
			if a, ok := addrOf(rr); ok {
				addrs = append(addrs, a)
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return slices.Compact(addrs)
}

// addrs resolves name's A and AAAA records.
func (r *resolution) addrs(name string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for _, qtype := range []uint16{miekg.TypeA, miekg.TypeAAAA} {
		rrs, _, err := r.lookup(name, qtype)
		if err != nil {
			return nil, err
		}
		for _, rr := range rrs {
			if a, ok := addrOf(rr); ok {
				addrs = append(addrs, a)
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return slices.Compact(addrs), nil
}

// addrOf returns the address of an A or AAAA record.
func addrOf(rr miekg.RR) (netip.Addr, bool) {
	var ip []byte
	switch rr := rr.(type) {
	case *miekg.A:
		ip = rr.A.To4()
	case *miekg.AAAA:
		ip = rr.AAAA.To16()
	default:
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok || !a.IsValid() || a.IsUnspecified() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// lookup returns the records of type qtype for name, following CNAME records
// within a response and, when a chain ends at a name the response has no
// records for, by asking for that name. No records (NXDOMAIN or NODATA) is
// not an error. msg is the response the records came from.
func (r *resolution) lookup(name string, qtype uint16) (rrs []miekg.RR, msg *miekg.Msg, err error) {
	var server string
	for range maxCNAMEs {
		msg, server, err = r.query(name, qtype)
		if err != nil || msg.Rcode == miekg.RcodeNameError {
			return nil, nil, err
		}
		owner, ok := chainEnd(msg.Answer, name)
		if !ok {
			break
		}
		for _, rr := range msg.Answer {
			if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, owner) {
				rrs = append(rrs, rr)
				r.saw(rr)
			} else if rr.Header().Rrtype == miekg.TypeCNAME {
				r.saw(rr)
			}
		}
		if len(rrs) > 0 || strings.EqualFold(owner, name) {
			return rrs, msg, nil
		}
		name = owner // ask for the end of the chain
	}
	return nil, nil, &QueryError{Name: name, Type: miekg.TypeToString[qtype], Server: server, Err: errCNAMELoop}
}

// chainEnd follows the CNAME records in answer from name and returns the name
// the chain ends at; ok is false for a chain longer than maxCNAMEs.
func chainEnd(answer []miekg.RR, name string) (end string, ok bool) {
	for range maxCNAMEs + 1 {
		next := ""
		for _, rr := range answer {
			if c, isCNAME := rr.(*miekg.CNAME); isCNAME && strings.EqualFold(c.Hdr.Name, name) {
				next = c.Target
				break
			}
		}
		if next == "" {
			return name, true
		}
		name = next
	}
	return "", false
}

// query asks the servers in turn for name's records of type qtype until one
// answers with NOERROR or NXDOMAIN, and returns its response and address.
func (r *resolution) query(name string, qtype uint16) (*miekg.Msg, string, error) {
	m := new(miekg.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(udpSize, false)
	var errs []error
	for _, server := range r.p.servers {
		resp, err := r.p.exchange(r.ctx, m, server)
		switch {
		case err != nil:
			err = &QueryError{Name: name, Type: miekg.TypeToString[qtype], Server: server, Err: err}
		case resp.Rcode != miekg.RcodeSuccess && resp.Rcode != miekg.RcodeNameError:
			err = &QueryError{Name: name, Type: miekg.TypeToString[qtype], Server: server, Rcode: resp.Rcode}
		default:
			return resp, server, nil
		}
		errs = append(errs, err)
		if r.ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return nil, "", errs[0]
	}
	return nil, "", errors.Join(errs...)
}

// exchange sends m to server over UDP, and again over TCP when the response
// is truncated.
func exchange(ctx context.Context, m *miekg.Msg, server string) (*miekg.Msg, error) {
	resp, err := roundTrip(ctx, "udp", m, server)
	if err == nil && resp.Truncated {
		resp, err = roundTrip(ctx, "tcp", m, server)
	}
	return resp, err
}

// roundTrip sends m to server and reads the response, until ctx is done
// (miekg/dns obeys only a context's deadline, so cancellation closes the
// connection).
func roundTrip(ctx context.Context, network string, m *miekg.Msg, server string) (*miekg.Msg, error) {
	c := &miekg.Client{Net: network}
	if deadline, ok := ctx.Deadline(); ok {
		c.Timeout = max(time.Until(deadline), time.Millisecond)
	}
	conn, err := c.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	resp, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return resp, err
}

// instance returns the instance at addr:port.
func (p *Provider) instance(addr netip.Addr, port uint16, weight int, host string) discovery.Instance {
	u := &url.URL{Scheme: p.opts.Scheme, Host: netip.AddrPortFrom(addr, port).String()}
	return discovery.Instance{
		ID:     u.String(),
		URL:    u,
		Weight: weight,
		Meta:   map[string]string{MetaHostname: strings.TrimSuffix(host, ".")},
	}
}

// sortInstances sorts instances by ID, as events carry them.
func sortInstances(instances []discovery.Instance) []discovery.Instance {
	slices.SortFunc(instances, func(a, b discovery.Instance) int { return strings.Compare(a.ID, b.ID) })
	return instances
}
