package healthcheck

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Active probe types.
const (
	// ProbeNone disables active probing; "" means the same.
	ProbeNone = "none"
	// ProbeTCP opens a TCP connection and closes it.
	ProbeTCP = "tcp"
	// ProbeHTTP sends GET Path and expects a status in ExpectStatus.
	ProbeHTTP = "http"
)

// Config is the health-check configuration of one service, a plain struct:
// reading it from a file is the configuration loader's business. Its zero
// value checks nothing (no active probes, passive checks off) but still
// applies the panic threshold; Defaults returns the defaults zkgate's
// configuration file documents. A zero field whose zero value is not
// meaningful (Interval, Timeout, thresholds, ...) takes its default in New;
// fields where zero means "off" (Active.Type, Active.Jitter,
// Passive.MaxFailures, PanicThreshold) are used as given, so a configuration
// loader should start from Defaults and overlay the user's settings.
type Config struct {
	// Active configures the probes the checker sends itself.
	Active ActiveConfig
	// Passive configures outlier ejection from request outcomes reported by
	// the proxy.
	Passive PassiveConfig
	// PanicThreshold is the share of healthy members, in percent (0..100),
	// below which the checker stops filtering and publishes every member:
	// sending traffic to possibly broken backends beats sending it nowhere,
	// and a checker that sees most of a service down is more likely wrong
	// than the service. 0, the default, panics only when no member is
	// healthy; 50 panics when fewer than half are. Drained members are
	// neither counted nor published.
	PanicThreshold int
	// RemovalGuard holds mass removals of members for a while instead of
	// publishing them at once.
	RemovalGuard RemovalGuardConfig
}

// RemovalGuardConfig configures the mass-removal guard: a membership change
// that removes more than MaxPercent of the members listed before it is
// held. Held members stay published (subject to the other checks) for
// Hold. During the hold a held member that fails an active probe, or a
// request with a connect failure or timeout, leaves at once; one that comes
// back to the membership is a member again; further removals join the hold
// until its end. When the hold ends, the membership upstream lists is
// published, even if empty.
type RemovalGuardConfig struct {
	// MaxPercent is the largest share of the members, in percent (0..100),
	// that one membership change may remove without being held. 0 turns the
	// guard off (100 too: a change never removes more than every member).
	// Default (in Defaults) 50.
	MaxPercent int
	// Hold is how long removed members are held. Default 30s.
	Hold time.Duration
}

// ActiveConfig configures active probing.
type ActiveConfig struct {
	// Type is "tcp" (connect), "http" (GET Path), or "" / "none" for no
	// active probing: every member counts as healthy until passive checks
	// eject it. Default "" (none).
	Type string
	// Path is the request path (with an optional query) of an http probe.
	// Default "/".
	Path string
	// Host, when set, is sent as the Host header of an http probe instead of
	// the endpoint's address. Default: none.
	Host string
	// ExpectStatus are the HTTP statuses that count as healthy: codes and
	// ranges, "200-299,304" in text form. Default 200-399. Redirects are not
	// followed.
	ExpectStatus StatusRanges
	// Interval is the time between the starts of two probes of one endpoint.
	// Default 2s.
	Interval time.Duration
	// Timeout bounds one probe: connect, and for http the whole exchange.
	// Default 1s.
	Timeout time.Duration
	// HealthyThreshold is the number of consecutive successful probes that
	// bring an unhealthy endpoint back. Default 2.
	HealthyThreshold int
	// UnhealthyThreshold is the number of consecutive failed probes that take
	// a healthy endpoint out. Default 2.
	UnhealthyThreshold int
	// Jitter spreads probes over time: each wait is Interval multiplied by a
	// random factor in [1-Jitter, 1+Jitter]. A fraction in [0, 1); 0 means
	// none. Default (in Defaults) 0.1.
	Jitter float64
	// MaxConcurrent bounds the probes in flight at once for this checker; the
	// others wait their turn. Default 64.
	MaxConcurrent int
	// RequireFirstPass keeps every new member out of the published set until
	// its first probe passes; it is probed as soon as it appears. A member
	// whose first probe fails is unhealthy (it needs HealthyThreshold passing
	// probes, and counts for the panic threshold). This applies to the
	// members of the first membership too: a starting gateway routes to a
	// member one probe after it appears. Ignored without active probing.
	// Default (in Defaults) true.
	RequireFirstPass bool
	// TLS, when set, makes http probes HTTPS with this client
	// configuration (the service's TLS to its endpoints). Default nil.
	TLS *tls.Config
	// H2C makes http probes HTTP/2 with prior knowledge, for endpoints
	// that speak only that (gRPC servers without TLS). Default false.
	H2C bool
	// H2 makes https probes HTTP/2 (ALPN h2 only), for endpoints that
	// speak only that over TLS (gRPC servers with TLS). Default false.
	H2 bool
}

