package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEnvOverridesScalar(t *testing.T) {
	t.Setenv("ZKGATE_ADMIN_ADDRESS", "0.0.0.0:9902")
	t.Setenv("ZKGATE_LOG_LEVEL", "debug")
	t.Setenv("ZKGATE_LOG_ACCESS_LOG_ENABLED", "false")
	t.Setenv("ZKGATE_ZOOKEEPER_AUTH_CREDENTIALS", "zkgate:pw")
	cfg := mustParse(t, "log: {level: warn}\n") // the environment wins over the file

	if cfg.Admin.Address != "0.0.0.0:9902" {
		t.Errorf("admin.address = %q, want the environment's", cfg.Admin.Address)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("log.level = %q, want the environment's over the file's", cfg.Log.Level)
	}
	if cfg.Log.AccessLog.Enabled {
		t.Error("log.access_log.enabled = true, want false from the environment")
	}
	if cfg.ZooKeeper.Auth.Credentials != "zkgate:pw" {
		t.Errorf("zookeeper.auth.credentials = %q", cfg.ZooKeeper.Auth.Credentials)
	}
}

func TestEnvOverridesDuration(t *testing.T) {
	t.Setenv("ZKGATE_ZOOKEEPER_SESSION_TIMEOUT", "4s")
	t.Setenv("ZKGATE_ENTRY_POINTS_WEB_IDLE_TIMEOUT", "1m")
	t.Setenv("ZKGATE_SERVICES_ECHO_TIMEOUTS_DIAL", "250ms")
	cfg := mustParse(t, validYAML)

	if cfg.ZooKeeper.SessionTimeout != 4*time.Second {
		t.Errorf("zookeeper.session_timeout = %s, want 4s", cfg.ZooKeeper.SessionTimeout)
	}
	if got := cfg.EntryPoints["web"].IdleTimeout; got != time.Minute {
		t.Errorf("entry_points.web.idle_timeout = %s, want 1m (the default entry point is overridable)", got)
	}
	if got := cfg.Services["echo"].Timeouts.Dial; got != 250*time.Millisecond {
		t.Errorf("services.echo.timeouts.dial = %s, want 250ms", got)
	}
}

func TestEnvOverridesList(t *testing.T) {
	t.Setenv("ZKGATE_ZOOKEEPER_SERVERS", "a:2181, b:2181,c")
	t.Setenv("ZKGATE_TRUSTED_PROXIES", "10.0.0.0/8")
	cfg := mustParse(t, "zookeeper: {servers: [file:2181]}\n")

	if want := []string{"a:2181", "b:2181", "c:2181"}; !reflect.DeepEqual(cfg.ZooKeeper.Servers, want) {
		t.Errorf("zookeeper.servers = %q, want %q", cfg.ZooKeeper.Servers, want)
	}
	if want := []string{"10.0.0.0/8"}; !reflect.DeepEqual(cfg.TrustedProxies, want) {
		t.Errorf("trusted_proxies = %q, want %q", cfg.TrustedProxies, want)
	}
}

func TestEnvOverridesNamedEntryPoint(t *testing.T) {
	t.Setenv("ZKGATE_ENTRY_POINTS_PUBLIC_ADDRESS", ":9443")
	cfg := mustParse(t, "entry_points: {public: {address: ':443'}}\n")
	if got := cfg.EntryPoints["public"].Address; got != ":9443" {
		t.Errorf("entry_points.public.address = %q, want :9443", got)
	}
	if _, ok := cfg.EntryPoints["web"]; ok {
		t.Error(`entry point "web" added although the file names its own entry points`)
	}
}

func TestEnvBadValueNamesKeyAndVariable(t *testing.T) {
	t.Setenv("ZKGATE_SHUTDOWN_GRACE_TIMEOUT", "soon")
	_, err := Parse([]byte(""), "test.yaml")
	wantOneProblem(t, err, "shutdown.grace_timeout: invalid duration", "$ZKGATE_SHUTDOWN_GRACE_TIMEOUT")

	t.Setenv("ZKGATE_SHUTDOWN_GRACE_TIMEOUT", "")
	t.Setenv("ZKGATE_ZOOKEEPER_SERVERS", "zk1:2181,zk2:x")
	_, err = Parse([]byte(""), "test.yaml")
	wantOneProblem(t, err, `zookeeper.servers[1]: "zk2:x": invalid port "x"`, "$ZKGATE_ZOOKEEPER_SERVERS")
}

func TestEnvVar(t *testing.T) {
	tests := []struct {
		segments []string
		want     string
	}{
		{[]string{"zookeeper", "servers"}, "ZKGATE_ZOOKEEPER_SERVERS"},
		{[]string{"log", "access_log", "enabled"}, "ZKGATE_LOG_ACCESS_LOG_ENABLED"},
		{[]string{"services", "payments.v2", "timeouts", "dial"}, "ZKGATE_SERVICES_PAYMENTS_V2_TIMEOUTS_DIAL"},
	}
	for _, tt := range tests {
		if got := EnvVar(tt.segments...); got != tt.want {
			t.Errorf("EnvVar(%q) = %q, want %q", tt.segments, got, tt.want)
		}
	}
}

