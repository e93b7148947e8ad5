package consul

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// fakeConsul is a FAKE Consul agent: no Consul agent or server can run on
// this machine, so the tests talk to this in-process HTTP server instead. It
// implements exactly the documented HTTP API calls the package makes, with
// Consul's semantics for them:
//
//   - PUT /v1/agent/service/register (with an HTTP check that it really
//     probes every Interval, or a TTL check that turns critical when not
//     updated within its TTL), /v1/agent/service/deregister/<id>,
//     /v1/agent/service/maintenance/<id>?enable=, /v1/agent/check/update/<id>,
//     GET /v1/agent/service/<id>;
//   - GET /v1/health/service/<name>?passing and GET /v1/kv/<key> as blocking
//     queries: X-Consul-Index on every answer; with ?index=N, the answer waits
//     until the index passes N or ?wait= elapses (Consul adds up to wait/16 of
//     jitter; the fake does not);
//   - the ACL token (X-Consul-Token; 403 "ACL not found" for another) and
//     ?dc= (500 "No path to datacenter" for another datacenter).
//
// What it leaves untested is listed in docs/architecture.md (Consul section):
// gossip, anti-entropy with the catalog, DeregisterCriticalServiceAfter's
// reaping, ACL policies beyond one token, and stale reads.
type fakeConsul struct {
	t     testing.TB
	srv   *httptest.Server
	token string
	dc    string

	mu       sync.Mutex
	index    uint64
	changed  chan struct{} // closed and replaced on every change
	services map[string]*fakeService
	kv       map[string]*api.KVPair
	failing  bool
	queries  []uint64 // the ?index of every health query, in order
	regs     []api.AgentServiceRegistration
}

type fakeService struct {
	reg    api.AgentServiceRegistration
	status string // of its check
	maint  bool
	ttl    *time.Timer
	http   string        // URL the HTTP check probes; "" for none
	every  time.Duration // of the HTTP check
	next   time.Time     // of the HTTP check's next probe
}

func newFakeConsul(t testing.TB, token string) *fakeConsul {
	t.Helper()
	f := &fakeConsul{t: t, token: token, dc: "dc1", index: 1, changed: make(chan struct{}),
		services: map[string]*fakeService{}, kv: map[string]*api.KVPair{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	stop, stopped := make(chan struct{}), make(chan struct{})
	go f.prober(stop, stopped)
	t.Cleanup(func() {
		close(stop)
		<-stopped
		f.srv.CloseClientConnections()
		f.srv.Close()
		f.mu.Lock()
		for _, s := range f.services {
			s.halt()
		}
		f.mu.Unlock()
	})
	return f
}

func (f *fakeConsul) addr() string { return f.srv.Listener.Addr().String() }

func (s *fakeService) halt() {
	if s.ttl != nil {
		s.ttl.Stop()
	}
}

// bumpLocked records a change: a new index, and blocked queries wake up.
func (f *fakeConsul) bumpLocked() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

// setIndex sets the index (lower than it was to simulate a restored agent).
func (f *fakeConsul) setIndex(i uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = i - 1
	f.bumpLocked()
}

// fail makes every request fail with 500 until recover, waking blocked ones.
func (f *fakeConsul) fail(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = on
	close(f.changed)
	f.changed = make(chan struct{})
}

// forget drops every registration, as an agent restarted without its data.
func (f *fakeConsul) forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, s := range f.services {
		s.halt()
		delete(f.services, id)
	}
	f.bumpLocked()
}

// put stores a service as passing without the agent API (what another
// agent's registration looks like in the health endpoint).
func (f *fakeConsul) put(reg api.AgentServiceRegistration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old := f.services[reg.ID]; old != nil {
		old.halt()
	}
	f.services[reg.ID] = &fakeService{reg: reg, status: api.HealthPassing}
	f.bumpLocked()
}

// replace makes the passing services exactly regs.
func (f *fakeConsul) replace(regs []api.AgentServiceRegistration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, s := range f.services {
		s.halt()
		delete(f.services, id)
	}
	for _, reg := range regs {
		f.services[reg.ID] = &fakeService{reg: reg, status: api.HealthPassing}
	}
	f.failing = false
	f.bumpLocked()
}

func (f *fakeConsul) putKey(key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bumpLocked()
	p := f.kv[key]
	if p == nil {
		p = &api.KVPair{Key: key, CreateIndex: f.index}
		f.kv[key] = p
	}
	p.Value, p.ModifyIndex = []byte(value), f.index
}

func (f *fakeConsul) deleteKey(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.kv, key)
	f.bumpLocked()
}

// status returns the check status and maintenance of a service; ok false
// when the agent does not have it.
func (f *fakeConsul) status(id string) (status string, maint, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.services[id]
	if s == nil {
		return "", false, false
	}
	return s.status, s.maint, true
}

