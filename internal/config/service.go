package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/proxy"
)

// Service is one backend service: where its endpoints come from and how they
// are reached and checked.
type Service struct {
	// Discovery says where the endpoints come from: exactly one of
	// ZooKeeper and Static. Default: ZooKeeper at zookeeper.base_path/<name>.
	Discovery Discovery `mapstructure:"discovery"`
	// PassHostHeader sends the client's Host header upstream; when false
	// the endpoint's "host:port" is sent. Default true.
	PassHostHeader bool `mapstructure:"pass_host_header"`
	// HealthCheck configures active and passive health checking.
	HealthCheck HealthCheck `mapstructure:"health_check"`
	// RemovalGuard holds membership changes that remove many members at
	// once.
	RemovalGuard RemovalGuard `mapstructure:"removal_guard"`
	// Timeouts are the upstream connection timeouts.
	Timeouts Timeouts `mapstructure:"timeouts"`
	// MaxIdleConnsPerHost is the keep-alive pool size per endpoint.
	// Default 256.
	MaxIdleConnsPerHost int `mapstructure:"max_idle_conns_per_host"`
	// MaxBodyBytes limits request bodies, in bytes; a larger body is
	// answered 413. Default 0 (unlimited).
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"`
	// Retries configures retrying a failed attempt on another endpoint.
	Retries Retries `mapstructure:"retries"`
	// SlowStart is the window over which a new endpoint's weight ramps
	// linearly from 10% of its weight (at least 1% of a unit of weight) to
	// its full weight. New means joining after the route's balancer got its
	// first endpoints, or coming back after leaving the healthy list
	// (unhealthy, ejected or deregistered); a reload that rebuilds the
	// routes starts every endpoint at full weight. Routes with balancer
	// random or weighted_round_robin honour it; round_robin and
	// least_request ignore weights, and consistent_hash does not ramp,
	// since each step would move keys. Default 0 (off).
	SlowStart time.Duration `mapstructure:"slow_start"`
	// Upstream is the protocol spoken to the endpoints.
	Upstream Upstream `mapstructure:"upstream"`
}

// Upstream protocols of Upstream.Protocol.
const (
	ProtocolHTTP1 = "http1"
	ProtocolH2C   = "h2c"
	ProtocolH2    = "h2"
)

// Upstream is how the gateway talks to a service's endpoints. Requests to a
// service that is not plain HTTP/1.1 are served by net/http's transport
// rather than the fast path.
type Upstream struct {
	// Protocol is http1 (HTTP/1.1), h2c (HTTP/2 without TLS, with prior
	// knowledge: gRPC servers without TLS) or h2 (HTTP/2 over TLS, chosen
	// by ALPN; tls.enabled is implied). Default "http1".
	Protocol string `mapstructure:"protocol"`
	// TLS is the TLS to the endpoints.
	TLS UpstreamTLS `mapstructure:"tls"`
}

// UpstreamTLS is the client TLS towards a service's endpoints. With it, a
// Curator registration's sslPort is dialled (a registration without one is
// reported as malformed); other formats' ports are used as they are.
// Active http probes use TLS too.
type UpstreamTLS struct {
	// Enabled turns TLS to the endpoints on. Default false.
	Enabled bool `mapstructure:"enabled"`
	// CAFile holds the PEM certificates of the authorities the endpoints'
	// certificates must chain to. Default "" (the system's roots).
	CAFile string `mapstructure:"ca_file"`
	// ServerName is the name sent by SNI and checked in the endpoints'
	// certificates. Default "" (the endpoint's host).
	ServerName string `mapstructure:"server_name"`
	// InsecureSkipVerify accepts any certificate: for tests only, it
	// gives up the protection TLS exists for. Default false.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
	// CertFile and KeyFile are a client certificate and key presented to
	// the endpoints (mutual TLS); both or neither. Default "".
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is the client certificate's key; see cert_file.
	KeyFile string `mapstructure:"key_file"`
}

