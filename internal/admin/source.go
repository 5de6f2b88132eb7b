package admin

import (
	"errors"
	"time"
)

// ErrNotFound is wrapped (with %w) by a Source's Drain or Undrain error when
// the named service or endpoint does not exist; the server answers 404 with
// the error text. Any other Drain or Undrain error is answered 500.
var ErrNotFound = errors.New("not found")

// Endpoint states as the admin API reports them. A Source may report other
// strings; the status page shows them in a neutral colour.
const (
	StateHealthy   = "healthy"   // in the balancer's list
	StateUnhealthy = "unhealthy" // failed active health checks
	StateEjected   = "ejected"   // ejected by passive health checks for a while
	StateDraining  = "draining"  // taken out by an operator (drain)
	StateUnknown   = "unknown"   // not probed yet
)

// Source is what the admin server shows and acts on. The composition root
// implements it over the router, the discovery confs and the health checkers;
// every method must be safe for concurrent use and quick (it is called on
// every poll of the status page). Returned slices belong to the caller.
type Source interface {
	// Routes returns the routes of the running configuration, in matching
	// order.
	Routes() []RouteInfo
	// Services returns every configured service, sorted by name.
	Services() []ServiceInfo
	// Service returns one service, false when it is not configured.
	Service(name string) (ServiceInfo, bool)
	// Drain takes the endpoint at addr of service out of its balancers
	// until Undrain; an error wrapping ErrNotFound names what is unknown.
	Drain(service, addr string) error
	// Undrain returns a drained endpoint to service.
	Undrain(service, addr string) error
	// Reload re-reads the configuration file and applies its routes and
	// services, or keeps the running ones and returns an error whose text
	// says what is wrong with the file (the server answers 422 with it).
	Reload() error
	// ZooKeeper returns the state of the ZooKeeper session.
	ZooKeeper() ZooKeeperInfo
	// Ready reports whether the gateway should receive traffic: false until
	// every service had its first ZooKeeper sync, and while shutting down.
	// reason says why not (it is shown by /readyz).
	Ready() (ready bool, reason string)
	// Gateway returns what the gateway is: its version, when it started,
	// and its entry points.
	Gateway() GatewayInfo
}

// GatewayInfo is the gateway itself.
type GatewayInfo struct {
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	// UptimeSeconds is filled in by the server from StartedAt.
	UptimeSeconds float64          `json:"uptime_seconds"`
	EntryPoints   []EntryPointInfo `json:"entry_points"`
}

// EntryPointInfo is one listener for proxied traffic.
type EntryPointInfo struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// Protocol is what the entry point speaks to clients: "http" or
	// "https".
	Protocol string `json:"protocol"`
	// HTTP2 is how it serves HTTP/2: "auto", "off" or "h2c".
	HTTP2 string `json:"http2"`
	// RedirectTo names the TLS entry point it redirects to, if any.
	RedirectTo string `json:"redirect_to,omitempty"`
	FastPath   bool   `json:"fast_path"`
	// TLS is the entry point's certificate state; nil for plain HTTP.
	TLS *TLSInfo `json:"tls,omitempty"`
	// Connections counts its client connections by what they hold
	// (serving, waiting, parked, tunnel, nethttp), as the metric
	// zkgate_client_connections.
	Connections map[string]int `json:"connections"`
}

// TLSInfo is a TLS entry point's certificates and their reloads.
type TLSInfo struct {
	MinVersion        string            `json:"min_version"`
	ClientAuth        string            `json:"client_auth"` // "none", "optional" or "required"
	Certificates      []CertificateInfo `json:"certificates"`
	Reloads           uint64            `json:"reloads"`
	ReloadFailures    uint64            `json:"reload_failures"`
	LastReloadFailure string            `json:"last_reload_failure,omitempty"`
}

// CertificateInfo is one served certificate.
type CertificateInfo struct {
	CertFile    string    `json:"cert_file"`
	KeyFile     string    `json:"key_file"`
	Names       []string  `json:"names"`
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	NotAfter    time.Time `json:"not_after"`
	ExpiresSoon bool      `json:"expires_soon"`
	Expired     bool      `json:"expired"`
}

// RouteInfo describes one route.
type RouteInfo struct {
	Name        string   `json:"name"`
	Priority    int      `json:"priority"`
	Hosts       []string `json:"hosts"`
	PathPrefix  string   `json:"path_prefix"`
	Methods     []string `json:"methods"`
	Service     string   `json:"service"`
	Balancer    string   `json:"balancer"`
	HashOn      string   `json:"hash_on,omitempty"`
	StripPrefix bool     `json:"strip_prefix"`
	// Traffic is what the route served over the last minute.
	Traffic Traffic `json:"traffic"`
}