// registrations returns every registration received.
func (f *fakeConsul) registrations() []api.AgentServiceRegistration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.AgentServiceRegistration(nil), f.regs...)
}

// healthQueries returns the ?index of the health queries received.
func (f *fakeConsul) healthQueries() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.queries...)
}

func (f *fakeConsul) serve(w http.ResponseWriter, r *http.Request) {
	if f.token != "" && r.Header.Get("X-Consul-Token") != f.token {
		http.Error(w, "ACL not found", http.StatusForbidden)
		return
	}
	if dc := r.URL.Query().Get("dc"); dc != "" && dc != f.dc {
		http.Error(w, fmt.Sprintf("No path to datacenter %q", dc), http.StatusInternalServerError)
		return
	}
	f.mu.Lock()
	failing := f.failing
	f.mu.Unlock()
	if failing {
		http.Error(w, "fake outage: rpc error making call: No cluster leader", http.StatusInternalServerError)
		return
	}
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPut && path == "/v1/agent/service/register":
		f.register(w, r)
	case r.Method == http.MethodPut && strings.HasPrefix(path, "/v1/agent/service/deregister/"):
		f.withService(w, strings.TrimPrefix(path, "/v1/agent/service/deregister/"), func(id string, s *fakeService) {
			s.halt()
			delete(f.services, id)
		})
	case r.Method == http.MethodPut && strings.HasPrefix(path, "/v1/agent/service/maintenance/"):
		enable, err := strconv.ParseBool(r.URL.Query().Get("enable"))
		if err != nil {
			http.Error(w, "Missing value for enable", http.StatusBadRequest)
			return
		}
		f.withService(w, strings.TrimPrefix(path, "/v1/agent/service/maintenance/"), func(_ string, s *fakeService) { s.maint = enable })
	case r.Method == http.MethodPut && strings.HasPrefix(path, "/v1/agent/check/update/"):
		f.updateCheck(w, r, strings.TrimPrefix(path, "/v1/agent/check/update/"))
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/agent/service/"):
		id := strings.TrimPrefix(path, "/v1/agent/service/")
		f.mu.Lock()
		s := f.services[id]
		var out *api.AgentService
		if s != nil {
			out = agentService(s.reg)
		}
		f.mu.Unlock()
		if out == nil {
			http.Error(w, fmt.Sprintf("unknown service ID: %s", id), http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/health/service/"):
		f.blocking(w, r, true, func() (any, bool) {
			return f.healthLocked(strings.TrimPrefix(path, "/v1/health/service/"), r.URL.Query().Has("passing")), true
		})
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/kv/"):
		key := strings.TrimPrefix(path, "/v1/kv/")
		f.blocking(w, r, false, func() (any, bool) {
			p := f.kv[key]
			if p == nil {
				return nil, false
			}
			return []*api.KVPair{p}, true
		})
	default:
		http.Error(w, "fake consul: "+r.Method+" "+path+" is not implemented", http.StatusNotImplemented)
	}
}

func agentService(reg api.AgentServiceRegistration) *api.AgentService {
	s := &api.AgentService{ID: reg.ID, Service: reg.Name, Address: reg.Address, Port: reg.Port, Meta: reg.Meta, Tags: reg.Tags}
	if reg.Weights != nil {
		s.Weights = *reg.Weights
	}
	return s
}

func (f *fakeConsul) withService(w http.ResponseWriter, id string, change func(id string, s *fakeService)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.services[id]
	if s == nil {
		http.Error(w, fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id), http.StatusNotFound)
		return
	}
	change(id, s)
	f.bumpLocked()
}

func (f *fakeConsul) register(w http.ResponseWriter, r *http.Request) {
	var reg api.AgentServiceRegistration
	if err := json.NewDecoder(r.Body).Decode(&reg); err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	if reg.Name == "" {
		http.Error(w, "Missing service name", http.StatusBadRequest)
		return
	}
	if reg.ID == "" {
		reg.ID = reg.Name
	}
	s := &fakeService{reg: reg, status: api.HealthPassing}
	if c := reg.Check; c != nil {
		if c.Status != "" {
			s.status = c.Status
		} else {
			s.status = api.HealthCritical
		}
		if c.TTL != "" {
			ttl, err := time.ParseDuration(c.TTL)
			if err != nil {
				http.Error(w, "Invalid TTL", http.StatusBadRequest)
				return
			}
			id := reg.ID
			s.ttl = time.AfterFunc(ttl, func() { f.expire(id, s) })
		}
		if c.HTTP != "" {
			every, err := time.ParseDuration(c.Interval)
			if err != nil || every <= 0 {
				http.Error(w, "Interval must be > 0 for Script, HTTP, or TCP checks", http.StatusBadRequest)
				return
			}
			s.http, s.every, s.next = c.HTTP, every, time.Now().Add(every)
		}
	}
	f.mu.Lock()
	if old := f.services[reg.ID]; old != nil {
		old.halt()
		if old.maint {
			s.maint = true // maintenance mode outlives a re-registration, as in Consul
		}
	}
	f.services[reg.ID] = s
	f.regs = append(f.regs, reg)
	f.bumpLocked()
	f.mu.Unlock()
}

