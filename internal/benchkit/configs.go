package benchkit

import (
	"fmt"
	"path/filepath"
	"strings"
)

// The proxies' configurations. Each listens on one loopback port and routes
// as a user's gateway does (the "what a user runs"): requests under
// RoutePrefix go to the upstreams with the prefix stripped (zkgate's
// strip_prefix), every other path goes to them as it is (a route on "").
// Upstream connections are keep-alive HTTP/1.1; WebSocket upgrades pass
// through; each proxy adds the forwarding headers zkgate adds by default
// (see nginxProxyHeaders), so that the backend gets the same request from
// each; no proxy logs requests (zkgate's access log aside, which
// ZkgateConfig controls); every file a proxy writes stays in the harness's
// state directory.

// RoutePrefix is the prefix of the route the benchmark's requests take
// through each proxy: GET RoutePrefix+"/" reaches the backend as GET "/".
const RoutePrefix = "/echo"

// NginxConfig returns an nginx.conf for workers worker processes in the
// foreground (the harness adds -g 'daemon off;'), with its pid file, logs
// and temporary files under dir, proxying 127.0.0.1:port to upstreams with
// a keep-alive pool of 64 connections. location RoutePrefix/ strips the
// prefix (proxy_pass with a URI); WebSocket upgrades get Upgrade and
// Connection: upgrade upstream, every other request Connection "" so that
// the upstream connection is kept alive (the map of nginx's WebSocket
// documentation). Each worker may hold 19,000 connections, clients and
// upstreams together: 8,000 upgraded connections are 16,000.
func NginxConfig(dir string, port, workers int, upstreams []string) string {
	return nginxConfig(dir, fmt.Sprintf("127.0.0.1:%d", port), "", workers, upstreams)
}

// NginxLogConfig is NginxConfig with the server's access log on, in
// nginx's default combined format, to dir/access.log: what an nginx
// installed from a distribution does for each request (one write per
// line, no buffer).
func NginxLogConfig(dir string, port, workers int, upstreams []string) string {
	extra := fmt.Sprintf("        access_log %s combined;\n", filepath.Join(dir, "access.log"))
	return nginxConfig(dir, fmt.Sprintf("127.0.0.1:%d", port), extra, workers, upstreams)
}

// NginxTLSConfig is NginxConfig with TLS on the listener: `listen ...
// ssl http2` (nginx 1.22, Debian 12's, predates the `http2 on` directive;
// ALPN offers h2 and http/1.1, as zkgate's TLS entry point does), TLS 1.2
// and 1.3, the certificate and key given, and a listen backlog of 4096
// (the kernel's somaxconn, which Go's listeners take; nginx's default is
// 511) so that a burst of new connections meets the same queue in both.
// Session caching and tickets keep nginx's defaults, as zkgate keeps Go's.
// keepalive_requests is raised from 1000 to a million, as Go's servers
// set no such limit: at 1000 nginx ends each HTTP/2 connection with a
// GOAWAY that h2load's timed runs do not recover from (the streams in
// flight fail and the connection is not reopened), and each HTTPS
// keep-alive connection with a new handshake every 1000 requests.
func NginxTLSConfig(dir string, port, workers int, upstreams []string, certFile, keyFile string) string {
	tls := fmt.Sprintf(`        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        keepalive_requests 1000000;
`, certFile, keyFile)
	return nginxConfig(dir, fmt.Sprintf("127.0.0.1:%d ssl http2 backlog=4096", port), tls, workers, upstreams)
}

// NginxGzipConfig is NginxConfig with nginx's gzip filter on the server:
// answers of type application/json of at least 1024 bytes (the zkgate
// target's min_bytes) are compressed at level when the client accepts
// gzip, whatever the request's proxy headers (gzip_proxied any), with
// Vary: Accept-Encoding as zkgate adds it (gzip_vary). Buffers keep
// nginx's defaults.
func NginxGzipConfig(dir string, port, workers int, upstreams []string, level int) string {
	gzip := fmt.Sprintf(`        gzip on;
        gzip_comp_level %d;
        gzip_types application/json;
        gzip_min_length 1024;
        gzip_proxied any;
        gzip_vary on;
`, level)
	return nginxConfig(dir, fmt.Sprintf("127.0.0.1:%d", port), gzip, workers, upstreams)
}

