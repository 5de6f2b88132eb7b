package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zkgate/zkgate/discovery"
)

func TestParseAppliesDefaults(t *testing.T) {
	cfg := mustParse(t, validYAML)

	def := Default()
	if !reflect.DeepEqual(cfg.EntryPoints, def.EntryPoints) {
		t.Errorf("entry points = %+v, want the default %+v", cfg.EntryPoints, def.EntryPoints)
	}
	if cfg.Admin != def.Admin || cfg.Log != def.Log || cfg.Shutdown != def.Shutdown {
		t.Errorf("admin/log/shutdown = %+v %+v %+v, want defaults", cfg.Admin, cfg.Log, cfg.Shutdown)
	}
	if !reflect.DeepEqual(cfg.ZooKeeper, def.ZooKeeper) {
		t.Errorf("zookeeper = %+v, want %+v", cfg.ZooKeeper, def.ZooKeeper)
	}
	if len(cfg.TrustedProxies) != 0 {
		t.Errorf("trusted_proxies = %q, want empty", cfg.TrustedProxies)
	}

	if len(cfg.Routes) != 1 {
		t.Fatalf("routes = %+v, want one", cfg.Routes)
	}
	r := cfg.Routes[0]
	want := defaultRoute()
	want.Name, want.Service, want.Match.PathPrefix = "echo", "echo", "/echo"
	if !reflect.DeepEqual(r, want) {
		t.Errorf("route =\n%+v\nwant\n%+v", r, want)
	}

	svc, ok := cfg.Services["echo"]
	if !ok {
		t.Fatalf("service echo missing (an empty mapping must declare a service with defaults): %+v", cfg.Services)
	}
	wantSvc := defaultService()
	wantSvc.Discovery.ZooKeeper = &ZooKeeperDiscovery{Path: "/services/echo", Format: string(discovery.FormatAuto), Filter: map[string]string{}}
	if !reflect.DeepEqual(svc, wantSvc) {
		t.Errorf("service =\n%+v\nwant\n%+v", svc, wantSvc)
	}
}

func TestParseKeepsExplicitZeroValues(t *testing.T) {
	cfg := mustParse(t, `
entry_points: {web: {address: ":8080", idle_timeout: 0, max_header_bytes: 0}}
log: {access_log: {enabled: false}}
routes: [{name: r, service: s, timeout: 0}]
services:
  s:
    pass_host_header: false
    retries: {attempts: 1, on: []}
    health_check: {passive: {max_failures: 0}}
`)
	ep := cfg.EntryPoints["web"]
	if ep.IdleTimeout != 0 || ep.MaxHeaderBytes != 0 || ep.ReadHeaderTimeout != 10*time.Second {
		t.Errorf("entry point = %+v: explicit zeros must stay, omitted keys default", ep)
	}
	if cfg.Log.AccessLog.Enabled {
		t.Error("access_log.enabled: false became true")
	}
	if cfg.Routes[0].Timeout != 0 {
		t.Errorf("route timeout = %s, want 0", cfg.Routes[0].Timeout)
	}
	s := cfg.Services["s"]
	if s.PassHostHeader || s.Retries.Attempts != 1 || len(s.Retries.On) != 0 || s.HealthCheck.Passive.MaxFailures != 0 {
		t.Errorf("service = %+v: explicit zero values were replaced by defaults", s)
	}
}

func TestParseNormalizes(t *testing.T) {
	cfg := mustParse(t, `
zookeeper: {servers: [zk1, "::1", "[::2]", "zk3:2182"], base_path: /apps}
routes:
  - name: r
    service: Payments.V2
    match:
      hosts: [API.Example.com]
      methods: [get, Post]
      headers: {x-user-id: "42"}
    request_headers: {set: {x-from: zkgate}, remove: [x-debug]}
services:
  Payments.V2: {}
`)
	if got, want := cfg.ZooKeeper.Servers, []string{"zk1:2181", "[::1]:2181", "[::2]:2181", "zk3:2182"}; !reflect.DeepEqual(got, want) {
		t.Errorf("servers = %q, want %q", got, want)
	}
	r := cfg.Routes[0]
	if r.Service != "payments.v2" {
		t.Errorf("service = %q, want lower case", r.Service)
	}
	if !reflect.DeepEqual(r.Match.Hosts, []string{"api.example.com"}) || !reflect.DeepEqual(r.Match.Methods, []string{"GET", "POST"}) {
		t.Errorf("hosts %q methods %q, want lower-case hosts and upper-case methods", r.Match.Hosts, r.Match.Methods)
	}
	if r.Match.Headers["X-User-Id"] != "42" || r.RequestHeaders.Set["X-From"] != "zkgate" || r.RequestHeaders.Remove[0] != "X-Debug" {
		t.Errorf("headers not canonical: %+v %+v", r.Match.Headers, r.RequestHeaders)
	}
	svc, ok := cfg.Services["payments.v2"]
	if !ok {
		t.Fatalf("service with a dot in its name was split: %+v", cfg.Services)
	}
	if svc.Discovery.ZooKeeper.Path != "/apps/payments.v2" {
		t.Errorf("path = %q, want base_path/name", svc.Discovery.ZooKeeper.Path)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load(missing) = %v, want a not-exist error naming %s", err, path)
	}
}

