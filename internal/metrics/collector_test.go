package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/zkgate/zkgate/discovery"
)

type fakeState struct{ state State }

func (f fakeState) MetricsState() State { return f.state }

func sampleState() State {
	return State{
		ZooKeeper: ZooKeeperState{State: "connected", Reconnects: 2, Expirations: 1},
		Services: []ServiceState{
			{
				Name:        "echo",
				Endpoints:   map[string]int{"healthy": 3, "unhealthy": 1, "ejected": 1},
				LastSync:    time.Unix(1700000000, 250_000_000),
				WatchEvents: 12, MalformedNodes: 1, PanicActivations: 2,
				Ejections: 4, Probes: 100, ProbeFailures: 7,
				RetryBudgetExhausted: 9,
			},
			{
				Name:        "users",
				Endpoints:   map[string]int{"healthy": 0, "draining": 2, "starting": 1},
				Stale:       true,
				Panicking:   true,
				Seeded:      true,
				SnapshotAge: 90*time.Second + 500*time.Millisecond,

				RemovalGuardActive: true, RemovalGuardEngagements: 3,
			},
		},
		HasAccessLog:        true,
		AccessLogDropped:    5,
		HasSnapshot:         true,
		SnapshotWrites:      3,
		SnapshotWriteErrors: 1,
		Connections: []EntryPointConnections{
			{EntryPoint: "web", States: map[string]int{"serving": 2, "waiting": 3, "parked": 8000, "tunnel": 40}},
		},
		TLS: []EntryPointTLS{{
			EntryPoint: "websecure",
			Certificates: []Certificate{
				{CertFile: "/etc/tls/a.crt", Subject: "CN=a.example", NotAfter: time.Unix(1800000000, 0)},
				{CertFile: "/etc/tls/b.crt", Subject: "CN=*.example", NotAfter: time.Unix(1790000000, 0)},
			},
			Reloads: 4, ReloadFailures: 1,
		}},
		Fleet: &FleetState{ConfigVersion: 4294967342, ApplyFailures: 2, Stale: true},
	}
}

