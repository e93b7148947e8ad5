package deploy

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-sh/shoal/config"
)

// directive is one nginx directive; a block directive has children. nginx.conf is built from
// these rather than from a text template, so every argument is quoted where nginx needs it.
type directive struct {
	name     string
	args     []string
	children []directive
	block    bool
}

// d is a simple directive.
func d(name string, args ...string) directive { return directive{name: name, args: args} }

// blk is a block directive.
func blk(name string, args []string, children ...directive) directive {
	return directive{name: name, args: args, children: children, block: true}
}

// render writes the directive, indented by depth.
func (dr directive) render(b *strings.Builder, depth int) {
	pad := strings.Repeat("    ", depth)
	b.WriteString(pad)
	b.WriteString(nginxQuote(dr.name))
	for _, a := range dr.args {
		b.WriteByte(' ')
		b.WriteString(nginxQuote(a))
	}
	if !dr.block {
		b.WriteString(";\n")
		return
	}
	b.WriteString(" {\n")
	for _, c := range dr.children {
		c.render(b, depth+1)
	}
	b.WriteString(pad + "}\n")
}

// nginxQuote quotes an argument when nginx would otherwise split or misread it.
func nginxQuote(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\n;{}\"'#\\") {
		return a
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(a) + `"`
}

// nginxTime formats a duration in nginx's time syntax: whole seconds, else milliseconds.
func nginxTime(d config.Duration) string {
	t := d.D()
	if t%time.Second == 0 {
		return fmt.Sprintf("%ds", t/time.Second)
	}
	return fmt.Sprintf("%dms", (t+time.Millisecond-1)/time.Millisecond)
}

// upstreamServer is one server line of the upstream block.
type upstreamServer struct {
	addr   string
	weight int
}

// nginxFiles is the nginx target: nginx.conf in front of the static instances when static
// discovery lists them, else in front of the compose service "app".
func (s *spec) nginxFiles() ([]File, error) {
	servers := []upstreamServer{{addr: net.JoinHostPort("app", strconv.Itoa(int(s.port))), weight: 1}}
	sd := s.c.Scaling.ServiceDiscovery
	if sd.Method == config.DiscoveryStatic && len(sd.Static.Instances) > 0 {
		servers = nil
		for i, in := range sd.Static.Instances {
			u, err := url.Parse(in.URL)
			if err != nil {
				return nil, fmt.Errorf("scaling.service_discovery.static.instances[%d].url: %w", i, err)
			}
			host := u.Host
			if u.Port() == "" {
				port := "80"
				if u.Scheme == "https" {
					port = "443"
				}
				host = net.JoinHostPort(u.Hostname(), port)
			}
			if u.Scheme == "https" {
				s.warn(fmt.Sprintf("scaling.service_discovery.static.instances[%d].url", i), "nginx proxies to every server of an upstream with one scheme; this https instance is reached over plain HTTP")
			}
			servers = append(servers, upstreamServer{addr: host, weight: in.Weight})
		}
	}
	return []File{{Path: "nginx.conf", Data: s.nginxConf(servers)}}, nil
}

