package config

import (
	"path"
	"reflect"
	"time"

	"github.com/zkgate/zkgate/discovery"
	"github.com/zkgate/zkgate/proxy"
)

// This file is the one place that holds default values. The structs below
// are turned into maps (toMap) and merged under what the file and the
// environment give (mergeDefaults), before decoding; a key given explicitly,
// even as 0 or false, keeps its value.

// DefaultEntryPoint is the name of the entry point used when the file
// declares none.
const DefaultEntryPoint = "web"

// Default returns the configuration used for every key the file omits: one
// entry point, no routes and no services.
func Default() *Config {
	return &Config{
		EntryPoints: map[string]EntryPoint{DefaultEntryPoint: defaultEntryPoint()},
		Admin:       Admin{Address: "127.0.0.1:9901"},
		Log: Log{
			Level:     "info",
			Format:    "auto",
			AccessLog: AccessLog{Enabled: true},
		},
		TrustedProxies: []string{},
		Shutdown:       Shutdown{DrainDelay: 5 * time.Second, GraceTimeout: 30 * time.Second},
		ZooKeeper: ZooKeeper{
			Servers:        []string{"127.0.0.1:2181"},
			SessionTimeout: 10 * time.Second,
			BasePath:       "/services",
			Auth:           ZooKeeperAuth{Scheme: "digest"},
			ResyncInterval: 30 * time.Second,
		},
		Fleet: Fleet{
			ConfigPath:   "/zkgate/config",
			GatewaysPath: "/zkgate/gateways",
			ACL:          FleetACL{WorldRead: true},
		},
		Routes:   []Route{},
		Services: map[string]Service{},
	}
}

// defaultEntryPoint holds the defaults of every entry point.
func defaultEntryPoint() EntryPoint {
	return EntryPoint{
		Address:           ":8080",
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		// The request limits are the proxy's own defaults, decided there.
		MaxHeaderBytes: proxy.DefaultMaxHeaderBytes,
		MaxHeaderCount: proxy.DefaultMaxHeaderCount,
		MaxTargetBytes: proxy.DefaultMaxTargetBytes,
		MaxBodyBytes:   proxy.DefaultMaxBodyBytes,
		BodyTimeout:    proxy.DefaultBodyTimeout,
		MinBodyRate:    proxy.DefaultMinBodyRate,
		FastPath:       true,
		Loops:          LoopsAuto,
		HTTP2:          HTTP2Auto,
		HTTP2Server:    HTTP2ServerZkgate,
	}
}

// defaultRoute holds the defaults of every route.
func defaultRoute() Route {
	return Route{
		Balancer: "weighted_round_robin",
		Match: Match{
			Hosts:   []string{},
			Methods: []string{},
			Headers: map[string]string{},
			Query:   map[string]string{},
		},
		RequestHeaders:  HeaderRules{Set: map[string]string{}, Remove: []string{}},
		ResponseHeaders: HeaderRules{Set: map[string]string{}, Remove: []string{}},
		Timeout:         30 * time.Second,
		IPAllow:         []string{},
		IPDeny:          []string{},
	}
}

// defaultService holds the defaults of every service, discovery aside: the
// discovery defaults depend on which source the file chose (see
// defaultZooKeeperDiscovery).
func defaultService() Service {
	return Service{
		PassHostHeader: true,
		HealthCheck: HealthCheck{
			Active: ActiveHealthCheck{
				Type:               CheckNone,
				Path:               "/",
				ExpectStatus:       "200-399",
				Interval:           2 * time.Second,
				Timeout:            time.Second,
				HealthyThreshold:   2,
				UnhealthyThreshold: 2,
				RequireFirstPass:   true,
			},
			Passive: PassiveHealthCheck{
				MaxFailures:        3,
				Ejection:           10 * time.Second,
				MaxEjectionPercent: 50,
			},
		},
		RemovalGuard: RemovalGuard{MaxPercent: 50, Hold: 30 * time.Second},
		Timeouts: Timeouts{
			Dial:           2 * time.Second,
			ResponseHeader: 15 * time.Second,
			IdleConn:       90 * time.Second,
		},
		MaxIdleConnsPerHost: 256,
		SlowStart:           0, // off
		Upstream:            Upstream{Protocol: ProtocolHTTP1},
		Retries: Retries{
			Attempts:        2,
			On:              []string{RetryConnectFailure},
			BufferBodyBytes: 64 << 10,
			// Finagle's and Linkerd's default budget.
			Budget: RetryBudget{Enabled: true, Percent: 20, MinPerSecond: 10, Window: proxy.DefaultRetryBudgetWindow},
		},
	}
}

// defaultZooKeeperDiscovery holds the defaults of a ZooKeeper discovery; the
// path default is derived after decoding (defaultServicePath).
func defaultZooKeeperDiscovery() ZooKeeperDiscovery {
	return ZooKeeperDiscovery{Format: string(discovery.FormatAuto), Filter: map[string]string{}}
}

// defaultServicePath is the znode watched for a service without a path.
func defaultServicePath(basePath, service string) string {
	return path.Join(basePath, service)
}

// applyDefaults merges the defaults under raw, the settings read from the
// file and the environment, in place.
func applyDefaults(raw map[string]any) {
	def := Default()
	top := toMap(reflect.ValueOf(*def)).(map[string]any)
	delete(top, "entry_points") // per entry point, below
	mergeDefaults(raw, top)

	epDefault := toMap(reflect.ValueOf(defaultEntryPoint())).(map[string]any)
	if isNil(raw["entry_points"]) {
		raw["entry_points"] = map[string]any{DefaultEntryPoint: epDefault}
	}
	forEachMap(raw["entry_points"], func(ep map[string]any) { mergeDefaults(ep, epDefault) })

	routeDefault := toMap(reflect.ValueOf(defaultRoute())).(map[string]any)
	if routes, ok := raw["routes"].([]any); ok {
		for _, r := range routes {
			if m, ok := r.(map[string]any); ok {
				mergeDefaults(m, routeDefault)
			}
		}
	}

	svcDefault := toMap(reflect.ValueOf(defaultService())).(map[string]any)
	delete(svcDefault, "discovery")
	zkDefault := toMap(reflect.ValueOf(defaultZooKeeperDiscovery())).(map[string]any)
	forEachMap(raw["services"], func(svc map[string]any) {
		mergeDefaults(svc, svcDefault)
		disc, ok := svc["discovery"].(map[string]any)
		if isNil(svc["discovery"]) {
			disc, ok = map[string]any{}, true
			svc["discovery"] = disc
		}
		if !ok {
			return // not a mapping: the decoder reports it
		}
		if isNil(disc["zookeeper"]) && isNil(disc["static"]) {
			disc["zookeeper"] = map[string]any{}
		}
		if zk, ok := disc["zookeeper"].(map[string]any); ok {
			mergeDefaults(zk, zkDefault)
		}
	})
}

// forEachMap calls f on every value of m that is itself a mapping.
func forEachMap(m any, f func(map[string]any)) {
	mm, ok := m.(map[string]any)
	if !ok {
		return
	}
	for _, v := range mm {
		if vm, ok := v.(map[string]any); ok {
			f(vm)
		}
	}
}
