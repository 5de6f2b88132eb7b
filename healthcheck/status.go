package healthcheck

import (
	"fmt"
	"maps"
	"time"
)

// Endpoint states reported by Status. They match the admin API's names.
const (
	// StateHealthy: passes every check and is published.
	StateHealthy = "healthy"
	// StateUnhealthy: failed UnhealthyThreshold active probes in a row.
	StateUnhealthy = "unhealthy"
	// StateEjected: ejected by passive checks until EjectedUntil.
	StateEjected = "ejected"
	// StateDraining: taken out by an operator with Drain.
	StateDraining = "draining"
	// StatePending: new, awaiting its first probe (RequireFirstPass); not
	// published.
	StatePending = "pending"
)

// ServiceHealth is a snapshot of a checker's state, for the admin API and
// metrics.
type ServiceHealth struct {
	// Endpoints are the members, sorted by address.
	Endpoints []EndpointHealth
	// Panicking is true while the panic threshold is crossed and every
	// non-drained member is published.
	Panicking bool
	// PanicActivations counts the times the checker entered panic mode.
	PanicActivations uint64
	// Ejections counts passive ejections.
	Ejections uint64
	// Probes and ProbeFailures count active probes that completed, and those
	// of them that failed.
	Probes        uint64
	ProbeFailures uint64
	// ProbeLoops is the number of probe loops running (one per member while
	// active probing is on).
	ProbeLoops int
	// RemovalGuardUntil is when the removal guard's hold ends; zero when the
	// guard is not holding.
	RemovalGuardUntil time.Time
	// RemovalGuardHeld is the number of members the guard holds.
	RemovalGuardHeld int
	// RemovalGuardEngagements counts the times the guard engaged.
	RemovalGuardEngagements uint64
}

// EndpointHealth is the state of one member.
type EndpointHealth struct {
	Addr   string
	ID     string
	Weight int
	Meta   map[string]string
	// State is one of the State* constants.
	State string
	// Since is when the member entered State.
	Since time.Time
	// LastProbe is when the last active probe finished; zero before the
	// first one.
	LastProbe time.Time
	// LastProbeResult is "ok" or the last probe's error text.
	LastProbeResult string
	// ConsecutiveFailures is the current run of failed active probes.
	ConsecutiveFailures int
	// ConsecutiveSuccesses is the current run of successful active probes.
	ConsecutiveSuccesses int
	// PassiveFailures is the current run of failed requests reported.
	PassiveFailures int
	// EjectedUntil is when the current ejection ends; zero if not ejected.
	EjectedUntil time.Time
	// Ejections counts the passive ejections of this member.
	Ejections int
	// Held is true while the removal guard keeps this member, removed
	// upstream, until ServiceHealth.RemovalGuardUntil.
	Held bool
}

// Status returns the current state of every member. The result belongs to
// the caller.
func (c *LoadBalanceCheckConf) Status() ServiceHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ServiceHealth{
		Endpoints:        make([]EndpointHealth, 0, len(c.order)),
		Panicking:        c.panicking,
		PanicActivations: c.panicActivations,
		Ejections:        c.ejections,
		Probes:           c.probes.Load(),
		ProbeFailures:    c.probeFailures.Load(),
		ProbeLoops:       int(c.loops.Load()),

		RemovalGuardUntil:       c.guardUntil,
		RemovalGuardHeld:        c.heldLocked(),
		RemovalGuardEngagements: c.guardEngagements,
	}
	for _, m := range c.order {
		s.Endpoints = append(s.Endpoints, EndpointHealth{
			Addr:                 m.addr,
			ID:                   m.ep.ID,
			Weight:               m.ep.Weight,
			Meta:                 maps.Clone(m.ep.Meta),
			State:                m.state(),
			Since:                m.since,
			LastProbe:            m.lastProbe,
			LastProbeResult:      m.lastResult,
			ConsecutiveFailures:  m.active.failRun,
			ConsecutiveSuccesses: m.active.okRun,
			PassiveFailures:      int(m.fails.Load()),
			EjectedUntil:         m.ejectedUntil,
			Ejections:            m.ejections,
			Held:                 m.held.Load(),
		})
	}
	return s
}

// Drain takes the member at addr out of the published set, even in panic
// mode, until Undrain: this gateway stops sending it new requests while the
// requests in flight finish. The drain lasts while addr stays a member
// (through weight or metadata changes) and is forgotten when it leaves. It
// returns an error wrapping ErrUnknownEndpoint if addr is not a member.
func (c *LoadBalanceCheckConf) Drain(addr string) error { return c.setDraining(addr, true) }

// Undrain returns a drained member to the published set (if it is healthy).
// It returns an error wrapping ErrUnknownEndpoint if addr is not a member.
func (c *LoadBalanceCheckConf) Undrain(addr string) error { return c.setDraining(addr, false) }

func (c *LoadBalanceCheckConf) setDraining(addr string, draining bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[addr]
	if m == nil {
		op := "undrain"
		if draining {
			op = "drain"
		}
		return fmt.Errorf("healthcheck: %s %q: %w", op, addr, ErrUnknownEndpoint)
	}
	if m.draining == draining {
		return nil
	}
	m.draining = draining
	if draining {
		c.log.WithField("addr", addr).Info("endpoint draining")
	} else {
		c.log.WithField("addr", addr).Info("endpoint undrained")
	}
	c.republishLocked()
	return nil
}
