package app

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zkgate/zkgate/healthcheck"
	"github.com/zkgate/zkgate/internal/admin"
	"github.com/zkgate/zkgate/internal/metrics"
	"github.com/zkgate/zkgate/internal/version"
)

// The Gateway is the admin API's view of the running state.
var _ admin.Source = (*Gateway)(nil)

// Routes implements admin.Source.
func (g *Gateway) Routes() []admin.RouteInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]admin.RouteInfo, 0, len(g.routes))
	now := time.Now()
	for _, r := range g.routes {
		out = append(out, admin.RouteInfo{
			Name:        r.cfg.Name,
			Priority:    r.cfg.Priority,
			Hosts:       r.cfg.Match.Hosts,
			PathPrefix:  r.cfg.Match.PathPrefix,
			Methods:     r.cfg.Match.Methods,
			Service:     r.cfg.Service,
			Balancer:    r.cfg.Balancer,
			HashOn:      r.cfg.HashOn,
			StripPrefix: r.cfg.StripPrefix,
			Traffic:     g.traffic.route(r.cfg.Name, now),
		})
	}
	return out
}

// Services implements admin.Source.
func (g *Gateway) Services() []admin.ServiceInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]admin.ServiceInfo, 0, len(g.services))
	for _, name := range slices.Sorted(maps.Keys(g.services)) {
		out = append(out, g.services[name].info())
	}
	return out
}

// Service implements admin.Source.
func (g *Gateway) Service(name string) (admin.ServiceInfo, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.services[strings.ToLower(name)]
	if !ok {
		return admin.ServiceInfo{}, false
	}
	return s.info(), true
}

func (s *service) info() admin.ServiceInfo {
	si := admin.ServiceInfo{Name: s.name, Synced: s.synced()}
	if s.zkconf != nil {
		cs := s.zkconf.Stats()
		si.Discovery = admin.DiscoveryInfo{Kind: "zookeeper", Path: cs.Path, Format: s.cfg.Discovery.ZooKeeper.Format, Filtered: cs.Filtered}
		if cs.Propagation.Count > 0 {
			lag := cs.Propagation.Last.Seconds()
			si.Discovery.LastPropagationSeconds = &lag
		}
		si.Stale = cs.Stale
		si.LastSync = cs.LastSync
		if at, ok := s.zkconf.Seeded(); ok {
			si.Snapshot = &admin.ServiceSnapshot{ReadAt: at, AgeSeconds: time.Since(at).Seconds()}
		}
	} else {
		si.Discovery = admin.DiscoveryInfo{Kind: "static"}
	}
	h := s.health.Status()
	now := time.Now()
	si.Traffic = upstreamTrafficOf(s.stats.service.Summary(now))
	si.Panicking = h.Panicking
	si.RemovalGuard = admin.RemovalGuardInfo{
		Active:      !h.RemovalGuardUntil.IsZero(),
		Held:        h.RemovalGuardHeld,
		Until:       h.RemovalGuardUntil,
		Engagements: h.RemovalGuardEngagements,
	}
	for _, e := range h.Endpoints {
		ei := admin.EndpointInfo{
			Addr:                e.Addr,
			Weight:              e.Weight,
			State:               e.State,
			Since:               e.Since,
			LastProbe:           e.LastProbe,
			LastProbeResult:     e.LastProbeResult,
			ConsecutiveFailures: e.ConsecutiveFailures,
			Held:                e.Held,
			InFlight:            s.stats.inFlight(e.Addr),
			Requests:            s.stats.requests(e.Addr),
			Traffic:             s.stats.endpoint(e.Addr, now),
		}
		// Each fact once (issue 22): a ZooKeeper member's id is its znode
		// path, shown as znode; an id that is the address is not repeated;
		// the node format is a field of its own, not also in meta.
		switch {
		case s.zkconf != nil:
			ei.ZNode = e.ID
		case e.ID != e.Addr:
			ei.ID = e.ID
		}
		for k, v := range e.Meta {
			if k == "format" {
				ei.Format = v
				continue
			}
			if ei.Meta == nil {
				ei.Meta = make(map[string]string, len(e.Meta))
			}
			ei.Meta[k] = v
		}
		si.Endpoints = append(si.Endpoints, ei)
	}
	return si // the admin server derives the counts by state
}

// Drain implements admin.Source: the endpoint leaves the balancers, and
// its keep-alive connections close (idle ones now, the others as their
// requests end).
func (g *Gateway) Drain(service, addr string) error {
	return g.setDraining(service, addr, true)
}

// Undrain implements admin.Source.
func (g *Gateway) Undrain(service, addr string) error {
	return g.setDraining(service, addr, false)
}

func (g *Gateway) setDraining(service, addr string, draining bool) error {
	g.mu.Lock()
	s, ok := g.services[strings.ToLower(service)]
	g.mu.Unlock()
	if !ok {
		return fmt.Errorf("service %q: %w", service, admin.ErrNotFound)
	}
	f := (*healthcheck.LoadBalanceCheckConf).Undrain
	if draining {
		f = (*healthcheck.LoadBalanceCheckConf).Drain
	}
	if err := f(s.health, addr); err != nil {
		return fmt.Errorf("service %q endpoint %q: %w", service, addr, admin.ErrNotFound)
	}
	s.transport.SetDraining(addr, draining)
	return nil
}

// Reload implements admin.Source.
func (g *Gateway) Reload() error { return g.reload("admin API") }

