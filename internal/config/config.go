package config

import (
	"net/netip"
	"strings"
	"time"
)

// Config is the whole zkgate configuration. The zero value is not useful:
// obtain one from Load, Parse or Default.
//
// The fields tagged `static:"true"` are read once at start-up; a change to
// them in the file takes effect after a restart (see Reloadable). Routes and
// Services are applied by reloads (see Dynamic).
type Config struct {
	// EntryPoints are the listeners that serve proxied traffic, by name.
	// Every entry point serves every route. Default: one entry point "web"
	// on ":8080". Static.
	EntryPoints map[string]EntryPoint `mapstructure:"entry_points" static:"true"`
	// Admin is the admin listener (probes, metrics, JSON API, status page).
	// Static.
	Admin Admin `mapstructure:"admin" static:"true"`
	// Log configures the process log and the access log. Static.
	Log Log `mapstructure:"log" static:"true"`
	// TrustedProxies lists the CIDRs (or single IP addresses) of proxies in
	// front of zkgate whose X-Forwarded-For, X-Forwarded-Proto and
	// X-Forwarded-Host headers are kept and extended. From any other peer
	// those headers are replaced. Default: empty (trust no one). Static.
	TrustedProxies []string `mapstructure:"trusted_proxies" static:"true"`
	// Shutdown configures graceful shutdown. Static.
	Shutdown Shutdown `mapstructure:"shutdown" static:"true"`
	// ZooKeeper is the ZooKeeper ensemble and session. Static.
	ZooKeeper ZooKeeper `mapstructure:"zookeeper" static:"true"`
	// Fleet keeps routes and services in ZooKeeper, shared by every
	// gateway of a fleet, instead of in this file. Static.
	Fleet Fleet `mapstructure:"fleet" static:"true"`
	// Routes map requests to services. Order matters only between routes
	// of equal priority and equal specificity. Default: none. Reloadable.
	Routes []Route `mapstructure:"routes"`
	// Services are the backends, by name. Names are case-insensitive and
	// stored in lower case (viper lower-cases map keys). Default: none.
	// Reloadable.
	Services map[string]Service `mapstructure:"services"`

	// Source names where the configuration was read from (a file path), for
	// error messages. It is not a configuration key.
	Source string `mapstructure:"-"`

	// fromEnv maps the key paths whose value came from an environment
	// variable to that variable, so that problems can name it.
	fromEnv map[string]string
	// fleetAssembled marks a configuration whose routes and services
	// ParseFleet took from ZooKeeper, which fleet mode allows.
	fleetAssembled bool
}

