package metrics

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zkgate/zkgate/discovery"
)

// StateSource gives the gateway's state at scrape time. The composition
// root implements it over discovery, health checking and the proxy.
// MetricsState is called once per scrape, from the scraping goroutine; it
// must be safe for concurrent use and quick.
type StateSource interface {
	MetricsState() State
}

// StateSourceFunc adapts a function to StateSource, for wiring where the
// parts exist only after the metrics.
type StateSourceFunc func() State

// MetricsState implements StateSource.
func (f StateSourceFunc) MetricsState() State { return f() }

// State is the gateway's state as the scrape-time metrics show it.
type State struct {
	ZooKeeper ZooKeeperState
	Services  []ServiceState
	// AccessLogDropped counts access log lines dropped because the writer
	// fell behind; shown only when HasAccessLog is true.
	AccessLogDropped uint64
	HasAccessLog     bool
	// SnapshotWrites and SnapshotWriteErrors count the membership
	// snapshot's writes and failed writes; shown only when HasSnapshot is
	// true (zookeeper.snapshot_file is set).
	SnapshotWrites, SnapshotWriteErrors uint64
	HasSnapshot                         bool
	// Connections are the client connections of each entry point by what
	// they hold (proxy.ConnStats).
	Connections []EntryPointConnections
	// TLS are the certificate stores of the TLS entry points.
	TLS []EntryPointTLS
	// Fleet is fleet mode's state; nil (its metrics absent) when fleet
	// mode is off.
	Fleet *FleetState
}

// FleetState is fleet mode's configuration version and its refusals.
type FleetState struct {
	// ConfigVersion is the configuration version running (the zxid that
	// made it; 0 before the first).
	ConfigVersion int64
	// ApplyFailures counts the configuration versions refused (a znode
	// that did not validate or could not be read): the running one stayed.
	ApplyFailures uint64
	// Stale is true while ZooKeeper cannot be read and the running
	// version may be out of date.
	Stale bool
}

// EntryPointTLS is one TLS entry point's certificates and their reloads.
type EntryPointTLS struct {
	EntryPoint string
	// Certificates are the pairs served now.
	Certificates []Certificate
	// Reloads and ReloadFailures count the reloads of the files, done and
	// refused (a pair that did not load: the old ones stayed).
	Reloads, ReloadFailures uint64
}

// Certificate is one served certificate.
type Certificate struct {
	CertFile string
	Subject  string
	NotAfter time.Time
}

// EntryPointConnections is one entry point's client connections by state:
// "serving", "waiting", "parked", "tunnel" and "nethttp" (see
// proxy.ConnStats).
type EntryPointConnections struct {
	EntryPoint string
	States     map[string]int
}

// connectionStates are always exported for each entry point.
var connectionStates = []string{"serving", "waiting", "parked", "tunnel", "nethttp"}

// ZooKeeperState is the ZooKeeper session's state.
type ZooKeeperState struct {
	// State is the session state as the admin API shows it: one of
	// discovery.SessionStateNames ("connecting", "connected", "expired",
	// "closed"), or "not_configured" without ZooKeeper.
	State string
	// Reconnects counts new connections after a disconnection.
	Reconnects uint64
	// Expirations counts session expirations.
	Expirations uint64
}

// ServiceState is one service's discovery and health state.
type ServiceState struct {
	Name string
	// Endpoints counts members by state ("healthy", "unhealthy", "ejected",
	// "draining", ...).
	Endpoints map[string]int
	// Stale is true while the membership cannot be refreshed.
	Stale bool
	// LastSync is when the membership was last read (zero: never).
	LastSync time.Time
	// Seeded is true while the members served are a membership
	// snapshot's, read from ZooKeeper SnapshotAge ago.
	Seeded      bool
	SnapshotAge time.Duration
	// WatchEvents counts ZooKeeper watch events received for the service.
	WatchEvents uint64
	// MalformedNodes counts nodes skipped because their data did not decode.
	MalformedNodes uint64
	// Propagation is the lag from znode changes to their publication (see
	// discovery.Propagation); exported when Buckets is set (ZooKeeper
	// services).
	Propagation discovery.Propagation
	// Panicking is true while the panic threshold is crossed.
	Panicking bool
	// PanicActivations counts the times the service entered panic mode.
	PanicActivations uint64
	// Ejections counts passive (outlier) ejections.
	Ejections uint64
	// Probes and ProbeFailures count active health probes and the failed
	// ones.
	Probes, ProbeFailures uint64
	// RemovalGuardActive is true while the removal guard holds members
	// removed by a mass removal.
	RemovalGuardActive bool
	// RemovalGuardEngagements counts the times the removal guard engaged.
	RemovalGuardEngagements uint64
	// RetryBudgetExhausted counts the retries the service's retry budget
	// refused (0 without a budget).
	RetryBudgetExhausted uint64
}

