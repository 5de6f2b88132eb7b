// Package metrics holds zkgate's Prometheus metrics: request counters and
// latency histograms fed by the proxy on every request, upstream attempt and
// retry counters, configuration reload counters, and gauges read at scrape
// time from the running gateway (endpoints by state, ZooKeeper session,
// membership staleness, panic mode).
//
// Every name starts with zkgate_ and every label value is a configured name
// (route, service) or a small fixed set (method bucket, status class, state):
// never a raw path, address or header, so that the number of series stays
// bounded by the configuration.
//
// The request path allocates nothing: SetRoutes precomputes, for each route,
// the counter and histogram of every (method bucket, status class) pair into
// an immutable table behind an atomic pointer, and ObserveRequest only looks
// the route up and increments.
package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// namespace prefixes every metric name.
const namespace = "zkgate"

// DefaultBuckets are the request duration histogram's upper bounds in
// seconds: fine below 100ms, where a gateway's own overhead shows, and up to
// the default response-header timeout.
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15, 30}

// Options configures New.
type Options struct {
	// State is read at every scrape for the gauges of endpoints, ZooKeeper,
	// membership and panic mode. Nil: those metrics are absent.
	State StateSource
	// Buckets are the request duration histogram's upper bounds in seconds.
	// Default DefaultBuckets.
	Buckets []float64
	// Version is shown as zkgate_build_info{version}. Default "dev".
	Version string
	// Now returns the current time, for the reload timestamp. Default
	// time.Now.
	Now func() time.Time
}

// Metrics owns zkgate's Prometheus registry and the metrics the gateway
// updates. Create it with New; its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	requests *prometheus.CounterVec   // route, service, method, code_class
	refusals *prometheus.CounterVec   // route, reason
	duration *prometheus.HistogramVec // route, service, code_class
	attempts *prometheus.CounterVec   // service, result

	reloadOK, reloadFailed prometheus.Counter
	lastReload             prometheus.Gauge

	setMu sync.Mutex // serializes SetRoutes
	table atomic.Pointer[requestTable]
}

// New returns Metrics with a fresh registry holding zkgate's metrics and the
// Go runtime and process collectors.
func New(opts Options) *Metrics {
	if opts.Buckets == nil {
		opts.Buckets = DefaultBuckets
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		now: opts.Now,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "requests_total",
			Help:      "Requests proxied, by route, service, method (GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS or other) and status class (1xx to 5xx, other).",
		}, []string{"route", "service", "method", "code_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "request_duration_seconds",
			Help:      "Time from receiving a request to the end of its response, retries included, by route, service and status class.",
			Buckets:   opts.Buckets,
		}, []string{"route", "service", "code_class"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "upstream_attempts_total",
			Help:      `Attempts to reach a backend, by service and result: "ok" (the final attempt, status below 500), "error" (the final attempt, 5xx or no response) or "retried" (failed and retried on another endpoint); the retried ones are the retries.`,
		}, []string{"service", "result"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "policy_refusals_total",
			Help:      `Requests a route's policies refused before any backend was contacted, by route and reason: "ip" (ip_allow/ip_deny, 403), "cors" (a preflight refused, 403), "auth" (401) or "rate_limit" (429).`,
		}, []string{"route", "reason"}),
	}
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "config_reloads_total",
		Help:      `Configuration reloads, by result ("success" or "failure": the file did not load or validate and the running configuration was kept).`,
	}, []string{"result"})
	m.reloadOK = reloads.WithLabelValues("success")
	m.reloadFailed = reloads.WithLabelValues("failure")
	m.lastReload = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "config_last_reload_success_timestamp_seconds",
		Help:      "Unix time of the last successful configuration load or reload.",
	})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   namespace,
		Name:        "build_info",
		Help:        "Always 1; the version label names the running zkgate.",
		ConstLabels: prometheus.Labels{"version": opts.Version},
	})
	build.Set(1)

	m.reg.MustRegister(
		m.requests, m.duration, m.attempts, m.refusals,
		reloads, m.lastReload, build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if opts.State != nil {
		m.reg.MustRegister(newStateCollector(opts.State))
	}
	m.table.Store(&requestTable{unmatched: newRouteSeries(RouteLabels{}, nil)})
	return m
}

// Registry returns the registry to serve (it is a prometheus.Gatherer) or
// to register more collectors on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ConfigLoaded records that a configuration was loaded at start: it sets the
// last-success timestamp without counting a reload.
func (m *Metrics) ConfigLoaded() {
	m.lastReload.Set(unixSeconds(m.now()))
}

// ConfigReloaded counts a reload: a success when err is nil (and then sets
// the last-success timestamp), else a failure.
func (m *Metrics) ConfigReloaded(err error) {
	if err != nil {
		m.reloadFailed.Inc()
		return
	}
	m.reloadOK.Inc()
	m.ConfigLoaded()
}

// unixSeconds returns t as fractional seconds since the Unix epoch, without
// the rounding error of float64(t.UnixNano())/1e9.
func unixSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}
