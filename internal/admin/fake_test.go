package admin

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// fakeSource is a Source over plain data that tests change while the server
// runs. Drain and Undrain flip the endpoint's state, as the real one does.
type fakeSource struct {
	mu        sync.Mutex
	tls       *TLSInfo // a websecure entry point when set
	routes    []RouteInfo
	services  map[string]ServiceInfo
	zk        ZooKeeperInfo
	ready     bool
	reason    string
	reloadErr error
	reloads   int
	actions   []string // "drain svc addr", "undrain svc addr"
}

var _ Source = (*fakeSource)(nil)

func newFakeSource() *fakeSource {
	t0 := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	return &fakeSource{
		ready: true,
		routes: []RouteInfo{
			{Name: "echo", Priority: 10, PathPrefix: "/echo", Service: "echo", Balancer: "weighted_round_robin", StripPrefix: true,
				Traffic: traffic(60, 12960, 180, 54, 0.0042, 0.21)},
			{Name: "users", Priority: 5, Hosts: []string{"api.example.com"}, PathPrefix: "/users", Methods: []string{"GET", "POST"},
				Service: "users", Balancer: "consistent_hash", HashOn: "header:X-User-ID", Traffic: traffic(60, 16200, 0, 0, 0.0021, 0.0094)},
		},
		services: map[string]ServiceInfo{
			"echo": {
				Name:      "echo",
				Discovery: DiscoveryInfo{Kind: "zookeeper", Path: "/services/echo", Format: "auto"},
				Synced:    true,
				LastSync:  t0,
				Traffic:   upstream(traffic(60, 12960, 180, 54, 0.0042, 0.21), 2),
				Endpoints: []EndpointInfo{
					{Addr: "127.0.0.1:9001", ID: "echo-1", Weight: 1, Format: "plain", ZNode: "/services/echo/127.0.0.1:9001", State: StateHealthy, Since: t0.Add(-3 * time.Hour), LastProbe: t0, LastProbeResult: "ok", Requests: 1200,
						Traffic: upstream(traffic(60, 3240, 0, 0, 0.0038, 0.012), 0)},
					{Addr: "127.0.0.1:9002", ID: "echo-2", Weight: 3, Format: "plain", ZNode: "/services/echo/127.0.0.1:9002", State: StateHealthy, Since: t0.Add(-3 * time.Hour), LastProbe: t0, LastProbeResult: "ok", Requests: 3400, InFlight: 2,
						Traffic: upstream(traffic(60, 9720, 0, 0, 0.0041, 0.015), 0)},
					{Addr: "127.0.0.1:9003", ID: "echo-3", Weight: 1, Format: "plain", ZNode: "/services/echo/127.0.0.1:9003", State: StateUnhealthy, Since: t0.Add(-134 * time.Second), LastProbe: t0, LastProbeResult: "GET /healthz: status 500", ConsecutiveFailures: 4, Requests: 90,
						Traffic: upstream(traffic(60, 90, 90, 0, 0.0017, 0.0031), 0)},
					{Addr: "127.0.0.1:9004", ID: "echo-4", Weight: 1, Format: "plain", ZNode: "/services/echo/127.0.0.1:9004", State: StateEjected, Since: t0.Add(-8 * time.Second), LastProbe: t0, LastProbeResult: "ok", Requests: 410,
						Traffic: upstream(traffic(60, 144, 144, 54, 1.9, 2.2), 2)},
					{Addr: "127.0.0.1:9005", ID: "echo-5", Weight: 1, Format: "plain", ZNode: "/services/echo/127.0.0.1:9005", State: StateDraining, Since: t0.Add(-5 * time.Minute), LastProbe: t0, LastProbeResult: "ok", Requests: 75},
				},
			},
			"users": {
				Name:      "users",
				Discovery: DiscoveryInfo{Kind: "zookeeper", Path: "/services/users", Format: "curator"},
				Synced:    true,
				Stale:     true,
				LastSync:  t0.Add(-30 * time.Second),
				Snapshot:  &ServiceSnapshot{ReadAt: t0.Add(-754 * time.Second), AgeSeconds: 754},
				Traffic:   upstream(traffic(60, 16200, 0, 0, 0.0021, 0.0094), 0),
				Endpoints: []EndpointInfo{
					{Addr: "127.0.0.1:9101", ID: "3f1c9a2e-users-1", Weight: 5, Format: "curator", ZNode: "/services/users/3f1c9a2e-users-1", State: StateHealthy, Since: t0.Add(-754 * time.Second), Requests: 800,
						Traffic: upstream(traffic(60, 16200, 0, 0, 0.0021, 0.0094), 0)},
				},
			},
		},
		zk: ZooKeeperInfo{
			Servers:   []string{"127.0.0.1:2181"},
			State:     "connected",
			Since:     t0.Add(-time.Hour),
			SessionID: "0x1000a2b3c4d0000",
			Connected: true,
			Snapshot: &SnapshotFileInfo{Path: "/var/lib/zkgate/membership.json", Loaded: true, Written: t0.Add(-750 * time.Second),
				Seeded: []string{"users"}, Writes: 4, LastWrite: t0},
		},
	}
}

func (f *fakeSource) Routes() []RouteInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.routes)
}