func TestStateCollector(t *testing.T) {
	m := New(Options{State: fakeState{state: sampleState()}})
	want := `
# HELP zkgate_endpoints Endpoints of a service by state (healthy, unhealthy, ejected, draining).
# TYPE zkgate_endpoints gauge
zkgate_endpoints{service="echo",state="draining"} 0
zkgate_endpoints{service="echo",state="ejected"} 1
zkgate_endpoints{service="echo",state="healthy"} 3
zkgate_endpoints{service="echo",state="unhealthy"} 1
zkgate_endpoints{service="users",state="draining"} 2
zkgate_endpoints{service="users",state="ejected"} 0
zkgate_endpoints{service="users",state="healthy"} 0
zkgate_endpoints{service="users",state="starting"} 1
zkgate_endpoints{service="users",state="unhealthy"} 0
# HELP zkgate_zookeeper_session_state 1 for the ZooKeeper session's current state, 0 for the others; connected is the only one with a usable session.
# TYPE zkgate_zookeeper_session_state gauge
zkgate_zookeeper_session_state{state="closed"} 0
zkgate_zookeeper_session_state{state="connected"} 1
zkgate_zookeeper_session_state{state="connecting"} 0
zkgate_zookeeper_session_state{state="expired"} 0
# HELP zkgate_zookeeper_reconnects_total New ZooKeeper connections after a disconnection.
# TYPE zkgate_zookeeper_reconnects_total counter
zkgate_zookeeper_reconnects_total 2
# HELP zkgate_zookeeper_session_expirations_total ZooKeeper session expirations.
# TYPE zkgate_zookeeper_session_expirations_total counter
zkgate_zookeeper_session_expirations_total 1
# HELP zkgate_zookeeper_watch_events_total ZooKeeper watch events received, by service.
# TYPE zkgate_zookeeper_watch_events_total counter
zkgate_zookeeper_watch_events_total{service="echo"} 12
zkgate_zookeeper_watch_events_total{service="users"} 0
# HELP zkgate_membership_stale 1 while a service's membership cannot be refreshed from ZooKeeper and the last known list is served.
# TYPE zkgate_membership_stale gauge
zkgate_membership_stale{service="echo"} 0
zkgate_membership_stale{service="users"} 1
# HELP zkgate_membership_last_sync_timestamp_seconds Unix time a service's membership was last read from ZooKeeper.
# TYPE zkgate_membership_last_sync_timestamp_seconds gauge
zkgate_membership_last_sync_timestamp_seconds{service="echo"} 1.70000000025e+09
# HELP zkgate_membership_snapshot_age_seconds While a service serves the members of the membership snapshot (started without a first read of ZooKeeper): seconds since they were read from ZooKeeper. Absent otherwise.
# TYPE zkgate_membership_snapshot_age_seconds gauge
zkgate_membership_snapshot_age_seconds{service="users"} 90.5
# HELP zkgate_discovery_malformed_nodes_total ZooKeeper nodes skipped because their data did not decode, by service.
# TYPE zkgate_discovery_malformed_nodes_total counter
zkgate_discovery_malformed_nodes_total{service="echo"} 1
zkgate_discovery_malformed_nodes_total{service="users"} 0
# HELP zkgate_panic_mode 1 while a service is in panic mode: too few healthy endpoints, so traffic goes to all of them.
# TYPE zkgate_panic_mode gauge
zkgate_panic_mode{service="echo"} 0
zkgate_panic_mode{service="users"} 1
# HELP zkgate_panic_activations_total Times a service entered panic mode.
# TYPE zkgate_panic_activations_total counter
zkgate_panic_activations_total{service="echo"} 2
zkgate_panic_activations_total{service="users"} 0
# HELP zkgate_passive_ejections_total Endpoints ejected by passive health checks (outlier detection), by service.
# TYPE zkgate_passive_ejections_total counter
zkgate_passive_ejections_total{service="echo"} 4
zkgate_passive_ejections_total{service="users"} 0
# HELP zkgate_health_probes_total Active health probes completed, by service.
# TYPE zkgate_health_probes_total counter
zkgate_health_probes_total{service="echo"} 100
zkgate_health_probes_total{service="users"} 0
# HELP zkgate_health_probe_failures_total Active health probes that failed, by service.
# TYPE zkgate_health_probe_failures_total counter
zkgate_health_probe_failures_total{service="echo"} 7
zkgate_health_probe_failures_total{service="users"} 0
# HELP zkgate_retry_budget_exhausted_total Retries not made because the service's retry budget was spent (the request ended with its last attempt's answer), by service.
# TYPE zkgate_retry_budget_exhausted_total counter
zkgate_retry_budget_exhausted_total{service="echo"} 9
zkgate_retry_budget_exhausted_total{service="users"} 0
# HELP zkgate_access_log_dropped_total Access log lines dropped because the log writer fell behind.
# TYPE zkgate_access_log_dropped_total counter
zkgate_access_log_dropped_total 5
# HELP zkgate_client_connections Client connections of an entry point by what they hold: serving (a goroutine serves a request), waiting (between requests with a goroutine and no buffer), parked (between requests in the poller: no goroutine), tunnel (WebSocket tunnels relayed by the poller), nethttp (held by net/http's server).
# TYPE zkgate_client_connections gauge
zkgate_client_connections{entry_point="web",state="nethttp"} 0
zkgate_client_connections{entry_point="web",state="parked"} 8000
zkgate_client_connections{entry_point="web",state="serving"} 2
zkgate_client_connections{entry_point="web",state="tunnel"} 40
zkgate_client_connections{entry_point="web",state="waiting"} 3
# HELP zkgate_membership_snapshot_writes_total Membership snapshot files written.
# TYPE zkgate_membership_snapshot_writes_total counter
zkgate_membership_snapshot_writes_total 3
# HELP zkgate_membership_snapshot_write_errors_total Membership snapshot writes that failed (each retried).
# TYPE zkgate_membership_snapshot_write_errors_total counter
zkgate_membership_snapshot_write_errors_total 1
# HELP zkgate_removal_guard_active 1 while a service's removal guard holds members that a mass removal took out of its membership.
# TYPE zkgate_removal_guard_active gauge
zkgate_removal_guard_active{service="echo"} 0
zkgate_removal_guard_active{service="users"} 1
# HELP zkgate_removal_guard_engagements_total Times a service's removal guard engaged: one membership change removed more than removal_guard.max_percent of the members.
# TYPE zkgate_removal_guard_engagements_total counter
zkgate_removal_guard_engagements_total{service="echo"} 0
zkgate_removal_guard_engagements_total{service="users"} 3
# HELP zkgate_tls_certificate_expiry_timestamp_seconds Unix time a served certificate expires (its NotAfter), by entry point, certificate file and subject; zkgate warns 14 days ahead.
# TYPE zkgate_tls_certificate_expiry_timestamp_seconds gauge
zkgate_tls_certificate_expiry_timestamp_seconds{cert_file="/etc/tls/a.crt",entry_point="websecure",subject="CN=a.example"} 1.8e+09
zkgate_tls_certificate_expiry_timestamp_seconds{cert_file="/etc/tls/b.crt",entry_point="websecure",subject="CN=*.example"} 1.79e+09
# HELP zkgate_tls_certificate_reloads_total Reloads of a TLS entry point's certificate files that took effect.
# TYPE zkgate_tls_certificate_reloads_total counter
zkgate_tls_certificate_reloads_total{entry_point="websecure"} 4
# HELP zkgate_tls_certificate_reload_failures_total Reloads of a TLS entry point's certificate files refused because a pair did not load (the served ones stayed).
# TYPE zkgate_tls_certificate_reload_failures_total counter
zkgate_tls_certificate_reload_failures_total{entry_point="websecure"} 1
# HELP zkgate_fleet_config_version Fleet mode: the configuration version running (the ZooKeeper zxid that made it; 0 before the first). Gateways of one fleet running different values have not all applied the latest version.
# TYPE zkgate_fleet_config_version gauge
zkgate_fleet_config_version 4.294967342e+09
# HELP zkgate_fleet_apply_failures_total Fleet mode: configuration versions refused (a znode that did not validate or could not be read); the running version stayed.
# TYPE zkgate_fleet_apply_failures_total counter
zkgate_fleet_apply_failures_total 2
# HELP zkgate_fleet_stale Fleet mode: 1 while ZooKeeper cannot be read and the running configuration version may be out of date.
# TYPE zkgate_fleet_stale gauge
zkgate_fleet_stale 1
`
	names := []string{
		"zkgate_endpoints", "zkgate_zookeeper_session_state", "zkgate_zookeeper_reconnects_total",
		"zkgate_zookeeper_session_expirations_total", "zkgate_zookeeper_watch_events_total",
		"zkgate_membership_stale", "zkgate_membership_last_sync_timestamp_seconds",
		"zkgate_discovery_malformed_nodes_total", "zkgate_panic_mode", "zkgate_panic_activations_total",
		"zkgate_passive_ejections_total", "zkgate_health_probes_total", "zkgate_health_probe_failures_total",
		"zkgate_access_log_dropped_total", "zkgate_membership_snapshot_age_seconds",
		"zkgate_membership_snapshot_writes_total", "zkgate_membership_snapshot_write_errors_total",
		"zkgate_removal_guard_active", "zkgate_removal_guard_engagements_total",
		"zkgate_retry_budget_exhausted_total", "zkgate_client_connections",
		"zkgate_tls_certificate_expiry_timestamp_seconds", "zkgate_tls_certificate_reloads_total",
		"zkgate_tls_certificate_reload_failures_total",
		"zkgate_fleet_config_version", "zkgate_fleet_apply_failures_total", "zkgate_fleet_stale",
	}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// TestStateCollectorIsConsistent gathers through a pedantic registry, which
// checks every collected metric against the collector's descriptions.
func TestStateCollectorIsConsistent(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newStateCollector(fakeState{state: sampleState()}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("pedantic gather: %v", err)
	}
	if len(families) != 27 {
		t.Errorf("gathered %d metric families, want 27", len(families))
	}
}

func TestStateCollectorEdgeCases(t *testing.T) {
	st := State{
		ZooKeeper: ZooKeeperState{State: "not_configured"}, // a state the list does not know
		Services: []ServiceState{
			{Name: "echo", Endpoints: map[string]int{"healthy": 1}},
			{Name: "echo", Endpoints: map[string]int{"healthy": 9}}, // duplicate: would fail the scrape
		},
	}
	m := New(Options{State: StateSourceFunc(func() State { return st })})
	text := exposition(t, m) // fails on a duplicate series
	for _, want := range []string{
		`zkgate_zookeeper_session_state{state="not_configured"} 1`,
		`zkgate_zookeeper_session_state{state="connected"} 0`,
		`zkgate_endpoints{service="echo",state="healthy"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if strings.Contains(text, "zkgate_access_log_dropped_total") {
		t.Errorf("access_log_dropped_total shown without an access log")
	}
	if strings.Contains(text, "zkgate_membership_snapshot") {
		t.Errorf("membership snapshot metrics shown without a snapshot file or a seeded service")
	}
	if strings.Contains(text, "zkgate_fleet_") {
		t.Errorf("fleet metrics shown with fleet mode off")
	}

	st = State{}
	text = exposition(t, m)
	if !strings.Contains(text, `zkgate_zookeeper_session_state{state="unknown"} 1`) {
		t.Errorf("an empty session state is not shown as unknown")
	}
	if strings.Contains(text, "zkgate_endpoints{") {
		t.Errorf("endpoints shown without services")
	}
}

func TestPropagationHistogram(t *testing.T) {
	st := sampleState()
	counts := make([]uint64, len(discovery.PropagationBuckets)+1)
	counts[0], counts[2], counts[len(counts)-1] = 1, 2, 1 // ≤1ms, (2.5ms,5ms], above 60s
	st.Services[0].Propagation = discovery.Propagation{
		Buckets: discovery.PropagationBuckets, Counts: counts, Count: 4, Sum: 90.5, Last: 3 * time.Millisecond,
	}
	m := New(Options{State: fakeState{state: st}})
	want := `
# HELP zkgate_discovery_propagation_seconds Time from a member's znode change (its mtime; its ctime for a new node) to the publication of the changed list to the balancers, by service. Removals are not measured; negative values from clock skew count as 0.
# TYPE zkgate_discovery_propagation_seconds histogram
zkgate_discovery_propagation_seconds_bucket{service="echo",le="0.001"} 1
zkgate_discovery_propagation_seconds_bucket{service="echo",le="0.0025"} 1
zkgate_discovery_propagation_seconds_bucket{service="echo",le="0.005"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="0.01"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="0.025"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="0.05"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="0.1"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="0.25"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="0.5"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="1"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="2.5"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="5"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="10"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="30"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="60"} 3
zkgate_discovery_propagation_seconds_bucket{service="echo",le="+Inf"} 4
zkgate_discovery_propagation_seconds_sum{service="echo"} 90.5
zkgate_discovery_propagation_seconds_count{service="echo"} 4
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "zkgate_discovery_propagation_seconds"); err != nil {
		t.Error(err)
	}
}