// NginxGRPCConfig returns an nginx.conf for workers worker processes
// (files under dir, as NginxConfig) that proxies gRPC: HTTP/2 with prior
// knowledge on 127.0.0.1:port (`listen ... http2` without ssl), every
// path passed with grpc_pass to upstreams over h2c, from a keep-alive pool
// of 64 connections (nginx sends one call at a time on an upstream
// connection). keepalive_requests is raised to a million on both sides, as
// in NginxTLSConfig: Go's servers set no such limit, and at nginx's 1000
// each client connection would end in a GOAWAY every 1000 calls. The
// forwarding headers zkgate adds are set as in nginxProxyHeaders.
func NginxGRPCConfig(dir string, port, workers int, upstreams []string) string {
	return nginxFrame(dir, workers, fmt.Sprintf(`    upstream grpcbench {
%s        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:%d http2;
        keepalive_requests 1000000;

        location / {
            grpc_set_header X-Forwarded-For $remote_addr;
            grpc_set_header X-Forwarded-Host $http_host;
            grpc_set_header X-Forwarded-Proto $scheme;
            grpc_set_header X-Real-IP $remote_addr;
            grpc_pass grpc://grpcbench;
        }
    }
`, nginxServers(upstreams), port))
}

// nginxFrame is an nginx.conf for workers worker processes in the
// foreground, with its pid file, error log and temporary files under dir,
// no access log, and http (the upstream and server blocks, indented as
// http's) inside its http block.
func nginxFrame(dir string, workers int, http string) string {
	tmp := func(name string) string { return filepath.Join(dir, "tmp", name) }
	return fmt.Sprintf(`# written by zkbench (internal/benchkit)
worker_processes %d;
worker_rlimit_nofile 20000;
pid %s;
error_log %s warn;

events {
    worker_connections 19000;
}

http {
    access_log off;
    client_body_temp_path %s;
    proxy_temp_path %s;
    fastcgi_temp_path %s;
    uwsgi_temp_path %s;
    scgi_temp_path %s;

%s}
`, workers, filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"),
		tmp("client_body"), tmp("proxy"), tmp("fastcgi"), tmp("uwsgi"), tmp("scgi"), http)
}

// nginxServers is the server lines of an upstream block of upstreams.
func nginxServers(upstreams []string) string {
	var servers strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&servers, "        server %s;\n", u)
	}
	return servers.String()
}

// nginxConfig is NginxConfig's text with listen's parameters and extra
// server directives.
func nginxConfig(dir, listen, extra string, workers int, upstreams []string) string {
	return nginxFrame(dir, workers, fmt.Sprintf(`    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      '';
    }

    upstream bench {
%s        keepalive 64;
    }

    server {
        listen %s;
%s        proxy_http_version 1.1;

        location %s/ {
%s            proxy_set_header X-Forwarded-Prefix %s;
            proxy_pass http://bench/;
        }
        location / {
%s            proxy_set_header X-Forwarded-Prefix "";
            proxy_pass http://bench;
        }
    }
`, nginxServers(upstreams), listen, extra, RoutePrefix, nginxProxyHeaders, RoutePrefix, nginxProxyHeaders))
}

// nginxProxyHeaders are a location's proxy_set_header lines: the client's
// Host (zkgate's pass_host_header default), the WebSocket pair, then the
// forwarding headers zkgate adds by default, with its values for a client
// it does not trust (X-Forwarded-For is the peer alone, not appended to;
// -Host, -Proto and X-Real-Ip; X-Forwarded-Prefix on a route that strips
// its prefix, and none on the others), so that every proxy sends the
// backend the same request: five more header lines cost a Go net/http backend
// about 3 µs of CPU per request, as much as a tenth of what the proxy
// itself costs. A location that sets any proxy_set_header inherits none
// from the server, hence the lines in each.
const nginxProxyHeaders = `            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Real-IP $remote_addr;
`