func (f *fakeSource) Services() []ServiceInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, 0, len(f.services))
	for n := range f.services {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]ServiceInfo, 0, len(names))
	for _, n := range names {
		out = append(out, f.copyService(n))
	}
	return out
}

func (f *fakeSource) Service(name string) (ServiceInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.services[name]; !ok {
		return ServiceInfo{}, false
	}
	return f.copyService(name), true
}

func (f *fakeSource) copyService(name string) ServiceInfo {
	s := f.services[name]
	s.Endpoints = slices.Clone(s.Endpoints)
	return s
}

func (f *fakeSource) Drain(service, addr string) error {
	return f.setState(service, addr, "drain", StateDraining)
}

func (f *fakeSource) Undrain(service, addr string) error {
	return f.setState(service, addr, "undrain", StateHealthy)
}

func (f *fakeSource) setState(service, addr, action, state string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.services[service]
	if !ok {
		return fmt.Errorf("service %q: %w", service, ErrNotFound)
	}
	i := slices.IndexFunc(s.Endpoints, func(e EndpointInfo) bool { return e.Addr == addr })
	if i < 0 {
		return fmt.Errorf("endpoint %s of service %q: %w", addr, service, ErrNotFound)
	}
	s.Endpoints = slices.Clone(s.Endpoints)
	s.Endpoints[i].State = state
	f.services[service] = s
	f.actions = append(f.actions, action+" "+service+" "+addr)
	return nil
}

func (f *fakeSource) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.reloadErr
}

func (f *fakeSource) ZooKeeper() ZooKeeperInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	zk := f.zk
	zk.Servers = slices.Clone(zk.Servers)
	return zk
}

func (f *fakeSource) Gateway() GatewayInfo {
	f.mu.Lock()
	started := f.zk.Since.Add(-2 * time.Hour) // three hours before the fake's time
	tls := f.tls
	f.mu.Unlock()
	gi := GatewayInfo{
		Version:   "v9.9.9-test",
		StartedAt: started,
		EntryPoints: []EntryPointInfo{{
			Name: "web", Address: "127.0.0.1:8080", Protocol: "http", HTTP2: "auto", FastPath: true,
			Connections: map[string]int{"serving": 1, "waiting": 2, "parked": 30, "tunnel": 4, "nethttp": 0},
		}},
	}
	if tls != nil {
		gi.EntryPoints = append(gi.EntryPoints, EntryPointInfo{
			Name: "websecure", Address: "127.0.0.1:8443", Protocol: "https", HTTP2: "auto",
			Connections: map[string]int{"nethttp": 2}, TLS: tls,
		})
	}
	return gi
}

func (f *fakeSource) Ready() (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready, f.reason
}

// update runs fn under the source's lock.
func (f *fakeSource) update(fn func(f *fakeSource)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// removeEndpoint deletes addr from service.
func (f *fakeSource) removeEndpoint(service, addr string) {
	f.update(func(f *fakeSource) {
		s := f.services[service]
		s.Endpoints = slices.DeleteFunc(slices.Clone(s.Endpoints), func(e EndpointInfo) bool { return e.Addr == addr })
		f.services[service] = s
	})
}

// addTraffic adds n requests per unit of weight to every healthy endpoint,
// as a balancer would spread them.
func (f *fakeSource) addTraffic(n uint64) {
	f.update(func(f *fakeSource) {
		for name, s := range f.services {
			s.Endpoints = slices.Clone(s.Endpoints)
			for i := range s.Endpoints {
				if s.Endpoints[i].State == StateHealthy {
					s.Endpoints[i].Requests += n * uint64(s.Endpoints[i].Weight)
				}
			}
			f.services[name] = s
		}
	})
}

// rebase moves every timestamp so that the newest is now.
func (f *fakeSource) rebase(now time.Time) {
	f.update(func(f *fakeSource) {
		shift := now.Sub(f.services["echo"].LastSync)
		for name, s := range f.services {
			s.Endpoints = slices.Clone(s.Endpoints)
			if !s.LastSync.IsZero() {
				s.LastSync = s.LastSync.Add(shift)
			}
			for i := range s.Endpoints {
				if !s.Endpoints[i].LastProbe.IsZero() {
					s.Endpoints[i].LastProbe = s.Endpoints[i].LastProbe.Add(shift)
				}
				if !s.Endpoints[i].Since.IsZero() {
					s.Endpoints[i].Since = s.Endpoints[i].Since.Add(shift)
				}
			}
			f.services[name] = s
		}
		f.zk.Since = f.zk.Since.Add(shift)
	})
}

// traffic returns the figures of a window of window seconds; p50 and p99
// in seconds, absent without requests.
func traffic(window float64, requests, errors, retries uint64, p50, p99 float64) Traffic {
	t := Traffic{WindowSeconds: window, Requests: requests, Errors: errors, Retries: retries}
	if requests > 0 {
		t.LatencyP50Seconds, t.LatencyP99Seconds = &p50, &p99
	}
	return t
}

func upstream(t Traffic, ejections uint64) UpstreamTraffic {
	return UpstreamTraffic{Traffic: t, Ejections: ejections}
}

var errBadConfig = errors.New(`config gateway.yaml: routes[1].service: unknown service "nope"`)
