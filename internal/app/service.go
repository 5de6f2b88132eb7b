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
	"github.com/zkgate/zkgate/internal/stats"
	"github.com/zkgate/zkgate/proxy"
)

// service is the running form of one configured service: its membership
// source, its health checker, and the proxy Upstream every route to it
// shares. A service whose configuration did not change survives a reload
// untouched, health state and connection pool included. newService builds
// it, start starts it.
type service struct {
	name string
	cfg  config.Service

	zkOpts     discovery.ZkConfOptions           // of a ZooKeeper service
	checker    healthcheck.Config                // the health checker's configuration
	zkconf     *discovery.LoadBalanceZkConf      // nil for a static service and until start
	static     *balancer.Static                  // nil for a ZooKeeper service
	membership balancer.LoadBalanceConf          // nil for a ZooKeeper service until start
	health     *healthcheck.LoadBalanceCheckConf // nil until start
	transport  *proxy.Transport
	upstream   *proxy.Upstream
	reporter   *countingReporter // the upstream's; passes outcomes on to health
	stats      *endpointStats
	files      [32]byte // upstreamFilesDigest when built
}

// newService builds one service from its configuration and checks
// everything start needs from it, so that a service that builds also
// starts: zkgate validate builds services and starts none. It connects,
// listens and probes nothing.
func newService(name string, cfg config.Service) (*service, error) {
	s := &service{name: name, cfg: cfg, stats: newEndpointStats()}
	switch {
	case cfg.Discovery.Static != nil:
		eps, err := cfg.Discovery.Static.StaticEndpoints()
		if err != nil {
			return nil, fmt.Errorf("services.%s.discovery.static.%w", name, err)
		}
		s.static = balancer.NewStatic(eps...)
		s.membership = s.static
	case cfg.Discovery.ZooKeeper != nil:
		d := cfg.Discovery.ZooKeeper
		format, err := discovery.ParseFormat(d.Format)
		if err != nil {
			return nil, fmt.Errorf("services.%s.discovery.zookeeper.format: %w", name, err)
		}
		filter, err := discovery.NewFilter(d.Filter)
		if err != nil {
			return nil, fmt.Errorf("services.%s.discovery.zookeeper.%w", name, err)
		}
		s.zkOpts = discovery.ZkConfOptions{Format: format, EndpointName: d.EndpointName, Filter: filter}
	default:
		return nil, fmt.Errorf("services.%s.discovery: neither zookeeper nor static", name)
	}
	// A Curator registration's sslPort is the endpoint of a TLS service.
	s.zkOpts.SSL = cfg.Upstream.UsesTLS()
	s.files = upstreamFilesDigest(cfg.Upstream)
	tlsCfg, err := upstreamTLS("services."+name+".upstream", cfg.Upstream)
	if err != nil {
		return nil, err
	}
	if s.checker, err = cfg.CheckerConfig(); err != nil {
		return nil, fmt.Errorf("services.%s.health_check: %w", name, err)
	}
	// Probes speak what requests do.
	s.checker.Active.TLS = tlsCfg
	s.checker.Active.H2C = cfg.Upstream.Protocol == config.ProtocolH2C
	s.checker.Active.H2 = cfg.Upstream.Protocol == config.ProtocolH2
	s.transport = proxy.NewTransport(proxy.TransportConfig{
		DialTimeout:           cfg.Timeouts.Dial,
		ResponseHeaderTimeout: cfg.Timeouts.ResponseHeader,
		IdleConnTimeout:       cfg.Timeouts.IdleConn,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		Protocol:              upstreamProtocol(cfg.Upstream),
		TLS:                   tlsCfg,
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
	if b := cfg.Retries.Budget; b.Enabled && retry.Attempts > 1 {
		if retry.Budget, err = proxy.NewRetryBudget(b.BudgetConfig()); err != nil {
			return nil, fmt.Errorf("services.%s.retries.budget.%w", name, err)
		}
	}
	s.reporter = &countingReporter{stats: s.stats}
	s.upstream = &proxy.Upstream{
		Name:           name,
		Transport:      s.transport,
		PassHostHeader: cfg.PassHostHeader,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		Retry:          retry,
		Reporter:       s.reporter,
		Attempts:       s.stats,
	}
	return s, nil
}

// start starts the service's ZooKeeper watch (zk may be nil when no
// ZooKeeper is configured), whose lists go to snap (nil without a snapshot
// file), and health checker. It runs before any route to the service serves
// a request.
func (s *service) start(zk *discovery.Client, snap *membershipSnapshot, log logrus.FieldLogger) error {
	log = log.WithField("service", s.name)
	if d := s.cfg.Discovery.ZooKeeper; d != nil {
		if zk == nil {
			return fmt.Errorf("services.%s.discovery.zookeeper: no zookeeper client", s.name)
		}
		opts := s.zkOpts
		opts.OnPublish = snap.record(s.name, d.Path)
		z, err := discovery.NewLoadBalanceZkConf(zk, d.Path, opts, log)
		if err != nil {
			return fmt.Errorf("services.%s.discovery.zookeeper: %w", s.name, err)
		}
		s.zkconf, s.membership = z, z
	}
	s.membership.Attach(s.stats)
	// The transport's pools follow the checker's members: a departed
	// member's keep-alive connections close when the checker drops it
	// (after the removal guard's hold, if one holds it), not at the idle
	// timeout.
	h, err := healthcheck.New(s.membership, s.checker, log, healthcheck.OnEject(s.stats.eject),
		healthcheck.OnMembers(s.transport.Retain))
	if err != nil {
		s.closeMembership()
		return fmt.Errorf("services.%s.health_check: %w", s.name, err)
	}
	s.health = h
	s.reporter.next = h
	return nil
}

// sameConfig reports whether s runs exactly cfg, so a reload can keep it.
// A service whose upstream TLS files changed is rebuilt too (a renewed
// CA or client certificate).
func (s *service) sameConfig(cfg config.Service) bool {
	return reflect.DeepEqual(s.cfg, cfg) && s.files == upstreamFilesDigest(cfg.Upstream)
}

// synced reports whether the service has its first membership.
func (s *service) synced() bool { return s.zkconf == nil || s.zkconf.Synced() }

func (s *service) closeMembership() {
	if s.zkconf != nil {
		s.zkconf.Close()
	}
	s.membership.Detach(s.stats)
}

// close stops the service's checker and watcher, and its connections:
// idle ones now, those of requests still running as they end.
func (s *service) close() {
	_ = s.health.Close()
	s.closeMembership()
	s.transport.Close()
}

// endpointStats counts, for the admin API, the attempts sent to each member
// of a service and those still in flight, and keeps the last minute of the
// traffic of the service and of each member (traffic.go). It observes the
// service's membership so that the counter map is rebuilt only when members
// change, and a departed member's counters go with it; the request path only
// reads the map.
type endpointStats struct {
	counters atomic.Pointer[map[string]*endpointCounters]
	service  *stats.Window // of every route to the service
}

// endpointCounters are one member's counters.
type endpointCounters struct {
	requests atomic.Uint64 // attempts finished
	inFlight atomic.Int64  // attempts picked and not yet done
	window   *stats.Window // its attempts and ejections
}

func newEndpointStats() *endpointStats {
	s := &endpointStats{service: stats.NewWindow(stats.Now())}
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
	now := stats.Now()
	for _, e := range eps {
		if c, ok := old[e.Addr]; ok {
			next[e.Addr] = c
		} else {
			next[e.Addr] = &endpointCounters{window: stats.NewWindow(now)}
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