// PassiveConfig configures outlier ejection fed by Report.
type PassiveConfig struct {
	// MaxFailures is the number of consecutive failed requests (see Outcome)
	// that eject an endpoint. 0 turns passive checks off. Default (in
	// Defaults) 3.
	MaxFailures int
	// Ejection is how long the first ejection of an endpoint lasts; each
	// further ejection doubles it, up to MaxEjection. Once an endpoint has
	// stayed in service for MaxEjection, its next ejection lasts Ejection
	// again. Default 10s.
	Ejection time.Duration
	// MaxEjection caps the ejection time. Default 5m, and never below
	// Ejection.
	MaxEjection time.Duration
	// MaxEjectionPercent is the largest share of the service's members, in
	// percent (1..100, rounded down to whole members), that passive checks
	// may hold ejected at once; further ejections are refused. With the
	// default 50, a lone member is never ejected. Default 50.
	MaxEjectionPercent int
	// ServerErrors makes a ServerError outcome (a 5xx answer) count as a
	// failure. Default false: only connect failures and timeouts count.
	ServerErrors bool
}

// StatusRange is an inclusive range of HTTP status codes. Its text form is
// "200-399" or a single code "200".
type StatusRange struct {
	Min int
	Max int
}

// Contains reports whether code lies in r.
func (r StatusRange) Contains(code int) bool { return code >= r.Min && code <= r.Max }

// String returns r in its text form.
func (r StatusRange) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return strconv.Itoa(r.Min) + "-" + strconv.Itoa(r.Max)
}

// ParseStatusRange parses "200-399" or "200". It checks the syntax only;
// Config.Validate checks the bounds.
func ParseStatusRange(s string) (StatusRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	if !isRange {
		hi = lo
	}
	min, err1 := strconv.Atoi(strings.TrimSpace(lo))
	max, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil {
		return StatusRange{}, fmt.Errorf("status range %q: want \"MIN-MAX\" or \"CODE\", e.g. \"200-399\"", s)
	}
	return StatusRange{Min: min, Max: max}, nil
}

// StatusRanges is a set of status codes, as ranges. Its text form is the
// ranges' text forms separated by commas: "200-299,304".
type StatusRanges []StatusRange

// Contains reports whether code lies in one of rs's ranges.
func (rs StatusRanges) Contains(code int) bool {
	for _, r := range rs {
		if r.Contains(code) {
			return true
		}
	}
	return false
}