// HAProxyConfig returns a haproxy.cfg for threads threads in the foreground
// (the harness passes -db), proxying 127.0.0.1:port round robin to
// upstreams and reusing idle server connections across clients (http-reuse
// always). Paths under RoutePrefix/ lose the prefix (replace-path); every
// path goes to the same backend. WebSocket upgrades are HAProxy's default;
// timeout tunnel keeps upgraded connections, timeout http-keep-alive idle
// clients, as long as nginx's default keepalive_timeout. maxconn 9000 lets
// 8,000 held connections and the load beside them in, within 20,000
// descriptors (HAProxy needs two per connection). The idle server
// connection pool's descriptor thresholds are raised: at their defaults
// (tune.pool-low-fd-ratio 20%, high 25% of HAProxy's descriptors) 8,000
// held clients, 44% of the 18,000 descriptors that maxconn gives, make
// HAProxy stop pooling server connections and open one per request,
// tripling its CPU per request; a deployment that holds that many clients
// has a descriptor limit far above it and keeps its pool.
func HAProxyConfig(port, threads int, upstreams []string) string {
	var servers strings.Builder
	for i, u := range upstreams {
		fmt.Fprintf(&servers, "    server b%d %s\n", i+1, u)
	}
	return fmt.Sprintf(`# written by zkbench (internal/benchkit)
global
    nbthread %d
    maxconn 9000
    tune.pool-low-fd-ratio 80
    tune.pool-high-fd-ratio 90

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 75s
    timeout tunnel 1h
    http-reuse always

frontend bench
    bind 127.0.0.1:%d
    http-request set-header X-Forwarded-For %%[src]
    http-request set-header X-Forwarded-Host %%[req.hdr(host)]
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Real-IP %%[src]
    http-request del-header X-Forwarded-Prefix
    http-request set-header X-Forwarded-Prefix %s if { path_beg %s/ }
    http-request replace-path ^%s(/.*)$ \1 if { path_beg %s/ }
    default_backend backends

backend backends
    balance roundrobin
%s`, threads, port, RoutePrefix, RoutePrefix, RoutePrefix, RoutePrefix, servers.String())
}

// CaddyConfig returns a Caddyfile proxying http://127.0.0.1:port round robin
// to upstreams, without the admin endpoint (its default port 2019 could be
// anyone's) or automatic HTTPS; the harness points its data and config
// directories (XDG_*) at the state directory. Paths under RoutePrefix/
// lose the prefix (uri strip_prefix) in a handle of their own, every
// other path goes as it is. The keep-alive pool is raised to 64 idle
// connections per upstream, as nginx's. Caddy adds X-Forwarded-For, -Host
// and -Proto itself; X-Real-IP and, on the prefix's route,
// X-Forwarded-Prefix are set as zkgate sets them (see nginxProxyHeaders).
func CaddyConfig(port int, upstreams []string) string {
	proxy := func(extra string) string {
		return fmt.Sprintf(`		reverse_proxy %s {
			lb_policy round_robin
			header_up X-Real-IP {remote_host}
%s			transport http {
				keepalive 90s
				keepalive_idle_conns 256
				keepalive_idle_conns_per_host 64
			}
		}
`, strings.Join(upstreams, " "), extra)
	}
	return fmt.Sprintf(`# written by zkbench (internal/benchkit)
{
	admin off
	auto_https off
}

http://127.0.0.1:%d {
	@route path %s/*
	handle @route {
		uri strip_prefix %s
%s	}
	handle {
%s	}
}
`, port, RoutePrefix, RoutePrefix, proxy("\t\t\theader_up X-Forwarded-Prefix "+RoutePrefix+"\n"), proxy("\t\t\theader_up -X-Forwarded-Prefix\n"))
}