// nginxConf renders nginx.conf for an upstream of servers. The balancing method mirrors
// scaling.load_balancer.algorithm:
//
//	round_robin           (nginx's default, round robin)
//	least_connections     least_conn
//	ip_hash               ip_hash
//	weighted_round_robin  round robin with weight= on each server
//	p2c_ewma              random two least_conn (power of two choices, without latency)
//
// Passive health (max_failures within failure_timeout) becomes max_fails and fail_timeout,
// and the retry policy becomes proxy_next_upstream: 502/503/504 are retried on another server
// for idempotent requests only, unless non_idempotent is set — nginx's own rule, as shoal's.
func (s *spec) nginxConf(servers []upstreamServer) []byte {
	c := s.c
	lb := c.Scaling.LoadBalancer
	const algo = "scaling.load_balancer.algorithm"
	var up []directive
	switch lb.Algorithm {
	case config.LeastConnections:
		up = append(up, d("least_conn"))
	case config.IPHash:
		up = append(up, d("ip_hash"))
	case config.P2CEWMA:
		s.warn(algo, "p2c_ewma is mapped to `random two least_conn`: nginx picks the less busy of two random servers by connections, without shoal's latency average")
		up = append(up, d("random", "two", "least_conn"))
	case config.WeightedRoundRobin:
		if len(servers) == 1 && weighted(c) {
			s.warn(algo, "the replicas of one compose service are alike, so the static instances' weights do not apply")
		}
	}
	if lb.SessionAffinity {
		s.warn("scaling.load_balancer.session_affinity", "nginx open source has no affinity cookie; use algorithm: ip_hash for client affinity here (nginx Plus has `sticky cookie`)")
	}
	if lb.UpstreamProtocol == "h2c" {
		s.warn("scaling.load_balancer.upstream_protocol", "nginx speaks HTTP/1.1 to upstreams (proxy_pass has no h2c); the instances must accept HTTP/1.1, or use grpc_pass for gRPC")
	}
	if lb.CircuitBreaker.Enabled {
		s.warn("scaling.load_balancer.circuit_breaker", "nginx has no circuit breaker; max_fails and fail_timeout (passive health) are the nearest it has")
	}
	if lb.Retry.Attempts > 1 {
		s.warn("scaling.load_balancer.retry.budget", "nginx has no retry budget and no backoff between tries; retries are bounded by proxy_next_upstream_tries (%d) and proxy_next_upstream_timeout", lb.Retry.Attempts)
	}
	for _, sv := range servers {
		args := []string{sv.addr}
		if lb.Algorithm == config.WeightedRoundRobin && sv.weight != 1 {
			args = append(args, "weight="+strconv.Itoa(sv.weight))
		}
		if lb.MaxFailures > 0 {
			args = append(args, "max_fails="+strconv.Itoa(lb.MaxFailures), "fail_timeout="+nginxTime(lb.FailureTimeout))
		} else {
			args = append(args, "max_fails=0")
		}
		up = append(up, d("server", args...))
	}
	up = append(up, d("keepalive", "32"))

	next := []string{"off"}
	if lb.Retry.Attempts > 1 {
		next = []string{"error", "timeout", "http_502", "http_503", "http_504"}
		if lb.Retry.NonIdempotent {
			next = append(next, "non_idempotent")
		}
	}
	loc := []directive{
		d("proxy_pass", "http://"+s.name),
		d("proxy_http_version", "1.1"),
		d("proxy_set_header", "Host", "$host"),
		d("proxy_set_header", "X-Real-IP", "$remote_addr"),
		d("proxy_set_header", "X-Forwarded-For", "$proxy_add_x_forwarded_for"),
		d("proxy_set_header", "X-Forwarded-Proto", "$scheme"),
		d("proxy_set_header", "Upgrade", "$http_upgrade"),
		d("proxy_set_header", "Connection", "$connection_upgrade"),
		d("proxy_next_upstream", next...),
	}
	if lb.Retry.Attempts > 1 {
		loc = append(loc,
			d("proxy_next_upstream_tries", strconv.Itoa(lb.Retry.Attempts)),
			d("proxy_next_upstream_timeout", nginxTime(lb.Retry.Timeout)))
	}
	if lb.Retry.TryTimeout > 0 {
		loc = append(loc, d("proxy_read_timeout", nginxTime(lb.Retry.TryTimeout)))
	}

	conf := []directive{
		d("worker_processes", "auto"),
		blk("events", nil, d("worker_connections", "1024")),
		blk("http", nil,
			d("server_tokens", "off"),
			d("client_max_body_size", strconv.FormatInt(c.Server.MaxBodyBytes, 10)),
			// Upgrade WebSocket connections; otherwise send no Connection header, which keeps the
			// upstream connection alive.
			blk("map", []string{"$http_upgrade", "$connection_upgrade"}, d("default", "upgrade"), d("", "")),
			blk("upstream", []string{s.name}, up...),
			blk("server", nil,
				d("listen", "80"),
				blk("location", []string{"/"}, loc...)),
		),
	}
	var b strings.Builder
	b.WriteString(s.header("# "))
	b.WriteString("# Upstream host names are resolved when nginx starts: after scaling the app, reload nginx.\n")
	for _, dr := range conf {
		dr.render(&b, 0)
	}
	return []byte(b.String())
}
