package benchkit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/zktest"
)

var upstreams = []string{"127.0.0.1:19101", "127.0.0.1:19102"}

// tool finds an installed proxy, also in /usr/sbin, or skips.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/" + name); err == nil {
		return "/usr/sbin/" + name
	}
	if os.Getenv("CI") == "true" { // make test installs it: missing is a failure
		t.Fatalf("%s not installed (scripts/ensure-deps.sh %s)", name, name)
	}
	t.Skipf("%s not installed (scripts/ensure-deps.sh %s)", name, name)
	return ""
}

// validates runs a proxy's configuration check, failing t with its output.
func validates(t *testing.T, env []string, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

func mustContain(t *testing.T, what, text string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(text, p) {
			t.Errorf("%s lacks %q:\n%s", what, p, text)
		}
	}
}

func TestNginxConfig(t *testing.T) {
	dir := t.TempDir()
	text := NginxConfig(dir, 19120, 1, upstreams)
	mustContain(t, "nginx.conf", text, "worker_processes 1;", "keepalive 64;", "proxy_http_version 1.1;",
		"proxy_set_header Connection $connection_upgrade;", "proxy_set_header Upgrade $http_upgrade;", "''      '';",
		"location /echo/ {\n"+nginxProxyHeaders+"            proxy_set_header X-Forwarded-Prefix /echo;\n            proxy_pass http://bench/;",
		"location / {\n"+nginxProxyHeaders+"            proxy_set_header X-Forwarded-Prefix \"\";\n            proxy_pass http://bench;",
		"worker_connections 19000;", "listen 127.0.0.1:19120;", "server 127.0.0.1:19101;", "server 127.0.0.1:19102;",
		"access_log off;", "pid "+filepath.Join(dir, "nginx.pid"))
	nginxAccepts(t, dir, text)
}

// TestNginxLogConfig: the access-log variant logs each request of the
// server in the combined format to its directory, and nginx accepts it.
func TestNginxLogConfig(t *testing.T) {
	dir := t.TempDir()
	text := NginxLogConfig(dir, 19106, 1, upstreams)
	mustContain(t, "nginx.conf", text, "listen 127.0.0.1:19106;",
		"        access_log "+filepath.Join(dir, "access.log")+" combined;\n        proxy_http_version 1.1;")
	nginxAccepts(t, dir, text)
}

// nginxAccepts writes text as dir/nginx.conf (with the tmp directory it
// names) and checks that nginx -t accepts it.
func nginxAccepts(t *testing.T, dir, text string) {
	t.Helper()
	nginx := tool(t, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	validates(t, nil, nginx, "-t", "-q", "-p", dir, "-c", cfg, "-e", "stderr")
}

func TestHAProxyConfig(t *testing.T) {
	text := HAProxyConfig(19121, 1, upstreams)
	mustContain(t, "haproxy.cfg", text, "nbthread 1", "http-reuse always", "bind 127.0.0.1:19121", "timeout tunnel",
		`http-request replace-path ^/echo(/.*)$ \1 if { path_beg /echo/ }`, "maxconn 9000", "tune.pool-low-fd-ratio 80",
		"server b1 127.0.0.1:19101", "server b2 127.0.0.1:19102", "balance roundrobin", "http-request set-header X-Forwarded-For %[src]",
		"http-request set-header X-Forwarded-Prefix /echo if { path_beg /echo/ }")
	haproxy := tool(t, "haproxy")
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	validates(t, nil, haproxy, "-c", "-q", "-f", cfg)
}

func TestCaddyConfig(t *testing.T) {
	text := CaddyConfig(19122, upstreams)
	mustContain(t, "Caddyfile", text, "admin off", "auto_https off", "http://127.0.0.1:19122",
		"reverse_proxy 127.0.0.1:19101 127.0.0.1:19102", "keepalive_idle_conns_per_host 64",
		"@route path /echo/*", "handle @route {\n\t\turi strip_prefix /echo\n", "header_up X-Forwarded-Prefix /echo", "header_up X-Real-IP {remote_host}")
	caddy := tool(t, "caddy")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	validates(t, []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "XDG_DATA_HOME=" + dir},
		caddy, "validate", "--config", cfg, "--adapter", "caddyfile")
}