// ZkgateConfig returns a zkgate configuration shaped like a user's
// (configs/gateway.yaml, the reference run): a route on
// RoutePrefix with strip_prefix and a route on "" (every other path), both
// to the service watched at zkPath in ZooKeeper (127.0.0.1:zkPort), round
// robin, with the service settings of configs/gateway.yaml: active HTTP
// health checks, passive ejection, retries on connect failures. The access
// log, when on, goes to standard output as users run it (the harness
// sends it to a file); metrics are always collected; logging and the rest
// keep their defaults. fastPath false serves every request with net/http
// (entry_points.web.fast_path), to measure that side.
func ZkgateConfig(webPort, adminPort, zkPort int, zkPath string, accessLog, fastPath bool) string {
	web := fmt.Sprintf(`  web:
    address: "127.0.0.1:%d"
    fast_path: %t
`, webPort, fastPath)
	return zkgateConfig(web, adminPort, zkPort, zkPath, accessLog, "")
}

// ZkgatePoliciesConfig is ZkgateConfig (access log and fast path on, as
// the plain zkgate target) with policies on the RoutePrefix route, written
// as docs/configuration.md documents them: a JWT check against jwksFile
// forwarding the sub claim as X-User-ID, a rate limit per client address
// far above any load the harness sends (it never refuses), and CORS for
// PolicyOrigin. Requests need the token WriteBenchToken signs.
func ZkgatePoliciesConfig(webPort, adminPort, zkPort int, zkPath, jwksFile string) string {
	web := fmt.Sprintf(`  web:
    address: "127.0.0.1:%d"
    fast_path: true
`, webPort)
	policies := fmt.Sprintf(`    cors:
      allowed_origins: [%q]
    auth:
      jwt:
        jwks_file: %q
        forward_claims: { sub: X-User-ID }
    rate_limit: { average: 1000000, burst: 1000000, key: client_ip }
`, PolicyOrigin, jwksFile)
	return zkgateConfig(web, adminPort, zkPort, zkPath, true, policies)
}

// ZkgateGzipConfig is ZkgateConfig (fast path on, as the plain zkgate
// target) with response compression on the RoutePrefix route, as
// docs/configuration.md documents it: compress: { enabled: true,
// min_bytes: 1024, level: level }.
func ZkgateGzipConfig(webPort, adminPort, zkPort int, zkPath string, level int, accessLog bool) string {
	web := fmt.Sprintf(`  web:
    address: "127.0.0.1:%d"
    fast_path: true
`, webPort)
	compress := fmt.Sprintf("    compress: { enabled: true, min_bytes: 1024, level: %d }\n", level)
	return zkgateConfig(web, adminPort, zkPort, zkPath, accessLog, compress)
}

// ZkgateTLSConfig is ZkgateConfig with one TLS entry point, websecure, on
// port instead of web: the certificate and key given, every other TLS key
// at its default (TLS 1.2 and 1.3, HTTP/2 by ALPN beside HTTP/1.1), and
// http2_server set to http2Server unless it is "" (the default). HTTP/1.1
// inside TLS is served by the fast path.
func ZkgateTLSConfig(port, adminPort, zkPort int, zkPath, certFile, keyFile string, accessLog bool, http2Server string) string {
	server := ""
	if http2Server != "" {
		server = fmt.Sprintf("    http2_server: %s\n", http2Server)
	}
	secure := fmt.Sprintf(`  websecure:
    address: "127.0.0.1:%d"
%s    tls:
      certificates:
        - cert_file: %q
          key_file: %q
`, port, server, certFile, keyFile)
	return zkgateConfig(secure, adminPort, zkPort, zkPath, accessLog, "")
}

