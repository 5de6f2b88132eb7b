package app

import (
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/healthcheck"
	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/proxy"
)

// service is the running form of one configured service: its membership
// source, its health checker, and the proxy Upstream every route to it
// shares. A service whose configuration did not change survives a reload
// untouched, health state and connection pool included.
type service struct {
	name string
	cfg  config.Service

	zkconf     *discovery.LoadBalanceZkConf // nil for a static service
	static     *balancer.Static             // nil for a ZooKeeper service
	membership balancer.LoadBalanceConf
	health     *healthcheck.LoadBalanceCheckConf
	transport  *proxy.Transport
	upstream   *proxy.Upstream
	stats      *endpointStats
}

// newService starts the membership source and health checker of one
// service. zk may be nil when no ZooKeeper is configured.
func newService(name string, cfg config.Service, zk *discovery.Client, log logrus.FieldLogger) (*service, error) {
	s := &service{name: name, cfg: cfg, stats: newEndpointStats()}
	log = log.WithField("service", name)
	switch {
	case cfg.Discovery.Static != nil:
		eps, err := cfg.Discovery.Static.StaticEndpoints()
		if err != nil {
			return nil, fmt.Errorf("services.%s.discovery.static.%w", name, err)
		}
		s.static = balancer.NewStatic(eps...)
		s.membership = s.static
	case cfg.Discovery.ZooKeeper != nil:
		if zk == nil {
			return nil, fmt.Errorf("services.%s.discovery.zookeeper: no zookeeper client", name)
		}
		d := cfg.Discovery.ZooKeeper
		format, err := discovery.ParseFormat(d.Format)
		if err != nil {
			return nil, fmt.Errorf("services.%s.discovery.zookeeper.format: %w", name, err)
		}
		s.zkconf, err = discovery.NewLoadBalanceZkConf(zk, d.Path,
			discovery.ZkConfOptions{Format: format, EndpointName: d.EndpointName}, log)
		if err != nil {
			return nil, fmt.Errorf("services.%s.discovery.zookeeper: %w", name, err)
		}
		s.membership = s.zkconf
	default:
		return nil, fmt.Errorf("services.%s.discovery: neither zookeeper nor static", name)
	}
	s.membership.Attach(s.stats)

	hc, err := cfg.HealthCheck.CheckerConfig()
	if err == nil {
		s.health, err = healthcheck.New(s.membership, hc, log)
	}
	if err != nil {
		s.closeMembership()
		return nil, fmt.Errorf("services.%s.health_check: %w", name, err)
	}
	s.transport = proxy.NewTransport(proxy.TransportConfig{
		DialTimeout:           cfg.Timeouts.Dial,
		ResponseHeaderTimeout: cfg.Timeouts.ResponseHeader,
		IdleConnTimeout:       cfg.Timeouts.IdleConn,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
	})
	retry := proxy.RetryPolicy{Attempts: cfg.Retries.Attempts, BufferBodyBytes: cfg.Retries.BufferBodyBytes}
	for _, on := range cfg.Retries.On {
		switch on {
		case config.RetryConnectFailure:
			retry.OnBrokenConnection = true
		case config.RetryTimeout:
			retry.OnTimeout = true
		case config.RetryServerError:
			retry.OnServerError = true
		}
	}
	s.upstream = &proxy.Upstream{
		Name:           name,
		Transport:      s.transport,
		PassHostHeader: cfg.PassHostHeader,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		Retry:          retry,
		Reporter:       &countingReporter{next: s.health, stats: s.stats},
	}
	return s, nil
}

// sameConfig reports whether s runs exactly cfg, so a reload can keep it.
func (s *service) sameConfig(cfg config.Service) bool { return reflect.DeepEqual(s.cfg, cfg) }

// synced reports whether the service has its first membership.
func (s *service) synced() bool { return s.zkconf == nil || s.zkconf.Synced() }

func (s *service) closeMembership() {
	if s.zkconf != nil {
		s.zkconf.Close()
	}
	s.membership.Detach(s.stats)
}

// close stops the service's checker and watcher and its idle connections.
func (s *service) close() {
	_ = s.health.Close()
	s.closeMembership()
	s.transport.CloseIdleConnections()
}

// endpointStats counts, for the admin API, the attempts sent to each member
// of a service and those still in flight. It observes the service's
// membership so that the counter map is rebuilt only when members change;
// the request path only reads the map.
type endpointStats struct {
	counters atomic.Pointer[map[string]*endpointCounters]
}

// endpointCounters are one member's counters.
type endpointCounters struct {
	requests atomic.Uint64 // attempts finished
	inFlight atomic.Int64  // attempts picked and not yet done
}

func newEndpointStats() *endpointStats {
	s := &endpointStats{}
	m := map[string]*endpointCounters{}
	s.counters.Store(&m)
	return s
}

// Update implements balancer.Observer: keep the counters of members that
// stay, add fresh ones for new members. A departed member's counters are
// kept while it has attempts in flight, so that a member leaving and coming
// back while requests to it run is not counted below zero.
func (s *endpointStats) Update(eps []balancer.Endpoint) {
	old := *s.counters.Load()
	next := make(map[string]*endpointCounters, len(eps))
	for _, e := range eps {
		if c, ok := old[e.Addr]; ok {
			next[e.Addr] = c
		} else {
			next[e.Addr] = new(endpointCounters)
		}
	}
	for addr, c := range old {
		if _, ok := next[addr]; !ok && c.inFlight.Load() > 0 {
			next[addr] = c
		}
	}
	s.counters.Store(&next)
}

func (s *endpointStats) get(addr string) *endpointCounters {
	return (*s.counters.Load())[addr]
}

func (s *endpointStats) requests(addr string) uint64 {
	if c := s.get(addr); c != nil {
		return c.requests.Load()
	}
	return 0
}

func (s *endpointStats) inFlight(addr string) int64 {
	if c := s.get(addr); c != nil {
		return max(c.inFlight.Load(), 0)
	}
	return 0
}

// countingBalancer wraps a route's balancer to count the attempts in flight
// to each endpoint: from Pick to Done, which the proxy calls exactly once
// for every pick because countingBalancer is a balancer.Tracker. Done is
// passed on when the wrapped balancer tracks load itself (least_request).
type countingBalancer struct {
	balancer.Balancer
	track balancer.Tracker // Balancer as a Tracker; nil if it is none
	stats *endpointStats
}

func newCountingBalancer(b balancer.Balancer, stats *endpointStats) *countingBalancer {
	track, _ := b.(balancer.Tracker)
	return &countingBalancer{Balancer: b, track: track, stats: stats}
}

// Pick implements balancer.Balancer.
func (b *countingBalancer) Pick(key string) (balancer.Endpoint, error) {
	ep, err := b.Balancer.Pick(key)
	if err == nil {
		if c := b.stats.get(ep.Addr); c != nil {
			c.inFlight.Add(1)
		}
	}
	return ep, err
}

// Done implements balancer.Tracker.
func (b *countingBalancer) Done(ep balancer.Endpoint) {
	if c := b.stats.get(ep.Addr); c != nil {
		c.inFlight.Add(-1)
	}
	if b.track != nil {
		b.track.Done(ep)
	}
}

// countingReporter counts each attempt per endpoint and passes its outcome
// on to the passive health checker.
type countingReporter struct {
	next  proxy.Reporter
	stats *endpointStats
}

func (r *countingReporter) Report(addr string, o healthcheck.Outcome) {
	if c := r.stats.get(addr); c != nil {
		c.requests.Add(1)
	}
	r.next.Report(addr, o)
}