func TestZkgateConfigLoads(t *testing.T) {
	for _, accessLog := range []bool{true, false} {
		text := ZkgateConfig(19110, 19111, 19100, "/services/bench3", accessLog, !accessLog)
		cfg, err := config.Parse([]byte(text), "zkgate bench config")
		if err != nil {
			t.Fatalf("the generated configuration does not load: %v\n%s", err, text)
		}
		if got := cfg.EntryPoints["web"].Address; got != "127.0.0.1:19110" {
			t.Errorf("web address = %q, want 127.0.0.1:19110", got)
		}
		if fast := cfg.EntryPoints["web"].FastPath; fast != !accessLog {
			t.Errorf("fast_path = %v, want %v", fast, !accessLog)
		}
		if cfg.Admin.Address != "127.0.0.1:19111" || cfg.Log.AccessLog.Enabled != accessLog {
			t.Errorf("admin %q, access log %v; want 127.0.0.1:19111 and %v", cfg.Admin.Address, cfg.Log.AccessLog.Enabled, accessLog)
		}
		if len(cfg.Routes) != 2 {
			t.Fatalf("routes = %+v, want /echo and the rest", cfg.Routes)
		}
		for i, r := range cfg.Routes {
			if r.Balancer != "round_robin" || r.Service != "bench" {
				t.Errorf("route %d = %+v, want a round_robin route to bench", i, r)
			}
		}
		if echo, rest := cfg.Routes[0], cfg.Routes[1]; echo.Match.PathPrefix != RoutePrefix || !echo.StripPrefix || rest.Match.PathPrefix != "" || rest.StripPrefix {
			t.Errorf("routes = %+v, want %s with strip_prefix, then \"\" without", cfg.Routes, RoutePrefix)
		}
		if cfg.Log.Format != "auto" || cfg.EntryPoints["web"].IdleTimeout != 90*time.Second {
			t.Errorf("log format %q, idle timeout %v: want the defaults (auto, 90s), as a user runs it", cfg.Log.Format, cfg.EntryPoints["web"].IdleTimeout)
		}
		if zk := cfg.Services["bench"].Discovery.ZooKeeper; zk == nil || zk.Path != "/services/bench3" {
			t.Errorf("bench discovery = %+v, want ZooKeeper at /services/bench3", cfg.Services["bench"].Discovery)
		}
	}
}

// TestZkgateStaticConfigLoads: the by-hand configuration (scripts/ab.sh)
// is the bench's, with the backend named statically and no ZooKeeper.
func TestZkgateStaticConfigLoads(t *testing.T) {
	for _, accessLog := range []bool{true, false} {
		text := ZkgateStaticConfig(19120, 19121, "127.0.0.1:19122", accessLog)
		cfg, err := config.Parse([]byte(text), "zkgate by-hand config")
		if err != nil {
			t.Fatalf("the generated configuration does not load: %v\n%s", err, text)
		}
		if cfg.EntryPoints["web"].Address != "127.0.0.1:19120" || cfg.Admin.Address != "127.0.0.1:19121" || cfg.Log.AccessLog.Enabled != accessLog {
			t.Errorf("web %q, admin %q, access log %v; want 127.0.0.1:19120, 127.0.0.1:19121, %v",
				cfg.EntryPoints["web"].Address, cfg.Admin.Address, cfg.Log.AccessLog.Enabled, accessLog)
		}
		if strings.Contains(text, "zookeeper") {
			t.Errorf("the configuration names ZooKeeper:\n%s", text)
		}
		d := cfg.Services["bench"].Discovery
		if d.ZooKeeper != nil || d.Static == nil || !slices.Equal(d.Static.Endpoints, []string{"127.0.0.1:19122"}) {
			t.Errorf("bench discovery = %+v, want the static endpoint 127.0.0.1:19122", d)
		}
		if len(cfg.Routes) != 2 || cfg.Routes[0].Match.PathPrefix != RoutePrefix || !cfg.Routes[0].StripPrefix {
			t.Errorf("routes = %+v, want %s with strip_prefix, then the rest", cfg.Routes, RoutePrefix)
		}
	}
}