// EntryPoint is one listener for proxied traffic. Its timeouts become the
// fields of the same names of http.Server.
type EntryPoint struct {
	// Address is the "host:port" to listen on; an empty host listens on
	// every interface. Default ":8080".
	Address string `mapstructure:"address"`
	// ReadHeaderTimeout bounds reading a request's headers. Default 10s;
	// 0 means no limit.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included. Default 0
	// (no limit: bodies may be streamed).
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// WriteTimeout bounds writing a response. Default 0 (no limit: long
	// responses and WebSockets stream); route timeouts bound upstream time.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// IdleTimeout is how long an idle keep-alive client connection is kept.
	// Default 90s; 0 means read_timeout, as in net/http.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxHeaderBytes limits a request head (request line and header
	// fields), in bytes: a larger one is answered 431 and the connection
	// closed. Default 32768 (32 KiB, nginx's large_client_header_buffers).
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`
	// MaxHeaderCount limits the number of request header fields: more are
	// answered 431. Default 100.
	MaxHeaderCount int `mapstructure:"max_header_count"`
	// MaxTargetBytes limits the request target (path and query), in bytes:
	// a longer one is answered 414. Default 8192.
	MaxTargetBytes int `mapstructure:"max_target_bytes"`
	// MaxBodyBytes limits request bodies at this entry point, in bytes: a
	// larger Content-Length is answered 413 before any backend is
	// contacted, a chunked body when it passes the limit. A service's own
	// max_body_bytes applies too. Default 10485760 (10 MiB).
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"`
	// BodyTimeout bounds reading a request body of up to 64 KiB, which is
	// read whole before a backend is contacted: one not whole within it is
	// answered 408. A larger body is streamed and must keep min_body_rate
	// after body_timeout. Default 30s.
	BodyTimeout time.Duration `mapstructure:"body_timeout"`
	// MinBodyRate is the average rate, in bytes per second, a streamed
	// request body must keep once body_timeout has passed; a slower one
	// ends the exchange and the backend's connection. Default 1024.
	MinBodyRate int64 `mapstructure:"min_body_rate"`
	// FastPath serves plain requests (HTTP/1.1 or HTTP/1.0; GET, HEAD,
	// POST, PUT, PATCH, DELETE, OPTIONS; no body or a Content-Length or
	// chunked body of up to 64 KiB, read whole before the endpoint is
	// contacted; no 100-continue; WebSocket handshakes too, whose
	// tunnels it relays) on zkgate's own HTTP/1.1 loop, which
	// forwards the request and response heads as bytes; the first other
	// request of a connection hands it to Go's net/http. Default true;
	// false serves every connection with net/http.
	FastPath bool `mapstructure:"fast_path"`
	// Loops is how many event loops (each a thread of its own, with an
	// epoll set) serve this entry point's plain fast-path connections
	// between requests, and their simple exchanges (the request whole in
	// one read, the answer's Content-Length body up to 64 KiB), without a
	// goroutine per connection; whatever must wait otherwise goes on on a
	// goroutine as without loops. "auto" (the default): half the
	// processors Go uses (GOMAXPROCS), at least 1; a number from 1 to 256;
	// "off" (or 0): each connection keeps a goroutine while served, and
	// waits hot or parked in between. Linux only (off elsewhere, and with
	// tls).
	Loops string `mapstructure:"loops"`
	// TLS makes this an HTTPS entry point: the connections are TLS; after
	// the handshake, HTTP/1.1 is served by the fast path (when fast_path is
	// on) and HTTP/2, chosen by ALPN unless http2 is off, by Go's net/http.
	// Default: none (plain HTTP).
	TLS *EntryPointTLS `mapstructure:"tls"`
	// HTTP2 is how HTTP/2 is offered: auto (by ALPN "h2" on a TLS entry
	// point, not at all on a plain one), off (HTTP/1.1 only), or h2c (a
	// plain entry point also accepts HTTP/2 with prior knowledge, which
	// gRPC clients without TLS use). The server's HTTP/2 limits: 128
	// concurrent streams per connection, 16 KiB frames read, header
	// lists up to max_header_bytes, a 4 KiB HPACK table, and Go's
	// protections against rapid reset and CONTINUATION floods. Default
	// "auto".
	HTTP2 string `mapstructure:"http2"`
	// HTTP2Server is which server speaks HTTP/2 on this entry point:
	// "zkgate" (zkgate's own: one goroutine per connection and one per
	// request, the same limits as Go's, passing every h2spec case) or "go"
	// (net/http's). Default "zkgate".
	HTTP2Server string `mapstructure:"http2_server"`
	// RedirectTo names a TLS entry point: every request to this one is
	// answered 308 Permanent Redirect to the same host and target on that
	// entry point's port (omitted when it is 443), except paths under
	// /.well-known/acme-challenge/, which are routed as usual, and
	// requests a trusted proxy says came over https (X-Forwarded-Proto:
	// a load balancer that terminates TLS). Default "" (no redirect).
	RedirectTo string `mapstructure:"redirect_to"`
}

// HTTP2 modes of EntryPoint.HTTP2.
const (
	HTTP2Auto = "auto"
	HTTP2Off  = "off"
	HTTP2H2C  = "h2c"
)

// HTTP/2 servers of EntryPoint.HTTP2Server.
const (
	HTTP2ServerGo     = "go"
	HTTP2ServerZkgate = "zkgate"
)

// EntryPointTLS is the TLS of an entry point. The certificate and key files
// (and the client CA file) are watched: a renewed pair is served to new
// handshakes within a second, open connections keep theirs, and a pair that
// does not load is refused (logged and counted) while the old one stays.
// Certificates expiring within 14 days are warned about in the log, the
// admin API, the status page and the metric
// zkgate_tls_certificate_expiry_timestamp_seconds.
type EntryPointTLS struct {
	// Certificates are the certificate and key pairs. A handshake's server
	// name (SNI) picks the pair with that exact DNS name, then one with a
	// wildcard name one level up (*.example.com for a.example.com), then
	// the first pair. At least one is required.
	Certificates []Certificate `mapstructure:"certificates"`
	// MinVersion is the oldest TLS version accepted: "1.2" or "1.3".
	// Default "1.2".
	MinVersion string `mapstructure:"min_version"`
	// ClientAuth asks clients for certificates. Default: none asked.
	ClientAuth *ClientAuth `mapstructure:"client_auth"`
}

// TLS versions of EntryPointTLS.MinVersion.
const (
	TLSVersion12 = "1.2"
	TLSVersion13 = "1.3"
)

// Certificate is one certificate and key pair, PEM files.
type Certificate struct {
	// CertFile is the certificate chain, leaf first. Required.
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is the private key of the leaf. Required.
	KeyFile string `mapstructure:"key_file"`
}