// UsesTLS reports whether requests to the endpoints go over TLS.
func (u Upstream) UsesTLS() bool { return u.TLS.Enabled || u.Protocol == ProtocolH2 }

// Discovery is the endpoint source of a service. Exactly one field is set.
type Discovery struct {
	// ZooKeeper watches a znode's children.
	ZooKeeper *ZooKeeperDiscovery `mapstructure:"zookeeper"`
	// Static is a fixed endpoint list.
	Static *StaticDiscovery `mapstructure:"static"`
}

// ZooKeeperDiscovery watches the children of one znode.
type ZooKeeperDiscovery struct {
	// Path is the znode whose children are the endpoints. Default
	// zookeeper.base_path + "/" + the service name.
	Path string `mapstructure:"path"`
	// Format is the node format: auto (detect per node), plain
	// ("host:port" names, optional "host:port[,weight]" data), curator
	// (Curator x-discovery JSON), serverset (Finagle ServerSet JSON) or
	// nerve (Airbnb Nerve / SmartStack JSON). Default "auto".
	Format string `mapstructure:"format"`
	// EndpointName selects a named entry of a ServerSet member's
	// additionalEndpoints instead of its serviceEndpoint; serverset and
	// auto formats only. Default "" (serviceEndpoint).
	EndpointName string `mapstructure:"endpoint_name"`
	// Filter publishes only the members whose metadata matches: every
	// key must be present in a member's metadata and its value must match.
	// A key names a metadata entry without its source prefix,
	// case-insensitively: a Curator payload entry (or its metadata map's),
	// a ServerSet member's metadata entry, "shard" or "endpoint" (the
	// additional endpoint served), a Nerve label, or "format". A value
	// without regular-expression metacharacters is compared exactly ("a"
	// does not match "ab"); any other value is a Go regular expression that
	// must match somewhere in the metadata value (^2\. matches "2.4.1";
	// anchor with ^ and $). Members filtered out are not errors; the admin
	// API counts them. Default: none (every member).
	Filter map[string]string `mapstructure:"filter"`
}

// StaticDiscovery is a fixed endpoint list.
type StaticDiscovery struct {
	// Endpoints are "host:port" or "host:port,weight" (weight ≥ 1, default
	// 1). At least one is required.
	Endpoints []string `mapstructure:"endpoints"`
}

// HealthCheck configures health checking. An endpoint is routed to when it
// passes the active check (if any) and is not ejected by the passive one.
type HealthCheck struct {
	// Active probes every endpoint periodically.
	Active ActiveHealthCheck `mapstructure:"active"`
	// Passive ejects endpoints that fail real requests.
	Passive PassiveHealthCheck `mapstructure:"passive"`
	// PanicThreshold is a percentage: when fewer than this share of the
	// members are healthy, health is ignored and every member is routed to
	// (better some errors than a total outage). Default 0: only when no
	// member is healthy at all.
	PanicThreshold int `mapstructure:"panic_threshold"`
}

// Active health check types.
const (
	CheckNone = "none"
	CheckTCP  = "tcp"
	CheckHTTP = "http"
)

// ActiveHealthCheck probes endpoints.
type ActiveHealthCheck struct {
	// Type is "none" (no probes: every member counts as healthy), "tcp"
	// (connect) or "http" (GET path). Default "none".
	Type string `mapstructure:"type"`
	// Path is the request path of an http probe. Default "/".
	Path string `mapstructure:"path"`
	// Host is the Host header of an http probe. Default "" (the endpoint's
	// "host:port").
	Host string `mapstructure:"host"`
	// ExpectStatus are the status codes of a passing http probe: codes and
	// ranges separated by commas, e.g. "200-399", "204" or "200-299,304".
	// Default "200-399".
	ExpectStatus string `mapstructure:"expect_status"`
	// Interval is the time between two probes of one endpoint. Default 2s.
	Interval time.Duration `mapstructure:"interval"`
	// Timeout bounds one probe; at most interval. Default 1s.
	Timeout time.Duration `mapstructure:"timeout"`
	// HealthyThreshold is how many consecutive passing probes make an
	// unhealthy endpoint healthy. Default 2.
	HealthyThreshold int `mapstructure:"healthy_threshold"`
	// UnhealthyThreshold is how many consecutive failing probes make a
	// healthy endpoint unhealthy. Default 2.
	UnhealthyThreshold int `mapstructure:"unhealthy_threshold"`
	// RequireFirstPass routes a new endpoint only after its first passing
	// probe, sent as soon as it appears; one whose first probe fails is
	// unhealthy. This includes the endpoints present when the gateway starts
	// or the service is rebuilt by a reload: the service has no routable
	// endpoint until the first probes answer (at most timeout). Ignored when
	// type is none. Default true.
	RequireFirstPass bool `mapstructure:"require_first_pass"`
}