// startProxy starts a proxy from argv (its configuration written by the
// caller) and waits until port answers the small body through the route.
func startProxy(t *testing.T, name string, port int, env []string, argv ...string) {
	t.Helper()
	p, err := StartProc(ProcSpec{Name: name, Argv: argv, Env: env, Log: filepath.Join(t.TempDir(), name+".log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	url := fmt.Sprintf("http://127.0.0.1:%d%s/", port, RoutePrefix)
	err = WaitFor(context.Background(), 20*time.Second, name+" to answer at "+url, func() (bool, error) {
		if err := p.Err(); err != nil {
			return false, err
		}
		resp, err := http.Get(url)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == 200, nil
	})
	if err != nil {
		log, _ := os.ReadFile(p.LogPath)
		t.Fatalf("%v\n%s", err, log)
	}
}

// checkRouting asks the proxy on port for the 16 KiB body through the
// route (the prefix must be stripped for the backend to serve it) and
// beside it, checks that the backend (rec) got the forwarding headers
// zkgate sends for an untrusted client on both routes (the client's own
// X-Forwarded-For and X-Forwarded-Prefix replaced or dropped), then holds
// upgraded connections through it when upgrades is set.
func checkRouting(t *testing.T, port int, rec *headerRecorder, upgrades bool) {
	t.Helper()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for path, want := range map[string]string{RoutePrefix + LargePath: string(LargeBody()), LargePath: string(LargeBody()),
		RoutePrefix + "/": SmallBody, "/other": SmallBody} {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("X-Forwarded-Prefix", "/client")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("GET %s: %d, %d bytes; want 200 and %d bytes", path, resp.StatusCode, len(body), len(want))
		}
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	for path, prefix := range map[string]string{"/": RoutePrefix, "/other": ""} {
		h := rec.get(path)
		want := map[string]string{"Host": host, "X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": host, "X-Forwarded-Proto": "http",
			"X-Real-Ip": "127.0.0.1", "X-Forwarded-Prefix": prefix}
		for name, v := range want {
			if got := strings.Join(h.Values(name), ", "); got != v {
				t.Errorf("backend's %s of %s: %q, want %q (the forwarding headers zkgate sends by default)", name, path, got, v)
			}
		}
	}
	kinds := []string{HoldIdle}
	if upgrades {
		kinds = append(kinds, HoldUpgrade)
	}
	for _, kind := range kinds {
		est, stop := holdUntilEstablished(t, HoldOptions{Addr: fmt.Sprintf("127.0.0.1:%d", port), Path: RoutePrefix + "/ws",
			Kind: kind, Conns: 40, EchoEvery: 4})
		closed := stop()
		if est.Established != 40 || (kind == HoldUpgrade && est.EchoOK != 10) || closed.Alive != 40 {
			t.Errorf("%s connections through the proxy: %+v, then %+v; want 40 held (10 echoes for upgrades), all alive at the close", kind, est, closed)
		}
	}
}

// freeBackend serves Backend on a loopback port for a proxy to reach.
func freeBackend(t *testing.T) []string {
	addrs, _ := recordingBackend(t)
	return addrs
}

// recordingBackend is freeBackend that also records the request headers
// of the last request for each path.
func recordingBackend(t *testing.T) ([]string, *headerRecorder) {
	t.Helper()
	rec := &headerRecorder{seen: map[string]http.Header{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		h := r.Header.Clone()
		h.Set("Host", r.Host) // net/http keeps it apart
		rec.seen[r.URL.Path] = h
		rec.mu.Unlock()
		(&Backend{ID: "b"}).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return []string{strings.TrimPrefix(srv.URL, "http://")}, rec
}

// headerRecorder holds the headers a backend last got for each path.
type headerRecorder struct {
	mu   sync.Mutex
	seen map[string]http.Header
}

func (r *headerRecorder) get(path string) http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[path]
}

func TestNginxConfigRoutesAndUpgrades(t *testing.T) {
	addrs, rec := recordingBackend(t)
	nginx := tool(t, "nginx")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := zktest.FreePort(t)
	cfg := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cfg, []byte(NginxConfig(dir, port, 2, addrs)), 0o644); err != nil {
		t.Fatal(err)
	}
	startProxy(t, "nginx", port, nil, nginx, "-p", dir, "-c", cfg, "-e", "stderr", "-g", "daemon off;")
	checkRouting(t, port, rec, true)
}

func TestHAProxyConfigRoutesAndUpgrades(t *testing.T) {
	addrs, rec := recordingBackend(t)
	haproxy := tool(t, "haproxy")
	port := zktest.FreePort(t)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(HAProxyConfig(port, 2, addrs)), 0o644); err != nil {
		t.Fatal(err)
	}
	startProxy(t, "haproxy", port, nil, haproxy, "-f", cfg, "-db")
	checkRouting(t, port, rec, true)
}

func TestCaddyConfigRoutes(t *testing.T) {
	addrs, rec := recordingBackend(t)
	caddy := tool(t, "caddy")
	dir := t.TempDir()
	port := zktest.FreePort(t)
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(CaddyConfig(port, addrs)), 0o644); err != nil {
		t.Fatal(err)
	}
	startProxy(t, "caddy", port, []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "XDG_DATA_HOME=" + dir},
		caddy, "run", "--config", cfg, "--adapter", "caddyfile")
	checkRouting(t, port, rec, false)
}
