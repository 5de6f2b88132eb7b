package config

import (
	"errors"

	"github.com/zkgate/zkgate/healthcheck"
)

// CheckerConfig returns the health checker's configuration for h: the one
// mapping from the file's health_check section to healthcheck.Config. The
// error, when not nil, joins one *healthcheck.FieldError per problem,
// named by its key path under health_check ("active.expect_status"): what
// does not parse, and what the checker itself would refuse.
func (h HealthCheck) CheckerConfig() (healthcheck.Config, error) {
	c := healthcheck.Defaults() // what the file cannot set: jitter, concurrency, max ejection
	a := h.Active
	c.Active.Type = a.Type
	if a.Type == CheckNone {
		c.Active.Type = ""
	}
	c.Active.Path = a.Path
	c.Active.Host = a.Host
	var errs []error
	if rs, err := healthcheck.ParseStatusRanges(a.ExpectStatus); err != nil {
		errs = append(errs, &healthcheck.FieldError{Path: "active.expect_status", Err: err})
	} else {
		c.Active.ExpectStatus = rs
	}
	c.Active.Interval = a.Interval
	c.Active.Timeout = a.Timeout
	c.Active.HealthyThreshold = a.HealthyThreshold
	c.Active.UnhealthyThreshold = a.UnhealthyThreshold
	c.Active.RequireFirstPass = a.RequireFirstPass

	p := h.Passive
	c.Passive.MaxFailures = p.MaxFailures
	if p.MaxEjectionPercent == 0 {
		// No member may be ejected: passive checks are off. (The checker
		// reads a zero percentage as its default, 50.)
		c.Passive.MaxFailures = 0
	}
	c.Passive.Ejection = p.Ejection // the checker raises MaxEjection to it when lower
	c.Passive.MaxEjectionPercent = p.MaxEjectionPercent
	c.Passive.ServerErrors = p.ServerErrors
	c.PanicThreshold = h.PanicThreshold
	c.RemovalGuard = healthcheck.RemovalGuardConfig{} // set by Service.CheckerConfig
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// CheckerConfig returns the health checker's configuration for s: its
// health_check section (see HealthCheck.CheckerConfig, whose errors it
// returns) and its removal_guard.
func (s Service) CheckerConfig() (healthcheck.Config, error) {
	c, err := s.HealthCheck.CheckerConfig()
	c.RemovalGuard = healthcheck.RemovalGuardConfig{MaxPercent: s.RemovalGuard.MaxPercent, Hold: s.RemovalGuard.Hold}
	return c, err
}

// validateChecker reports, under key, what the health checker would refuse
// in hc at keys the file's own checks found nothing wrong with, so that a
// file that validates never fails when its checker starts.
func validateChecker(p *problems, key string, hc *HealthCheck) {
	_, err := hc.CheckerConfig()
	for _, e := range leafErrors(err) {
		var fe *healthcheck.FieldError
		if !errors.As(e, &fe) {
			p.add(key, e)
			continue
		}
		if k := key + "." + fe.Path; !p.keys[k] {
			p.add(k, fe.Err)
		}
	}
}

// leafErrors returns the errors joined in err, recursively; nil for nil.
func leafErrors(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		if err == nil {
			return nil
		}
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, leafErrors(e)...)
	}
	return out
}