// RemovalGuard holds a membership change that removes more than max_percent
// of a service's members at once (a bulk deregistration, a mistaken
// deletion, a registry hiccup): the removed endpoints stay routable for
// hold. During the hold each of them is probed at once when active health
// checks are configured and leaves as soon as a probe fails, or a request to
// it cannot connect or times out; without active checks they stay until the
// hold ends unless a request to them fails so. An endpoint listed again ends
// its own hold; further removals during a hold join it without extending it.
// When the hold ends the membership ZooKeeper lists is used, even if empty.
type RemovalGuard struct {
	// MaxPercent is the largest share of the members, in percent (0-100),
	// that one change may remove without being held. 0 (or 100) turns the
	// guard off. Default 50.
	MaxPercent int `mapstructure:"max_percent"`
	// Hold is how long removed endpoints are held. Default 30s.
	Hold time.Duration `mapstructure:"hold"`
}

// PassiveHealthCheck is outlier ejection driven by proxied requests.
type PassiveHealthCheck struct {
	// MaxFailures is how many consecutive failed requests eject an
	// endpoint. Default 3; 0 disables passive checking.
	MaxFailures int `mapstructure:"max_failures"`
	// Ejection is how long an ejected endpoint stays out. Default 10s.
	Ejection time.Duration `mapstructure:"ejection"`
	// MaxEjectionPercent caps the share of members ejected at once, in
	// percent (0-100). Default 50.
	MaxEjectionPercent int `mapstructure:"max_ejection_percent"`
	// ServerErrors counts 5xx responses as failures; otherwise only
	// connection failures and timeouts count. Default false.
	ServerErrors bool `mapstructure:"server_errors"`
}

// Timeouts are the upstream transport timeouts.
type Timeouts struct {
	// Dial bounds establishing a TCP connection to an endpoint. Default 2s.
	Dial time.Duration `mapstructure:"dial"`
	// ResponseHeader bounds sending the request (the fast path's: its
	// head and a body it holds whole) and waiting for the response
	// headers. Default 15s; 0 means no limit.
	ResponseHeader time.Duration `mapstructure:"response_header"`
	// IdleConn is how long an idle upstream keep-alive connection is kept.
	// Default 90s; 0 means no limit.
	IdleConn time.Duration `mapstructure:"idle_conn"`
}

// Retry conditions of Retries.On.
const (
	RetryConnectFailure = "connect_failure"
	RetryTimeout        = "timeout"
	RetryServerError    = "server_error"
)

// Retries configures retries.
type Retries struct {
	// Attempts is the maximum number of attempts per request, the first
	// included, each on a different endpoint when possible; 1 disables
	// retries. Default 2.
	Attempts int `mapstructure:"attempts"`
	// On lists the failures retried: connect_failure (the endpoint could
	// not be reached: any method, since nothing was sent; or its connection
	// broke before a response, as when it is killed mid-request: idempotent
	// requests only), timeout and server_error (5xx); the last two only for
	// idempotent requests. Idempotent requests are GET, HEAD, OPTIONS,
	// TRACE, PUT and DELETE, and any request with an Idempotency-Key header.
	// Default [connect_failure].
	On []string `mapstructure:"on"`
	// BufferBodyBytes is the largest request body buffered so that it can
	// be re-sent; a request with a larger body is not retried once sent.
	// Default 65536.
	BufferBodyBytes int64 `mapstructure:"buffer_body_bytes"`
	// Budget caps the retries of the service, all routes to it together,
	// so that retries cannot multiply the load on a failing service.
	Budget RetryBudget `mapstructure:"budget"`
}