// String returns rs in its text form.
func (rs StatusRanges) String() string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// ParseStatusRanges parses a comma-separated list of codes and ranges,
// "200-299,304". It checks the syntax only; Config.Validate checks the
// bounds.
func ParseStatusRanges(s string) (StatusRanges, error) {
	var out StatusRanges
	for part := range strings.SplitSeq(s, ",") {
		r, err := ParseStatusRange(part)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Defaults returns the defaults of zkgate's configuration file: no active
// probes (when a Type is set: every 2s with a 1s timeout, rise/fall
// thresholds of 2, 10% jitter and new members routed after their first
// passing probe), passive ejection after 3 consecutive failures, and removals
// of more than half the members held for 30s. The configuration package's
// tests hold its defaults to these.
func Defaults() Config {
	c := Config{
		Active:       ActiveConfig{Jitter: 0.1, RequireFirstPass: true},
		Passive:      PassiveConfig{MaxFailures: 3},
		RemovalGuard: RemovalGuardConfig{MaxPercent: 50},
	}
	return c.withDefaults()
}

// withDefaults returns c with every zero field whose zero value means nothing
// replaced by its default. Fields where zero means "off" are left alone.
func (c Config) withDefaults() Config {
	a := &c.Active
	if a.Type == ProbeNone {
		a.Type = ""
	}
	if a.Path == "" {
		a.Path = "/"
	}
	if len(a.ExpectStatus) == 0 {
		a.ExpectStatus = StatusRanges{{Min: 200, Max: 399}}
	}
	setDuration(&a.Interval, 2*time.Second)
	setDuration(&a.Timeout, time.Second)
	setInt(&a.HealthyThreshold, 2)
	setInt(&a.UnhealthyThreshold, 2)
	setInt(&a.MaxConcurrent, 64)

	p := &c.Passive
	setDuration(&p.Ejection, 10*time.Second)
	setDuration(&p.MaxEjection, 5*time.Minute)
	if p.MaxEjection < p.Ejection && p.Ejection > 0 {
		p.MaxEjection = p.Ejection
	}
	setInt(&p.MaxEjectionPercent, 50)
	setDuration(&c.RemovalGuard.Hold, 30*time.Second)
	return c
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func setInt(n *int, def int) {
	if *n == 0 {
		*n = def
	}
}

// FieldError is one problem of a Config: the field's key path, its Go
// field names in snake case ("active.interval"), and what is wrong.
type FieldError struct {
	Path string
	Err  error
}

// Error returns "path: problem".
func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }

// Unwrap returns the problem.
func (e *FieldError) Unwrap() error { return e.Err }

// Validate reports every problem of c, joined, each a *FieldError. Zero
// fields that take a default are valid.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Err: fmt.Errorf(format, args...)})
	}
	a := c.Active
	switch a.Type {
	case "", ProbeTCP, ProbeHTTP:
	default:
		bad("active.type", "unknown probe type %q (want tcp, http or none)", a.Type)
	}
	if _, err := url.ParseRequestURI(a.Path); err != nil || !strings.HasPrefix(a.Path, "/") {
		bad("active.path", "%q is not an absolute request path like /healthz", a.Path)
	}
	if strings.ContainsAny(a.Host, " \t\r\n/") {
		bad("active.host", "%q is not a host name", a.Host)
	}
	for _, r := range a.ExpectStatus {
		if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
			bad("active.expect_status", "%s is not a status code or range within 100-599", r)
		}
	}
	if a.Interval < 0 {
		bad("active.interval", "%s is negative", a.Interval)
	}
	if a.Timeout < 0 {
		bad("active.timeout", "%s is negative", a.Timeout)
	}
	if a.HealthyThreshold < 1 {
		bad("active.healthy_threshold", "%d is below 1", a.HealthyThreshold)
	}
	if a.UnhealthyThreshold < 1 {
		bad("active.unhealthy_threshold", "%d is below 1", a.UnhealthyThreshold)
	}
	if !(a.Jitter >= 0 && a.Jitter < 1) {
		bad("active.jitter", "%v is not a fraction in [0, 1)", a.Jitter)
	}
	if a.MaxConcurrent < 1 {
		bad("active.max_concurrent", "%d is below 1", a.MaxConcurrent)
	}

	p := c.Passive
	if p.MaxFailures < 0 {
		bad("passive.max_failures", "%d is negative (0 turns passive checks off)", p.MaxFailures)
	}
	if p.Ejection < 0 {
		bad("passive.ejection", "%s is negative", p.Ejection)
	}
	if p.MaxEjection < 0 {
		bad("passive.max_ejection", "%s is negative", p.MaxEjection)
	}
	if p.MaxEjectionPercent < 1 || p.MaxEjectionPercent > 100 {
		bad("passive.max_ejection_percent", "%d is not a percentage in 1..100", p.MaxEjectionPercent)
	}
	if c.PanicThreshold < 0 || c.PanicThreshold > 100 {
		bad("panic_threshold", "%d is not a percentage in 0..100", c.PanicThreshold)
	}
	g := c.RemovalGuard
	if g.MaxPercent < 0 || g.MaxPercent > 100 {
		bad("removal_guard.max_percent", "%d is not a percentage in 0..100 (0 turns the guard off)", g.MaxPercent)
	}
	if g.Hold < 0 {
		bad("removal_guard.hold", "%s is negative", g.Hold)
	}
	return errors.Join(errs...)
}
