package dns

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/discovery"
)

// UpdateOptions configure a [Registrar]: RFC 2136 dynamic updates to the
// zone's primary server, signed with TSIG (RFC 8945).
type UpdateOptions struct {
	// Server (host:port) that accepts dynamic updates for Zone. Required.
	Server string
	// Zone updated, e.g. "example.com". Defaults to the parent domain of the
	// name.
	Zone string
	// TTL of the records added. Defaults to 30s.
	TTL time.Duration
	// TSIGKey names the key updates are signed with, e.g. "shoal-key."; empty
	// for unsigned updates (most servers refuse them).
	TSIGKey string
	// TSIGSecret is the key's secret, base64.
	TSIGSecret string
	// TSIGAlgorithm: hmac-sha256 (default), hmac-sha512, hmac-sha384,
	// hmac-sha224 or hmac-sha1.
	TSIGAlgorithm string
	// Timeout bounds one update. Defaults to 5s.
	Timeout time.Duration
	// Logger receives warnings of the background refresh. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// UpdateFromConfig returns the update options of the seed's
// service_discovery.dns.update block.
func UpdateFromConfig(sd config.ServiceDiscovery) UpdateOptions {
	u := sd.DNS.Update
	return UpdateOptions{Server: u.Server, Zone: u.Zone, TTL: u.TTL.D(), TSIGKey: u.TSIGKey,
		TSIGSecret: u.TSIGSecret, TSIGAlgorithm: u.TSIGAlgorithm}
}

var tsigAlgorithms = map[string]string{
	"hmac-sha256": miekg.HmacSHA256, "hmac-sha512": miekg.HmacSHA512, "hmac-sha384": miekg.HmacSHA384,
	"hmac-sha224": miekg.HmacSHA224, "hmac-sha1": miekg.HmacSHA1,
}

// Registrar registers instances in DNS with RFC 2136 dynamic updates: an A
// or AAAA record per instance under the name (record type "A"), or an SRV
// record per instance whose target is a name of its own in the zone with
// the instance's address (record type "SRV", which keeps ports and weights).
//
// DNS cannot mark a record unhealthy or draining: SetHealth(false) and Drain
// remove the instance's records (SetHealth(true) adds them back, unless it
// drains). Meta is not stored. Records have no lease either: the registrar
// adds its records again every TTL (a no-op for a server that has them, RFC
// 2136 §3.4.2.2) so that a server that lost them gets them back, but the
// records of a process that died stay until they are deleted — the proxy's
// active health checks take such an instance out of rotation meanwhile.
// It is safe for concurrent use.
type Registrar struct {
	opts Options
	u    UpdateOptions
	name string // fully qualified
	zone string // fully qualified

	mu     sync.Mutex
	regs   map[string]*dnsReg
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type dnsReg struct {
	rrs      []miekg.RR
	healthy  bool
	draining bool
}

var _ discovery.Registrar = (*Registrar)(nil)

// NewRegistrar returns a Registrar writing the records of opts' name (and
// record type and port) with the updates of u.
func NewRegistrar(opts Options, u UpdateOptions) (*Registrar, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	if u.TTL == 0 {
		u.TTL = 30 * time.Second
	}
	if u.TSIGAlgorithm == "" {
		u.TSIGAlgorithm = "hmac-sha256"
	}
	if u.Timeout == 0 {
		u.Timeout = 5 * time.Second
	}
	if u.Logger == nil {
		u.Logger = slog.Default()
	}
	name := miekg.Fqdn(strings.ToLower(opts.Name))
	zone := u.Zone
	if zone == "" {
		if labels := miekg.SplitDomainName(name); len(labels) > 1 {
			zone = strings.Join(labels[1:], ".")
		}
	}
	zone = miekg.Fqdn(strings.ToLower(zone))
	var errs []error
	if _, _, err := net.SplitHostPort(u.Server); err != nil {
		errs = append(errs, fmt.Errorf("update.server: %q is not host:port, e.g. \"10.0.0.2:53\"", u.Server))
	}
	if zone == "." || !miekg.IsSubDomain(zone, name) || name == zone {
		errs = append(errs, fmt.Errorf("update.zone: %q does not contain the name %q; set the zone the name's records live in", zone, name))
	}
	if u.TTL < time.Second || u.TTL > 24*time.Hour {
		errs = append(errs, fmt.Errorf("update.ttl: %s is not between 1s and 24h", u.TTL))
	}
	if _, ok := tsigAlgorithms[u.TSIGAlgorithm]; !ok {
		errs = append(errs, fmt.Errorf("update.tsig_algorithm: %q is not one of hmac-sha256, hmac-sha512, hmac-sha384, hmac-sha224, hmac-sha1", u.TSIGAlgorithm))
	}
	if u.TSIGKey != "" {
		if _, err := base64.StdEncoding.DecodeString(u.TSIGSecret); err != nil || u.TSIGSecret == "" {
			errs = append(errs, errors.New("update.tsig_secret: is not the key's base64 secret (tsig_key is set)"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dns registration: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registrar{opts: opts, u: u, name: name, zone: zone, regs: map[string]*dnsReg{}, ctx: ctx, cancel: cancel}
	r.wg.Add(1)
	go r.keeper()
	return r, nil
}

// records returns the records that register in.
func (r *Registrar) records(in discovery.Instance) ([]miekg.RR, error) {
	invalid := func(why string) error { return &discovery.InvalidInstanceError{ID: in.ID, Reason: why} }
	host, portStr, err := net.SplitHostPort(in.URL.Host)
	if err != nil {
		return nil, invalid(fmt.Sprintf("its URL %s has no port; DNS registration needs scheme://address:port", in.URL.Redacted()))
	}
	port, _ := strconv.Atoi(portStr)
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return nil, invalid(fmt.Sprintf("%q is not an IP address; DNS registration writes A/AAAA records (set service_discovery.advertise_address to an IP)", host))
	}
	addr = addr.Unmap()
	ttl := uint32(r.u.TTL / time.Second)
	address := func(owner string) miekg.RR {
		hdr := miekg.RR_Header{Name: owner, Class: miekg.ClassINET, Ttl: ttl}
		if addr.Is4() {
			hdr.Rrtype = miekg.TypeA
			return &miekg.A{Hdr: hdr, A: addr.AsSlice()}
		}
		hdr.Rrtype = miekg.TypeAAAA
		return &miekg.AAAA{Hdr: hdr, AAAA: addr.AsSlice()}
	}
	if r.opts.RecordType != RecordSRV {
		if port != r.opts.Port {
			return nil, invalid(fmt.Sprintf("it serves on port %d, but A records carry no port: every instance must serve on service_discovery.port %d (or use record_type SRV)", port, r.opts.Port))
		}
		if in.Weight > 1 {
			return nil, invalid(fmt.Sprintf("weight %d cannot be expressed by A records (use record_type SRV)", in.Weight))
		}
		return []miekg.RR{address(r.name)}, nil
	}
	if in.Weight > 65535 {
		return nil, invalid(fmt.Sprintf("weight %d is larger than an SRV record's 65535", in.Weight))
	}
	// The target is a name of the instance's own, so that removing it
	// removes nobody else's address.
	label := strings.NewReplacer(".", "-", ":", "-").Replace(addr.String()) + "-" + portStr
	target := label + "." + r.zone
	srv := &miekg.SRV{Hdr: miekg.RR_Header{Name: r.name, Rrtype: miekg.TypeSRV, Class: miekg.ClassINET, Ttl: ttl},
		Priority: 10, Weight: uint16(max(in.Weight, 1)), Port: uint16(port), Target: target}
	return []miekg.RR{srv, address(target)}, nil
}

// Register implements [discovery.Registrar]: it adds the instance's records.
func (r *Registrar) Register(ctx context.Context, in discovery.Instance) error {
	if err := discovery.CheckInstance(in); err != nil {
		return err
	}
	rrs, err := r.records(in)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("dns: registrar closed")
	}
	if old := r.regs[in.ID]; old != nil && !sameRRs(old.rrs, rrs) {
		if err := r.update(ctx, nil, old.rrs); err != nil {
			return err
		}
	}
	if err := r.update(ctx, rrs, nil); err != nil {
		return err
	}
	r.regs[in.ID] = &dnsReg{rrs: rrs, healthy: true}
	return nil
}

func sameRRs(a, b []miekg.RR) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !miekg.IsDuplicate(a[i], b[i]) {
			return false
		}
	}
	return true
}

// SetHealth implements [discovery.Registrar]: an unhealthy instance's
// records are removed until it is healthy again.
func (r *Registrar) SetHealth(ctx context.Context, id string, healthy bool) error {
	return r.change(ctx, id, func(g *dnsReg) { g.healthy = healthy })
}

// Drain implements [discovery.Registrar]: the records are removed (DNS
// cannot mark them draining); the registrar remembers the instance until
// Deregister.
func (r *Registrar) Drain(ctx context.Context, id string) error {
	return r.change(ctx, id, func(g *dnsReg) { g.draining = true })
}

func (r *Registrar) change(ctx context.Context, id string, f func(*dnsReg)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.regs[id]
	if !ok {
		return discovery.ErrNotRegistered
	}
	next := *g
	f(&next)
	was, is := g.listed(), next.listed()
	var err error
	switch {
	case was && !is:
		err = r.update(ctx, nil, g.rrs)
	case !was && is:
		err = r.update(ctx, g.rrs, nil)
	}
	if err != nil {
		return err
	}
	*g = next
	return nil
}

func (g *dnsReg) listed() bool { return g.healthy && !g.draining }

// Deregister implements [discovery.Registrar]: it deletes the records.
func (r *Registrar) Deregister(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.regs[id]
	if !ok {
		return nil
	}
	if err := r.update(ctx, nil, g.rrs); err != nil {
		return err
	}
	delete(r.regs, id)
	return nil
}

// Close implements [discovery.Registrar]: it stops the refresh; the records
// stay (DNS has no expiry for them).
func (r *Registrar) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

// keeper adds the listed records again every TTL.
func (r *Registrar) keeper() {
	defer r.wg.Done()
	t := time.NewTicker(r.u.TTL)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		var add []miekg.RR
		for _, g := range r.regs {
			if g.listed() {
				add = append(add, g.rrs...)
			}
		}
		if len(add) > 0 {
			if err := r.update(r.ctx, add, nil); err != nil && r.ctx.Err() == nil {
				r.u.Logger.Warn("dns: refreshing the registered records failed; retrying in one TTL", "err", err)
			}
		}
		r.mu.Unlock()
	}
}

// update sends one RFC 2136 update of the zone adding add and deleting del.
func (r *Registrar) update(ctx context.Context, add, del []miekg.RR) error {
	m := new(miekg.Msg)
	m.SetUpdate(r.zone)
	if len(add) > 0 {
		m.Insert(add)
	}
	if len(del) > 0 {
		m.Remove(del)
	}
	c := &miekg.Client{Net: "udp", Timeout: r.u.Timeout}
	if r.u.TSIGKey != "" {
		key := miekg.Fqdn(r.u.TSIGKey)
		c.TsigSecret = map[string]string{key: r.u.TSIGSecret}
		m.SetTsig(key, tsigAlgorithms[r.u.TSIGAlgorithm], 300, time.Now().Unix())
	}
	ctx, cancel := context.WithTimeout(ctx, r.u.Timeout)
	defer cancel()
	resp, _, err := c.ExchangeContext(ctx, m, r.u.Server)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, r.u.Server)
	}
	if err != nil {
		if errors.Is(err, miekg.ErrSig) || errors.Is(err, miekg.ErrSecret) || errors.Is(err, miekg.ErrKeyAlg) {
			return fmt.Errorf("dns update of zone %s at %s: the answer's TSIG does not verify with key %q: %w", r.zone, r.u.Server, r.u.TSIGKey, err)
		}
		return fmt.Errorf("dns update of zone %s at %s: %w", r.zone, r.u.Server, err)
	}
	if resp.Rcode != miekg.RcodeSuccess {
		why := ""
		switch resp.Rcode {
		case miekg.RcodeNotAuth:
			why = ": the server does not accept the update's signature (check update.tsig_key, tsig_secret and tsig_algorithm) or is not authoritative for the zone"
		case miekg.RcodeRefused:
			why = ": the server's policy refuses this update (an unsigned update, or a key not allowed to update this name)"
		case miekg.RcodeNotZone:
			why = ": a name is outside the zone; check update.zone"
		}
		return fmt.Errorf("dns update of zone %s at %s: server answered %s%s", r.zone, r.u.Server, miekg.RcodeToString[resp.Rcode], why)
	}
	return nil
}