// expire turns a TTL check critical, as Consul does when no update came
// within the TTL.
func (f *fakeConsul) expire(id string, s *fakeService) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.services[id] == s && s.status != api.HealthCritical {
		s.status = api.HealthCritical
		f.bumpLocked()
	}
}

// prober is the agent's HTTP checks: each service's URL every Interval, 2xx
// passing, 429 warning, anything else critical. One goroutine for all, so
// that the tests' goroutine-leak checks see none come and go.
func (f *fakeConsul) prober(stop, stopped chan struct{}) {
	defer close(stopped)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		type due struct {
			s   *fakeService
			url string
		}
		var todo []due
		now := time.Now()
		f.mu.Lock()
		for _, s := range f.services {
			if s.http != "" && !now.Before(s.next) {
				s.next = now.Add(s.every)
				todo = append(todo, due{s, s.http})
			}
		}
		f.mu.Unlock()
		for _, d := range todo {
			status := api.HealthCritical
			if resp, err := client.Get(d.url); err == nil {
				resp.Body.Close()
				switch {
				case resp.StatusCode >= 200 && resp.StatusCode < 300:
					status = api.HealthPassing
				case resp.StatusCode == http.StatusTooManyRequests:
					status = api.HealthWarning
				}
			}
			f.mu.Lock()
			if f.services[d.s.reg.ID] == d.s && d.s.status != status {
				d.s.status = status
				f.bumpLocked()
			}
			f.mu.Unlock()
		}
	}
}

func (f *fakeConsul) updateCheck(w http.ResponseWriter, r *http.Request, checkID string) {
	var body struct{ Status, Output string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.services {
		if s.reg.Check == nil || s.reg.Check.CheckID != checkID {
			continue
		}
		if s.ttl == nil {
			http.Error(w, fmt.Sprintf("CheckID %q does not have associated TTL", checkID), http.StatusInternalServerError)
			return
		}
		ttl, _ := time.ParseDuration(s.reg.Check.TTL)
		s.ttl.Reset(ttl)
		if s.status != body.Status {
			s.status = body.Status
			f.bumpLocked()
		}
		return
	}
	http.Error(w, fmt.Sprintf("Unknown check ID %q. Ensure that the check ID is passed, not the check name.", checkID), http.StatusNotFound)
}

// healthLocked is /v1/health/service/<name>: every instance of it (passing
// ones only with ?passing), its node and checks.
func (f *fakeConsul) healthLocked(name string, passing bool) []*api.ServiceEntry {
	out := []*api.ServiceEntry{}
	for _, s := range f.services {
		if s.reg.Name != name {
			continue
		}
		status := s.status
		if s.maint {
			status = api.HealthCritical
		}
		if passing && status != api.HealthPassing {
			continue
		}
		out = append(out, &api.ServiceEntry{
			Node:    &api.Node{Node: "fake-node", Address: "127.0.0.1", Datacenter: f.dc},
			Service: agentService(s.reg),
			Checks:  api.HealthChecks{{Node: "fake-node", CheckID: "serfHealth", Status: status, ServiceID: s.reg.ID}},
		})
	}
	return out
}

// blocking answers a blocking query: at once without ?index or when the
// index has passed it, else when it does or ?wait elapses.
func (f *fakeConsul) blocking(w http.ResponseWriter, r *http.Request, health bool, read func() (body any, found bool)) {
	q := r.URL.Query()
	var want uint64
	if s := q.Get("index"); s != "" {
		var err error
		if want, err = strconv.ParseUint(s, 10, 64); err != nil {
			http.Error(w, "Invalid index", http.StatusBadRequest)
			return
		}
	}
	wait := 5 * time.Minute
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			http.Error(w, "Invalid wait time", http.StatusBadRequest)
			return
		}
		wait = min(d, 10*time.Minute)
	}
	f.mu.Lock()
	if health {
		f.queries = append(f.queries, want)
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for timedOut := false; want > 0 && f.index <= want && !f.failing && !timedOut; {
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-timeout.C:
			timedOut = true
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
	}
	if f.failing {
		f.mu.Unlock()
		http.Error(w, "fake outage: rpc error making call: No cluster leader", http.StatusInternalServerError)
		return
	}
	body, found := read()
	index := f.index
	f.mu.Unlock()
	w.Header().Set("X-Consul-Index", strconv.FormatUint(index, 10))
	w.Header().Set("X-Consul-KnownLeader", "true")
	w.Header().Set("X-Consul-LastContact", "0")
	if !found {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	_ = json.NewEncoder(w).Encode(body)
}