func TestLoadResolvesPath(t *testing.T) {
	dir := t.TempDir()
	fromEnv := filepath.Join(dir, "env.yaml")
	fromFlag := filepath.Join(dir, "flag.yaml")
	if err := os.WriteFile(fromEnv, []byte("log: {level: debug}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fromFlag, []byte("log: {level: warn}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvConfigPath, fromEnv)

	cfg, err := Load("")
	if err != nil || cfg.Log.Level != "debug" || cfg.Source != fromEnv {
		t.Fatalf("Load(\"\") with $%s = %+v, %v; want the file it names", EnvConfigPath, cfg, err)
	}
	cfg, err = Load(fromFlag)
	if err != nil || cfg.Log.Level != "warn" {
		t.Fatalf("Load(flag) = %+v, %v; want the flag's file", cfg, err)
	}

	t.Setenv(EnvConfigPath, "")
	if p, how := ResolvePath(""); p != DefaultPath || how != "default" {
		t.Errorf("ResolvePath(\"\") = %q, %q; want the default", p, how)
	}
	t.Chdir(dir) // no configs/gateway.yaml here
	_, err = Load("")
	if err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("Load with no file at the default path = %v; want a hint to use --config", err)
	}
}

func TestParseYAMLSyntaxError(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unclosed list", "log:\n  level: info\nzookeeper:\n  servers: [a, b\n", []string{"bad.yaml: line ", "invalid YAML"}},
		{"tab indentation", "log:\n\tlevel: info\n", []string{"bad.yaml: line 2: invalid YAML"}},
		{"duplicate key", "log: {}\nlog: {}\n", []string{"bad.yaml:", "line 2", `"log" already defined`}},
		{"not a mapping", "- a\n- b\n", []string{"bad.yaml:", "invalid YAML", "into a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "bad.yaml")
			wantOneProblem(t, err, tt.want...)
		})
	}
}

func TestParseDecodeErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top-level key", "logg: {level: info}\n",
			[]string{"test.yaml: logg: unknown key", `did you mean "log"`}},
		{"unknown key without a close match", "frobnicate: 1\n",
			[]string{"frobnicate: unknown key (valid: admin, entry_points,"}},
		{"unknown nested key in a list", "routes:\n  - name: r\n    service: s\n    matchh: {path_prefix: /x}\nservices: {s: {}}\n",
			[]string{"routes[0].matchh: unknown key", `did you mean "match"`}},
		{"unknown key in a service", "services:\n  echo:\n    health_check: {active: {typ: http}}\n",
			[]string{"services.echo.health_check.active.typ: unknown key", `"type"`}},
		{"unknown key in an entry point", "entry_points: {web: {adress: ':80'}}\n",
			[]string{"entry_points.web.adress: unknown key", `"address"`}},
		{"bad duration", "services:\n  echo:\n    timeouts: {dial: 2q}\n",
			[]string{"services.echo.timeouts.dial: invalid duration \"2q\""}},
		{"duration without unit", "shutdown: {drain_delay: 5}\n",
			[]string{"shutdown.drain_delay: invalid duration 5", `"5s"`}},
		{"integer expected", "services:\n  echo:\n    retries: {attempts: many}\n",
			[]string{"services.echo.retries.attempts: expected an integer, got \"many\""}},
		{"mapping expected", "admin: 9901\n",
			[]string{"admin: expected a mapping, got 9901"}},
		{"list expected", "routes: {name: r}\n",
			[]string{"routes: expected a list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "test.yaml")
			wantOneProblem(t, err, tt.want...)
		})
	}
}

func TestParseReportsEveryDecodeProblem(t *testing.T) {
	_, err := Parse([]byte(`
routes: [{name: r, service: s, timeout: 5q, matchh: {}}]
services:
  s: {timeouts: {dial: x}, retries: {attempts: y}}
`), "test.yaml")
	probs := problemList(err)
	for _, key := range []string{"routes[0].timeout", "routes[0].matchh", "services.s.timeouts.dial", "services.s.retries.attempts"} {
		found := false
		for _, p := range probs {
			found = found || strings.Contains(p, key+": ")
		}
		if !found {
			t.Errorf("no problem names %s; got:\n%s", key, strings.Join(probs, "\n"))
		}
	}
}

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	empty := mustParse(t, "")
	if !reflect.DeepEqual(empty.EntryPoints, Default().EntryPoints) || len(empty.Routes) != 0 {
		t.Errorf("empty file = %+v, want the defaults", empty)
	}
}

// TestYAMLErrorLine: a syntax error is reported on its own line. The YAML
// library gives the 0-based line of the enclosing block for parser errors
// (a bad indent on line 7 came out as line 3).
func TestYAMLErrorLine(t *testing.T) {
	tests := []struct {
		name, yaml string
		line       string
	}{
		{"indented key", "zookeeper:\n  servers: [\"127.0.0.1:2181\"]\nroutes:\n  - name: a\n     service: b\n", "line 5:"},
		{"unclosed flow list", "a: 1\nb: 2\nc: 3\nd: [1, 2\ne: 5\n", "line 4:"},
		{"unclosed quote", "log:\n  level: info\nadmin:\n  address: \"x\n", "line 4:"},
		{"list item out of line", "log:\n  level: info\nroutes:\n  - name: a\n    service: b\n  - name: c\n   service: d\nservices: {}\n", "line 7:"},
		{"key dedented", "log:\n  level: info\nroutes:\n  - name: a\n    service: b\n services: {}\n", "line 6:"},
		{"sibling dedented", "log:\n  level: info\n format: json\n", "line 3:"},
		{"after a valid multi-line list", "zookeeper:\n  servers: [\n    \"a:1\",\n    \"b:2\"]\nlog:\n  level: info\n   format: json\n", "line 7:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "bad.yaml")
			if err == nil || !strings.Contains(err.Error(), "bad.yaml: "+tt.line+" invalid YAML") {
				t.Errorf("error %v; want it at %s", err, tt.line)
			}
		})
	}
}