// endpointStates are always exported, at zero when no endpoint is in them,
// so that alerts on them see a series.
var endpointStates = []string{"healthy", "unhealthy", "ejected", "draining"}

// sessionStates are the ZooKeeper session states always exported: 1 for the
// current one, 0 for the others.
var sessionStates = discovery.SessionStateNames()

// stateCollector exports a StateSource's State at scrape time.
type stateCollector struct {
	src StateSource

	endpoints, sessionState, reconnects, expirations           *prometheus.Desc
	watchEvents, stale, lastSync, malformed, panicMode, panics *prometheus.Desc
	ejections, probes, probeFailures, accessLogDropped         *prometheus.Desc
	snapshotAge, snapshotWrites, snapshotWriteErrors           *prometheus.Desc
	guardActive, guardEngagements                              *prometheus.Desc
	propagation                                                *prometheus.Desc
	budgetExhausted                                            *prometheus.Desc
	connections                                                *prometheus.Desc
	certExpiry, certReloads, certReloadFailures                *prometheus.Desc
	fleetVersion, fleetFailures, fleetStale                    *prometheus.Desc
}

func newStateCollector(src StateSource) *stateCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &stateCollector{
		src:                 src,
		endpoints:           desc("endpoints", "Endpoints of a service by state (healthy, unhealthy, ejected, draining).", "service", "state"),
		sessionState:        desc("zookeeper_session_state", "1 for the ZooKeeper session's current state, 0 for the others; connected is the only one with a usable session.", "state"),
		reconnects:          desc("zookeeper_reconnects_total", "New ZooKeeper connections after a disconnection."),
		expirations:         desc("zookeeper_session_expirations_total", "ZooKeeper session expirations."),
		watchEvents:         desc("zookeeper_watch_events_total", "ZooKeeper watch events received, by service.", "service"),
		stale:               desc("membership_stale", "1 while a service's membership cannot be refreshed from ZooKeeper and the last known list is served.", "service"),
		lastSync:            desc("membership_last_sync_timestamp_seconds", "Unix time a service's membership was last read from ZooKeeper.", "service"),
		malformed:           desc("discovery_malformed_nodes_total", "ZooKeeper nodes skipped because their data did not decode, by service.", "service"),
		panicMode:           desc("panic_mode", "1 while a service is in panic mode: too few healthy endpoints, so traffic goes to all of them.", "service"),
		panics:              desc("panic_activations_total", "Times a service entered panic mode.", "service"),
		ejections:           desc("passive_ejections_total", "Endpoints ejected by passive health checks (outlier detection), by service.", "service"),
		probes:              desc("health_probes_total", "Active health probes completed, by service.", "service"),
		probeFailures:       desc("health_probe_failures_total", "Active health probes that failed, by service.", "service"),
		accessLogDropped:    desc("access_log_dropped_total", "Access log lines dropped because the log writer fell behind."),
		snapshotAge:         desc("membership_snapshot_age_seconds", "While a service serves the members of the membership snapshot (started without a first read of ZooKeeper): seconds since they were read from ZooKeeper. Absent otherwise.", "service"),
		snapshotWrites:      desc("membership_snapshot_writes_total", "Membership snapshot files written."),
		snapshotWriteErrors: desc("membership_snapshot_write_errors_total", "Membership snapshot writes that failed (each retried)."),
		guardActive:         desc("removal_guard_active", "1 while a service's removal guard holds members that a mass removal took out of its membership.", "service"),
		guardEngagements:    desc("removal_guard_engagements_total", "Times a service's removal guard engaged: one membership change removed more than removal_guard.max_percent of the members.", "service"),
		propagation:         desc("discovery_propagation_seconds", "Time from a member's znode change (its mtime; its ctime for a new node) to the publication of the changed list to the balancers, by service. Removals are not measured; negative values from clock skew count as 0.", "service"),
		connections:         desc("client_connections", "Client connections of an entry point by what they hold: serving (a goroutine serves a request), waiting (between requests with a goroutine and no buffer), parked (between requests in the poller: no goroutine), tunnel (WebSocket tunnels relayed by the poller), nethttp (held by net/http's server).", "entry_point", "state"),
		certExpiry:          desc("tls_certificate_expiry_timestamp_seconds", "Unix time a served certificate expires (its NotAfter), by entry point, certificate file and subject; zkgate warns 14 days ahead.", "entry_point", "cert_file", "subject"),
		certReloads:         desc("tls_certificate_reloads_total", "Reloads of a TLS entry point's certificate files that took effect.", "entry_point"),
		certReloadFailures:  desc("tls_certificate_reload_failures_total", "Reloads of a TLS entry point's certificate files refused because a pair did not load (the served ones stayed).", "entry_point"),
		budgetExhausted:     desc("retry_budget_exhausted_total", "Retries not made because the service's retry budget was spent (the request ended with its last attempt's answer), by service.", "service"),
		fleetVersion:        desc("fleet_config_version", "Fleet mode: the configuration version running (the ZooKeeper zxid that made it; 0 before the first). Gateways of one fleet running different values have not all applied the latest version."),
		fleetFailures:       desc("fleet_apply_failures_total", "Fleet mode: configuration versions refused (a znode that did not validate or could not be read); the running version stayed."),
		fleetStale:          desc("fleet_stale", "Fleet mode: 1 while ZooKeeper cannot be read and the running configuration version may be out of date."),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.endpoints, c.sessionState, c.reconnects, c.expirations, c.watchEvents, c.stale, c.lastSync,
		c.malformed, c.panicMode, c.panics, c.ejections, c.probes, c.probeFailures, c.accessLogDropped,
		c.snapshotAge, c.snapshotWrites, c.snapshotWriteErrors,
		c.guardActive, c.guardEngagements,
		c.propagation,
		c.budgetExhausted,
		c.connections,
		c.certExpiry, c.certReloads, c.certReloadFailures,
		c.fleetVersion, c.fleetFailures, c.fleetStale,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.MetricsState()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	zkState := st.ZooKeeper.State
	if zkState == "" {
		zkState = "unknown"
	}
	for _, s := range sessionStates {
		gauge(c.sessionState, boolValue(s == zkState), s)
	}
	if !slices.Contains(sessionStates, zkState) {
		gauge(c.sessionState, 1, zkState)
	}
	counter(c.reconnects, st.ZooKeeper.Reconnects)
	counter(c.expirations, st.ZooKeeper.Expirations)

	seen := make(map[string]bool, len(st.Services))
	for _, s := range st.Services {
		if seen[s.Name] { // a duplicate would make the whole scrape fail
			continue
		}
		seen[s.Name] = true
		for _, state := range endpointStates {
			gauge(c.endpoints, float64(s.Endpoints[state]), s.Name, state)
		}
		for state, n := range s.Endpoints {
			if !slices.Contains(endpointStates, state) {
				gauge(c.endpoints, float64(n), s.Name, state)
			}
		}
		counter(c.watchEvents, s.WatchEvents, s.Name)
		gauge(c.stale, boolValue(s.Stale), s.Name)
		if !s.LastSync.IsZero() {
			gauge(c.lastSync, unixSeconds(s.LastSync), s.Name)
		}
		if s.Seeded {
			gauge(c.snapshotAge, max(s.SnapshotAge.Seconds(), 0), s.Name)
		}
		counter(c.malformed, s.MalformedNodes, s.Name)
		if p := s.Propagation; p.Buckets != nil {
			ch <- prometheus.MustNewConstHistogram(c.propagation, p.Count, p.Sum, p.Cumulative(), s.Name)
		}
		gauge(c.panicMode, boolValue(s.Panicking), s.Name)
		counter(c.panics, s.PanicActivations, s.Name)
		counter(c.ejections, s.Ejections, s.Name)
		counter(c.probes, s.Probes, s.Name)
		counter(c.probeFailures, s.ProbeFailures, s.Name)
		gauge(c.guardActive, boolValue(s.RemovalGuardActive), s.Name)
		counter(c.guardEngagements, s.RemovalGuardEngagements, s.Name)
		counter(c.budgetExhausted, s.RetryBudgetExhausted, s.Name)
	}
	for _, ep := range st.Connections {
		for _, state := range connectionStates {
			gauge(c.connections, float64(ep.States[state]), ep.EntryPoint, state)
		}
	}
	for _, ep := range st.TLS {
		seenCert := map[string]bool{}
		for _, crt := range ep.Certificates {
			if k := crt.CertFile + "\x00" + crt.Subject; !seenCert[k] {
				seenCert[k] = true
				gauge(c.certExpiry, unixSeconds(crt.NotAfter), ep.EntryPoint, crt.CertFile, crt.Subject)
			}
		}
		counter(c.certReloads, ep.Reloads, ep.EntryPoint)
		counter(c.certReloadFailures, ep.ReloadFailures, ep.EntryPoint)
	}
	if st.HasAccessLog {
		counter(c.accessLogDropped, st.AccessLogDropped)
	}
	if st.HasSnapshot {
		counter(c.snapshotWrites, st.SnapshotWrites)
		counter(c.snapshotWriteErrors, st.SnapshotWriteErrors)
	}
	if f := st.Fleet; f != nil {
		gauge(c.fleetVersion, float64(f.ConfigVersion))
		counter(c.fleetFailures, f.ApplyFailures)
		gauge(c.fleetStale, boolValue(f.Stale))
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