// RetryBudget caps a service's retries at a share of its requests plus a
// floor, as Finagle's and Linkerd's retry budgets do: each request adds
// percent/100 of a retry to the budget, each retry takes one, and a retry
// the budget cannot pay for is not made (the request ends with its last
// attempt's answer) and is counted in zkgate_retry_budget_exhausted_total.
type RetryBudget struct {
	// Enabled turns the budget on; when false, retries are limited by
	// attempts only. Default true.
	Enabled bool `mapstructure:"enabled"`
	// Percent is the share of the requests of the last window that may be
	// retried, 0-1000 (20: one retry per five requests). Default 20.
	Percent int `mapstructure:"percent"`
	// MinPerSecond is the floor: retries per second allowed whatever the
	// request rate, for services with little traffic; given as a reserve
	// of min_per_second × window retries. Default 10.
	MinPerSecond int `mapstructure:"min_per_second"`
	// Window is how long a request's credit and a retry's debit count,
	// 1s-1m. Default 10s.
	Window time.Duration `mapstructure:"window"`
}

// BudgetConfig returns the proxy's configuration of budget b.
func (b RetryBudget) BudgetConfig() proxy.RetryBudgetConfig {
	return proxy.RetryBudgetConfig{Percent: b.Percent, MinPerSecond: b.MinPerSecond, Window: b.Window}
}

// StaticEndpoints parses the static endpoint list into balancer endpoints,
// with ID "static:<host:port>" and Meta {"source": "static"}.
func (d *StaticDiscovery) StaticEndpoints() ([]balancer.Endpoint, error) {
	out := make([]balancer.Endpoint, 0, len(d.Endpoints))
	for i, s := range d.Endpoints {
		ep, err := parseStaticEndpoint(s)
		if err != nil {
			return nil, fmt.Errorf("endpoints[%d]: %w", i, err)
		}
		out = append(out, ep)
	}
	return out, nil
}

// parseStaticEndpoint parses "host:port" or "host:port,weight".
func parseStaticEndpoint(s string) (balancer.Endpoint, error) {
	addr, w, hasWeight := strings.Cut(strings.TrimSpace(s), ",")
	addr = strings.TrimSpace(addr)
	if err := checkHostPort(addr, true); err != nil {
		return balancer.Endpoint{}, fmt.Errorf("%q: %w", s, err)
	}
	weight := 1
	if hasWeight {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			return balancer.Endpoint{}, fmt.Errorf("%q: weight %q is not an integer ≥ 1", s, w)
		}
		weight = n
	}
	return balancer.Endpoint{
		ID:     "static:" + addr,
		Addr:   addr,
		Weight: weight,
		Meta:   map[string]string{"source": "static"},
	}, nil
}

// checkHostPort checks a "host:port" address. With needHost, the host must
// not be empty (a dial target); without, an empty host is fine (a listen
// address). Port 0 is accepted only for listen addresses.
func checkHostPort(addr string, needHost bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not a host:port address: %w", stripAddrErr(err))
	}
	if needHost && host == "" {
		return fmt.Errorf("missing host")
	}
	if strings.ContainsAny(host, " /\t") {
		return fmt.Errorf("invalid host %q", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (needHost && n == 0) {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

// stripAddrErr returns the reason of a net.AddrError without the address
// (the caller quotes it already).
func stripAddrErr(err error) error {
	if ae, ok := err.(*net.AddrError); ok {
		return fmt.Errorf("%s", ae.Err)
	}
	return err
}
