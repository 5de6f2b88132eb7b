package benchkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/config"
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
	text := NginxConfig(dir, 19120, upstreams)
	mustContain(t, "nginx.conf", text, "worker_processes 1;", "keepalive 64;", "proxy_http_version 1.1;",
		`proxy_set_header Connection "";`, "listen 127.0.0.1:19120;", "server 127.0.0.1:19101;", "server 127.0.0.1:19102;",
		"access_log off;", "pid "+filepath.Join(dir, "nginx.pid"))
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
	text := HAProxyConfig(19121, upstreams)
	mustContain(t, "haproxy.cfg", text, "nbthread 1", "http-reuse always", "bind 127.0.0.1:19121",
		"server b1 127.0.0.1:19101", "server b2 127.0.0.1:19102", "balance roundrobin")
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
		"reverse_proxy 127.0.0.1:19101 127.0.0.1:19102", "keepalive_idle_conns_per_host 64")
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
		if len(cfg.Routes) != 1 || cfg.Routes[0].Balancer != "round_robin" || cfg.Routes[0].Service != "bench" {
			t.Errorf("routes = %+v, want one round_robin route to bench", cfg.Routes)
		}
		if zk := cfg.Services["bench"].Discovery.ZooKeeper; zk == nil || zk.Path != "/services/bench3" {
			t.Errorf("bench discovery = %+v, want ZooKeeper at /services/bench3", cfg.Services["bench"].Discovery)
		}
	}
}