// Traffic is what a route, a service or an endpoint served over the last
// minute, a rolling window (internal/stats) read when the state is taken.
// Rates are the counts over WindowSeconds.
type Traffic struct {
	// WindowSeconds is the time the counts cover: the last minute (55 to
	// 60 seconds, the window moving in steps of 5), or less while the
	// route, service or endpoint is younger.
	WindowSeconds float64 `json:"window_seconds"`
	// Requests counts the requests; for an endpoint, the attempts sent to
	// it.
	Requests uint64 `json:"requests"`
	// Errors counts the requests answered with a 5xx status, the
	// gateway's own 502, 503 and 504 included; for an endpoint, the
	// attempts that got a 5xx answer, could not connect or timed out.
	Errors uint64 `json:"errors"`
	// Retries counts the retries the requests took; for an endpoint, its
	// attempts that failed and were retried on another endpoint.
	Retries uint64 `json:"retries"`
	// LatencyP50Seconds and LatencyP99Seconds are latency quantiles, within
	// 12.5%; absent without requests. A route's and a service's run from a
	// request's arrival to the end of its response, retries included; an
	// endpoint's from sending an attempt to its response head.
	LatencyP50Seconds *float64 `json:"latency_p50_seconds,omitempty"`
	LatencyP99Seconds *float64 `json:"latency_p99_seconds,omitempty"`
}

// UpstreamTraffic is the Traffic of a service or an endpoint, with its
// ejections.
type UpstreamTraffic struct {
	Traffic
	// Ejections counts the passive ejections (of the service's endpoints).
	Ejections uint64 `json:"ejections"`
}

// DiscoveryInfo says where a service's membership comes from.
type DiscoveryInfo struct {
	// Kind is "zookeeper" or "static".
	Kind string `json:"kind"`
	// Path is the watched znode path (zookeeper only).
	Path string `json:"path,omitempty"`
	// Format is the configured node format (plain, curator, serverset, nerve, auto).
	Format string `json:"format,omitempty"`
	// Filtered counts the members left out by the service's metadata
	// filter (zookeeper only).
	Filtered int `json:"filtered,omitempty"`
	// LastPropagationSeconds is the latest propagation lag measured: from
	// a member's znode change to the publication of the list (see
	// zkgate_discovery_propagation_seconds); absent until one is.
	LastPropagationSeconds *float64 `json:"last_propagation_seconds,omitempty"`
}

// ServiceInfo describes one service and its endpoints.
type ServiceInfo struct {
	Name      string        `json:"name"`
	Discovery DiscoveryInfo `json:"discovery"`
	// Synced is true once the first membership was read from ZooKeeper.
	Synced bool `json:"synced"`
	// Stale is true while the membership cannot be refreshed (no session):
	// the gateway serves the last known list.
	Stale bool `json:"stale"`
	// LastSync is when the membership was last read successfully.
	LastSync time.Time `json:"last_sync,omitzero"`
	// Snapshot is set while the members served are a membership
	// snapshot's (zookeeper.snapshot_file): the gateway started without a
	// first read of ZooKeeper. Stale is true meanwhile.
	Snapshot *ServiceSnapshot `json:"snapshot,omitempty"`
	// Panicking is true while the health checker's panic threshold is
	// crossed and traffic goes to every member, healthy or not.
	Panicking bool `json:"panicking"`
	// RemovalGuard is the state of the service's removal guard.
	RemovalGuard RemovalGuardInfo `json:"removal_guard"`
	// Counts is filled in by the server from Endpoints; a Source leaves it
	// zero.
	Counts EndpointCounts `json:"counts"`
	// Traffic is what the service served over the last minute, by all its
	// routes.
	Traffic UpstreamTraffic `json:"traffic"`
	// Endpoints are the members, sorted by address.
	Endpoints []EndpointInfo `json:"endpoints"`
}

// ServiceSnapshot tells where a service's members come from while they are
// a membership snapshot's.
type ServiceSnapshot struct {
	// ReadAt is when the members were read from ZooKeeper (by an earlier
	// run of the gateway).
	ReadAt time.Time `json:"read_at"`
	// AgeSeconds is how long ago that was, when the state was taken.
	AgeSeconds float64 `json:"age_seconds"`
}

// RemovalGuardInfo is the state of a service's removal guard, which holds
// members removed by a mass removal for a while.
type RemovalGuardInfo struct {
	// Active is true while the guard holds removed members.
	Active bool `json:"active"`
	// Held is the number of members held.
	Held int `json:"held"`
	// Until is when the hold ends (zero when not holding).
	Until time.Time `json:"until,omitzero"`
	// Engagements counts the times the guard engaged.
	Engagements uint64 `json:"engagements"`
}

// EndpointCounts counts a service's endpoints by state.
type EndpointCounts struct {
	Total     int `json:"total"`
	Healthy   int `json:"healthy"`
	Unhealthy int `json:"unhealthy"`
	Ejected   int `json:"ejected"`
	Draining  int `json:"draining"`
	Other     int `json:"other"`
}