// ZkgateGRPCConfig returns a zkgate configuration that proxies gRPC as
// the README's gRPC section configures it: an entry point on webPort with
// `http2: h2c` (HTTP/2 with prior knowledge beside HTTP/1.1), one route on
// every path to a service discovered under zkPath in ZooKeeper with
// `upstream: { protocol: h2c }`, round robin, TCP probes (the endpoints
// speak only gRPC), retries on connect failures (gRPC calls are POSTs:
// retried only when nothing was sent) and the access log as given.
func ZkgateGRPCConfig(webPort, adminPort, zkPort int, zkPath string, accessLog bool) string {
	entry := fmt.Sprintf(`  grpc:
    address: "127.0.0.1:%d"
    http2: h2c
`, webPort)
	return zkgateHead(entry, adminPort, zkPort, accessLog) + fmt.Sprintf(`routes:
  - name: grpc
    match:
      path_prefix: ""
    service: grpc
    balancer: round_robin
services:
  grpc:
    discovery:
      zookeeper:
        path: %s
    upstream:
      protocol: h2c
    health_check:
      active:
        type: tcp
        interval: 2s
        timeout: 1s
      passive:
        max_failures: 3
        ejection: 10s
    retries:
      attempts: 2
      on: [connect_failure]
`, zkPath)
}

// zkgateConfig is ZkgateConfig's text with the entry points given and
// echoPolicies (YAML lines indented as route keys) on the RoutePrefix
// route.
func zkgateConfig(entryPoints string, adminPort, zkPort int, zkPath string, accessLog bool, echoPolicies string) string {
	return zkgateHead(entryPoints, adminPort, zkPort, accessLog) +
		zkgateRoutes(fmt.Sprintf("      zookeeper:\n        path: %s\n", zkPath), echoPolicies)
}

// ZkgateStaticConfig is ZkgateConfig's gateway with the backend at
// endpoint given statically rather than found in ZooKeeper, and no
// ZooKeeper: for measurements made by hand without one (scripts/ab.sh).
func ZkgateStaticConfig(webPort, adminPort int, endpoint string, accessLog bool) string {
	web := fmt.Sprintf("  web:\n    address: \"127.0.0.1:%d\"\n", webPort)
	return zkgateHead(web, adminPort, 0, accessLog) +
		zkgateRoutes(fmt.Sprintf("      static: { endpoints: [%q] }\n", endpoint), "")
}

// zkgateRoutes is a zkgate configuration's routes and its one service,
// whose discovery is the YAML lines given (indented as discovery keys),
// with echoPolicies (YAML lines indented as route keys) on the
// RoutePrefix route.
func zkgateRoutes(discovery, echoPolicies string) string {
	return fmt.Sprintf(`routes:
  - name: echo
    match:
      path_prefix: %s
    strip_prefix: true
    service: bench
    balancer: round_robin
%s  - name: rest
    match:
      path_prefix: ""
    service: bench
    balancer: round_robin
services:
  bench:
    discovery:
%s    health_check:
      active:
        type: http
        path: /healthz
        interval: 2s
        timeout: 1s
      passive:
        max_failures: 3
        ejection: 10s
    retries:
      attempts: 2
      on: [connect_failure]
`, RoutePrefix, echoPolicies, discovery)
}

// zkgateHead is a zkgate configuration's keys before its routes: the entry
// points given (YAML lines indented as entry point names), the admin
// listener, the access log on or off, no drain delay, and ZooKeeper
// (none when zkPort is 0).
func zkgateHead(entryPoints string, adminPort, zkPort int, accessLog bool) string {
	zk := ""
	if zkPort != 0 {
		zk = fmt.Sprintf("zookeeper:\n  servers: [\"127.0.0.1:%d\"]\n", zkPort)
	}
	return fmt.Sprintf(`# written by zkbench (internal/benchkit)
entry_points:
%sadmin:
  address: "127.0.0.1:%d"
log:
  access_log:
    enabled: %t
shutdown:
  drain_delay: 0s
  grace_timeout: 5s
%s`, entryPoints, adminPort, accessLog, zk)
}