// ZooKeeper implements admin.Source.
func (g *Gateway) ZooKeeper() admin.ZooKeeperInfo {
	cfg := g.cfg.Load()
	zi := admin.ZooKeeperInfo{Servers: cfg.ZooKeeper.Servers, State: stateNotConfigured}
	zk := g.zk.Load()
	if zk == nil {
		return zi
	}
	st := zk.Status()
	zi.State = st.State.String()
	zi.Since = st.Since
	zi.Connected = st.HasSession
	if e := st.OutageError(); e != "" {
		zi.LastError, zi.LastErrorAt = e, st.LastErrorAt
	}
	if st.SessionID != 0 {
		zi.SessionID = "0x" + strconv.FormatInt(st.SessionID, 16)
	}
	if st.Established > 0 {
		zi.Reconnects = st.Established - 1
	}
	zi.Expirations = st.Expirations
	if snap := g.snapshot.Load(); snap != nil {
		g.mu.Lock()
		zi.Snapshot = snap.info(g.services)
		g.mu.Unlock()
	}
	return zi
}

// stateNotConfigured is the session state shown without ZooKeeper.
const stateNotConfigured = "not_configured"

// Gateway implements admin.Source: the version, the start and the entry
// points with their connections.
func (g *Gateway) Gateway() admin.GatewayInfo {
	info := admin.GatewayInfo{Version: version.Version, StartedAt: g.started}
	if eps := g.entryPoints.Load(); eps != nil {
		for _, name := range slices.Sorted(maps.Keys(*eps)) {
			ep := (*eps)[name]
			info.EntryPoints = append(info.EntryPoints, admin.EntryPointInfo{
				Name: name, Address: ep.addr, Protocol: protocolOf(ep.cfg), HTTP2: ep.cfg.HTTP2, RedirectTo: ep.cfg.RedirectTo,
				FastPath: ep.srv.FastPath(), Connections: ep.connections(),
				TLS: tlsInfo(ep.cfg, ep.tls),
			})
		}
	}
	return info
}

// Ready implements admin.Source: ready once every service has its first
// membership, and not while draining.
func (g *Gateway) Ready() (bool, string) {
	if g.draining.Load() {
		return false, "draining"
	}
	if !g.serving.Load() {
		return false, "starting"
	}
	if reason := g.fleetPending(); reason != "" {
		return false, reason
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(g.services)) {
		if g.services[name].synced() {
			continue
		}
		reason := "service " + name + ": first zookeeper sync pending"
		if _, ok := g.services[name].zkconf.Seeded(); ok {
			reason += " (serving the membership snapshot's members)"
		}
		if zk := g.zk.Load(); zk != nil && !zk.HasSession() {
			st := zk.Status()
			reason += "; no zookeeper session (" + st.State.String()
			if e := st.OutageError(); e != "" {
				reason += ", last error: " + e
			}
			reason += ")"
		}
		return false, reason
	}
	return true, ""
}

// metricsState gives the scrape-time gauges their values.
func (g *Gateway) metricsState() metrics.State {
	var st metrics.State
	if zk := g.zk.Load(); zk != nil {
		zs := zk.Status()
		st.ZooKeeper = metrics.ZooKeeperState{State: zs.State.String(), Expirations: zs.Expirations}
		if zs.Established > 0 {
			st.ZooKeeper.Reconnects = zs.Established - 1
		}
	} else {
		st.ZooKeeper.State = stateNotConfigured
	}
	if g.access != nil {
		st.HasAccessLog = true
		st.AccessLogDropped = g.access.Dropped()
	}
	if snap := g.snapshot.Load(); snap != nil {
		ws := snap.writer.Stats()
		st.HasSnapshot, st.SnapshotWrites, st.SnapshotWriteErrors = true, ws.Writes, ws.Errors
	}
	st.TLS = g.tlsMetrics()
	st.Fleet = g.fleetMetrics()
	if eps := g.entryPoints.Load(); eps != nil {
		for _, name := range slices.Sorted(maps.Keys(*eps)) {
			st.Connections = append(st.Connections, metrics.EntryPointConnections{EntryPoint: name, States: (*eps)[name].connections()})
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(g.services)) {
		s := g.services[name]
		h := s.health.Status()
		ss := metrics.ServiceState{
			Name:             name,
			Endpoints:        map[string]int{},
			Panicking:        h.Panicking,
			PanicActivations: h.PanicActivations,
			Ejections:        h.Ejections,
			Probes:           h.Probes,
			ProbeFailures:    h.ProbeFailures,

			RemovalGuardActive:      !h.RemovalGuardUntil.IsZero(),
			RemovalGuardEngagements: h.RemovalGuardEngagements,
		}
		for _, e := range h.Endpoints {
			ss.Endpoints[e.State]++
		}
		if b := s.upstream.Retry.Budget; b != nil {
			ss.RetryBudgetExhausted = b.Exhausted()
		}
		if s.zkconf != nil {
			cs := s.zkconf.Stats()
			ss.Stale, ss.LastSync = cs.Stale, cs.LastSync
			ss.WatchEvents, ss.MalformedNodes = cs.WatchEvents, cs.MalformedTotal
			if !cs.SeededAt.IsZero() {
				ss.Seeded, ss.SnapshotAge = true, time.Since(cs.SeededAt)
			}
			ss.Propagation = cs.Propagation
		}
		st.Services = append(st.Services, ss)
	}
	return st
}