// ClientAuth is the client certificate check of a TLS entry point.
type ClientAuth struct {
	// CAFile holds the PEM certificates of the authorities a client
	// certificate must chain to. Required.
	CAFile string `mapstructure:"ca_file"`
	// Required refuses handshakes without a valid client certificate;
	// otherwise one is asked for and checked when given. Default false.
	Required bool `mapstructure:"required"`
}

// Admin is the admin listener.
type Admin struct {
	// Address is the "host:port" of the admin listener (/livez, /readyz,
	// /metrics, /api/..., status page). Default "127.0.0.1:9901". An empty
	// address disables the admin listener.
	Address string `mapstructure:"address"`
	// Token is the bearer token ("Authorization: Bearer <token>") every
	// admin request needs, except /livez, /readyz and the status page's
	// static files, when not empty. Set it whenever the address is not a
	// loopback address. Default "" (no token).
	Token string `mapstructure:"token" secret:"true"`
}

// Log configures logging.
type Log struct {
	// Level is the least severe level logged: trace, debug, info, warn,
	// error, fatal or panic. Default "info".
	Level string `mapstructure:"level"`
	// Format is "text", "json" or "auto" (text when standard error is a
	// terminal, JSON otherwise). Default "auto".
	Format string `mapstructure:"format"`
	// AccessLog configures the access log.
	AccessLog AccessLog `mapstructure:"access_log"`
}

// AccessLog configures the per-request access log (JSON lines on standard
// output).
type AccessLog struct {
	// Enabled turns the access log on. Default true.
	Enabled bool `mapstructure:"enabled"`
}

// Shutdown configures graceful shutdown on SIGTERM or SIGINT.
type Shutdown struct {
	// DrainDelay is how long /readyz answers 503 while requests are still
	// served, so that load balancers in front stop sending traffic before
	// the listeners close. Default 5s; 0 skips the delay.
	DrainDelay time.Duration `mapstructure:"drain_delay"`
	// GraceTimeout bounds how long requests in flight may take to finish
	// after the listeners close (http.Server.Shutdown). Default 30s.
	GraceTimeout time.Duration `mapstructure:"grace_timeout"`
}

// ZooKeeper is the ZooKeeper connection.
type ZooKeeper struct {
	// Servers are the ensemble members as "host:port" (the port defaults
	// to 2181 when omitted, and is added on load). From the environment: a
	// comma-separated list.
	// Default ["127.0.0.1:2181"]; must not be empty.
	Servers []string `mapstructure:"servers"`
	// SessionTimeout is the requested session timeout; the server clamps
	// it to between 2 and 20 ticks. Default 10s.
	SessionTimeout time.Duration `mapstructure:"session_timeout"`
	// BasePath is the znode under which services live by default: a
	// service without a discovery path is watched at base_path/<name>.
	// Default "/services".
	BasePath string `mapstructure:"base_path"`
	// Auth is the authentication added to the session.
	Auth ZooKeeperAuth `mapstructure:"auth"`
	// ResyncInterval is how often every service is re-listed even without
	// a watch event, since re-setting watches can fail silently. Default
	// 30s; 0 disables the periodic resync.
	ResyncInterval time.Duration `mapstructure:"resync_interval"`
	// SnapshotFile is a file where the gateway keeps the last membership
	// read from ZooKeeper (written atomically at most once a second after a
	// change, and at shutdown). A gateway started while ZooKeeper cannot
	// give a first membership routes to the members in the file, reported
	// as stale with their age, until the first read succeeds. A relative
	// path is relative to the working directory. Default "" (off).
	SnapshotFile string `mapstructure:"snapshot_file"`
}

// ZooKeeperAuth is the authentication sent with zk.Conn.AddAuth.
type ZooKeeperAuth struct {
	// Scheme is the authentication scheme. Only "digest" is supported.
	// Default "digest".
	Scheme string `mapstructure:"scheme"`
	// Credentials are "user:password" for the digest scheme. Default ""
	// (no authentication).
	Credentials string `mapstructure:"credentials" secret:"true"`
}

// TrustedProxyPrefixes returns TrustedProxies parsed; single addresses
// become one-address prefixes. Entries that do not parse are skipped
// (Validate reports them).
func (c *Config) TrustedProxyPrefixes() []netip.Prefix { return Prefixes(c.TrustedProxies) }

// Prefixes parses CIDRs or single IP addresses (trusted_proxies, ip_allow,
// ip_deny); single addresses become one-address prefixes. Entries that do
// not parse are skipped (Validate reports them).
func Prefixes(list []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix parses a CIDR or a single IP address.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