// EndpointInfo describes one member of a service.
type EndpointInfo struct {
	Addr   string `json:"addr"`
	ID     string `json:"id,omitempty"`
	Weight int    `json:"weight"`
	// Format is the node format the member was decoded from.
	Format string `json:"format,omitempty"`
	// ZNode is the member's znode path.
	ZNode string `json:"znode,omitempty"`
	// State is one of the State* constants.
	State string `json:"state"`
	// Since is when the endpoint entered State.
	Since time.Time `json:"since,omitzero"`
	// LastProbe is when the last active probe finished (zero: none yet).
	LastProbe time.Time `json:"last_probe,omitzero"`
	// LastProbeResult is "ok" or the probe's error text.
	LastProbeResult     string `json:"last_probe_result,omitempty"`
	ConsecutiveFailures int    `json:"consecutive_failures"`
	// Held is true while the removal guard keeps the member, which
	// ZooKeeper no longer lists.
	Held bool `json:"held,omitempty"`
	// InFlight is the number of requests being proxied to the endpoint.
	InFlight int64 `json:"in_flight"`
	// Requests is the number of requests proxied to the endpoint since it
	// appeared; the status page derives request rates from it.
	Requests uint64 `json:"requests"`
	// Traffic is what the endpoint served over the last minute.
	Traffic UpstreamTraffic   `json:"traffic"`
	Meta    map[string]string `json:"meta,omitempty"`
}

// ZooKeeperInfo describes the gateway's ZooKeeper session.
type ZooKeeperInfo struct {
	Servers []string `json:"servers"`
	// State is the session state: "connected" (a live session),
	// "connecting" (none yet, or the connection to it was lost),
	// "expired" (the server expired it; a new one is sought), "closed",
	// or "not_configured" without ZooKeeper.
	State string `json:"state"`
	// Since is when State was entered.
	Since time.Time `json:"since,omitzero"`
	// SessionID is the session id in hexadecimal, as ZooKeeper logs it
	// ("0x1000a2b3c4d0000"); empty before the first session.
	SessionID string `json:"session_id,omitempty"`
	// Connected is true while the session is usable (State "connected").
	Connected   bool   `json:"connected"`
	Reconnects  uint64 `json:"reconnects"`
	Expirations uint64 `json:"expirations"`
	// LastError is the last failure to get a session during the current
	// lack of one, at LastErrorAt; empty while connected.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Snapshot describes the membership snapshot file; nil when
	// zookeeper.snapshot_file is not set.
	Snapshot *SnapshotFileInfo `json:"snapshot,omitempty"`
}

// SnapshotFileInfo describes the membership snapshot file: the one read at
// start and the writes since.
type SnapshotFileInfo struct {
	Path string `json:"path"`
	// Loaded is true when the file read at start was usable; it was
	// written at Written.
	Loaded  bool      `json:"loaded"`
	Written time.Time `json:"written,omitzero"`
	// Problem says why the file read at start was not used (missing,
	// corrupt, truncated, another format or version).
	Problem string `json:"problem,omitempty"`
	// Seeded are the services serving the snapshot's members now (no
	// read of ZooKeeper yet), sorted by name.
	Seeded []string `json:"seeded"`
	// Writes counts the files written, WriteErrors the failed writes;
	// LastWriteError is the last failure, empty after a success.
	Writes         uint64    `json:"writes"`
	LastWrite      time.Time `json:"last_write,omitzero"`
	WriteErrors    uint64    `json:"write_errors"`
	LastWriteError string    `json:"last_write_error,omitempty"`
}

// State is the whole picture the status page and /api/events show.
type State struct {
	// Time is when the state was taken; the status page computes request
	// rates against it.
	Time      time.Time     `json:"time"`
	Ready     bool          `json:"ready"`
	Reason    string        `json:"reason,omitempty"`
	Gateway   GatewayInfo   `json:"gateway"`
	ZooKeeper ZooKeeperInfo `json:"zookeeper"`
	Routes    []RouteInfo   `json:"routes"`
	Services  []ServiceInfo `json:"services"`
	// Fleet is fleet mode's summary (GET /api/fleet has the detail);
	// Enabled is false without fleet mode.
	Fleet FleetSummary `json:"fleet"`
}

// countEndpoints returns s with Counts computed from its endpoints and nil
// slices replaced by empty ones, so that JSON shows [] rather than null.
func countEndpoints(s ServiceInfo) ServiceInfo {
	c := EndpointCounts{Total: len(s.Endpoints)}
	for _, e := range s.Endpoints {
		switch e.State {
		case StateHealthy:
			c.Healthy++
		case StateUnhealthy:
			c.Unhealthy++
		case StateEjected:
			c.Ejected++
		case StateDraining:
			c.Draining++
		default:
			c.Other++
		}
	}
	s.Counts = c
	if s.Endpoints == nil {
		s.Endpoints = []EndpointInfo{}
	}
	return s
}