func TestEnvBindingsCoverStaticKeys(t *testing.T) {
	var envs []string
	for _, b := range envBindings(nil, []string{"echo"}) {
		envs = append(envs, b.env)
	}
	for _, want := range []string{
		"ZKGATE_ADMIN_ADDRESS", "ZKGATE_ADMIN_TOKEN", "ZKGATE_LOG_LEVEL", "ZKGATE_LOG_FORMAT",
		"ZKGATE_TRUSTED_PROXIES", "ZKGATE_SHUTDOWN_DRAIN_DELAY", "ZKGATE_ZOOKEEPER_SERVERS",
		"ZKGATE_ZOOKEEPER_RESYNC_INTERVAL", "ZKGATE_ENTRY_POINTS_WEB_ADDRESS",
		"ZKGATE_SERVICES_ECHO_DISCOVERY_ZOOKEEPER_PATH", "ZKGATE_SERVICES_ECHO_RETRIES_ON",
	} {
		if !slices.Contains(envs, want) {
			t.Errorf("no binding for %s", want)
		}
	}
	for _, e := range envs {
		if strings.HasPrefix(e, "ZKGATE_ROUTES") {
			t.Errorf("routes have no environment overrides, got %s", e)
		}
	}
}

// TestUnknownEnvWarns: a ZKGATE_ variable that overrides nothing is named,
// with the nearest real variable when it looks like a typo; real overrides,
// ZKGATE_CONFIG and other variables are not.
func TestUnknownEnvWarns(t *testing.T) {
	cfg := mustParse(t, `
zookeeper: { servers: ["127.0.0.1:2181"] }
services:
  echo: { discovery: { static: { endpoints: ["127.0.0.1:9001"] } } }
routes:
  - { name: echo, service: echo }
`)
	got := UnknownEnv(cfg, []string{
		"ZKGATE_ZOOKEPER_SERVERS=zk:2181",       // a typo
		"ZKGATE_ZOOKEEPER_SERVERS=zk:2181",      // a key
		"ZKGATE_SERVICES_ECHO_TIMEOUTS_DIAL=1s", // a key of a service the file names
		"ZKGATE_SERVICES_NOPE_TIMEOUTS_DIAL=1s", // a service the file does not name
		"ZKGATE_ROUTES_0_SERVICE=x",
		"ZKGATE_CONFIG=/etc/zkgate.yaml",
		"PATH=/usr/bin",
		"ZKGATE_NOTHING_LIKE_ANY_KEY_AT_ALL=1",
	})
	want := []string{
		"environment variable ZKGATE_NOTHING_LIKE_ANY_KEY_AT_ALL overrides no configuration key and is ignored",
		"environment variable ZKGATE_ROUTES_0_SERVICE overrides no configuration key and is ignored (routes are a list and cannot be overridden from the environment)",
		"environment variable ZKGATE_SERVICES_NOPE_TIMEOUTS_DIAL overrides no configuration key and is ignored (only the services and entry points the file names can be overridden)",
		"environment variable ZKGATE_ZOOKEPER_SERVERS overrides no configuration key and is ignored (did you mean ZKGATE_ZOOKEEPER_SERVERS?)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("UnknownEnv =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWarnings(t *testing.T) {
	empty := mustParse(t, "")
	if got := Warnings(empty, nil); !slices.Equal(got, []string{"routes: none: every proxied request will be answered 404"}) {
		t.Errorf("Warnings(empty file) = %q", got)
	}
	fleet := mustParse(t, "zookeeper: { servers: [\"127.0.0.1:2181\"] }\nfleet: { enabled: true }\n")
	if got := Warnings(fleet, nil); len(got) != 0 {
		t.Errorf("Warnings(fleet file without routes) = %q, want none: its routes come from ZooKeeper", got)
	}
	cfg := mustParse(t, `
zookeeper: { servers: ["127.0.0.1:2181"] }
services:
  echo: { discovery: { static: { endpoints: ["127.0.0.1:9001"] } } }
  Spare: { discovery: { static: { endpoints: ["127.0.0.1:9002"] } } }
  warm: { discovery: { static: { endpoints: ["127.0.0.1:9003"] } }, slow_start: 30s }
routes:
  - { name: echo, service: echo }
  - { name: warm, service: warm }
  - { name: warm-rr, service: warm, balancer: round_robin, match: { path_prefix: /rr } }
`)
	got := Warnings(cfg, []string{"ZKGATE_LOG_LEVL=debug"})
	want := []string{
		"services.spare: no route uses it (it is still watched and checked)",
		"routes[2].balancer: round_robin ignores services.warm.slow_start (only random and weighted_round_robin ramp new endpoints)",
		"environment variable ZKGATE_LOG_LEVL overrides no configuration key and is ignored (did you mean ZKGATE_LOG_LEVEL?)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Warnings =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
