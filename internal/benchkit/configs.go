package benchkit

import (
	"fmt"
	"path/filepath"
	"strings"
)

// The proxies' configurations. Each listens on one loopback port, proxies
// every path to its upstreams over keep-alive HTTP/1.1 connections, logs no
// requests (zkgate's access log aside, which ZkgateConfig controls) and
// keeps every file it writes in the harness's state directory.

// NginxConfig returns an nginx.conf for one worker in the foreground (the
// harness adds -g 'daemon off;'), with its pid file, logs and temporary
// files under dir, proxying 127.0.0.1:port to upstreams with a keep-alive
// pool of 64 connections.
func NginxConfig(dir string, port int, upstreams []string) string {
	var servers strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&servers, "        server %s;\n", u)
	}
	tmp := func(name string) string { return filepath.Join(dir, "tmp", name) }
	return fmt.Sprintf(`# written by zkbench (internal/benchkit); one worker, as in the issue's reference run
worker_processes 1;
pid %s;
error_log %s warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path %s;
    proxy_temp_path %s;
    fastcgi_temp_path %s;
    uwsgi_temp_path %s;
    scgi_temp_path %s;

    upstream bench {
%s        keepalive 64;
    }

    server {
        listen 127.0.0.1:%d;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"),
		tmp("client_body"), tmp("proxy"), tmp("fastcgi"), tmp("uwsgi"), tmp("scgi"),
		servers.String(), port)
}

// HAProxyConfig returns a haproxy.cfg for one thread in the foreground (the
// harness passes -db), proxying 127.0.0.1:port round robin to upstreams and
// reusing idle server connections across clients (http-reuse always).
func HAProxyConfig(port int, upstreams []string) string {
	var servers strings.Builder
	for i, u := range upstreams {
		fmt.Fprintf(&servers, "    server b%d %s\n", i+1, u)
	}
	return fmt.Sprintf(`# written by zkbench (internal/benchkit)
global
    nbthread 1
    maxconn 8192

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    http-reuse always

frontend bench
    bind 127.0.0.1:%d
    default_backend backends

backend backends
    balance roundrobin
%s`, port, servers.String())
}

// CaddyConfig returns a Caddyfile proxying http://127.0.0.1:port round robin
// to upstreams, without the admin endpoint (its default port 2019 could be
// anyone's) or automatic HTTPS; the harness points its data and config
// directories (XDG_*) at the state directory. The keep-alive pool
// is raised to 64 idle connections per upstream, as nginx's.
func CaddyConfig(port int, upstreams []string) string {
	return fmt.Sprintf(`# written by zkbench (internal/benchkit)
{
	admin off
	auto_https off
}

http://127.0.0.1:%d {
	reverse_proxy %s {
		lb_policy round_robin
		transport http {
			keepalive 90s
			keepalive_idle_conns 256
			keepalive_idle_conns_per_host 64
		}
	}
}
`, port, strings.Join(upstreams, " "))
}

// ZkgateConfig returns a zkgate configuration whose one route sends every
// path to the service watched at zkPath in ZooKeeper (127.0.0.1:zkPort),
// round robin, with the service settings of configs/gateway.yaml: active
// HTTP health checks, passive ejection, retries on connect failures. The
// access log, when on, goes to standard output as users run it; metrics are
// always collected. fastPath false serves every request with net/http
// (entry_points.web.fast_path), to measure that side.
func ZkgateConfig(webPort, adminPort, zkPort int, zkPath string, accessLog, fastPath bool) string {
	return fmt.Sprintf(`# written by zkbench (internal/benchkit)
entry_points:
  web:
    address: "127.0.0.1:%d"
    fast_path: %t
admin:
  address: "127.0.0.1:%d"
log:
  level: info
  format: json
  access_log:
    enabled: %t
shutdown:
  drain_delay: 0s
  grace_timeout: 5s
zookeeper:
  servers: ["127.0.0.1:%d"]
  session_timeout: 10s
routes:
  - name: bench
    match:
      path_prefix: ""
    service: bench
    balancer: round_robin
services:
  bench:
    discovery:
      zookeeper:
        path: %s
    health_check:
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
`, webPort, fastPath, adminPort, accessLog, zkPort, zkPath)
}
