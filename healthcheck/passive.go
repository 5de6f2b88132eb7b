package healthcheck

import (
	"time"

	"github.com/sirupsen/logrus"
	"github.com/zkgate/zkgate/internal/logging"
)

// Outcome is the result of one proxied request, as the proxy reports it to
// passive health checks.
type Outcome uint8

const (
	// Success is any answer that is not a counted failure. It resets the
	// endpoint's run of consecutive failures.
	Success Outcome = iota
	// ConnectFailure means the connection could not be made (refused,
	// reset before anything was sent, unreachable). Always a failure.
	ConnectFailure
	// Timeout means the endpoint did not answer in time. Always a failure.
	Timeout
	// ServerError is a 5xx answer. It is a failure when
	// Passive.ServerErrors is set and ignored (neither failure nor success)
	// otherwise.
	ServerError
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case ConnectFailure:
		return "connect_failure"
	case Timeout:
		return "timeout"
	case ServerError:
		return "server_error"
	}
	return "unknown"
}

// Report records the outcome of one request to addr. It is called on the
// proxy's hot path: it takes no lock and allocates nothing, except when the
// report completes a run of Passive.MaxFailures consecutive failures, which
// ejects the endpoint (if the ejection cap allows) and republishes, or
// reports a connect failure or timeout of a member the removal guard holds,
// which then leaves at once (even with passive checks off). Reports
// for unknown addresses, for ejected endpoints (requests still in flight when
// it was ejected) or with passive checks off are ignored. Safe for concurrent
// use.
func (c *LoadBalanceCheckConf) Report(addr string, o Outcome) {
	if c.maxFailures <= 0 && !c.guarding {
		return
	}
	m := (*c.snap.Load())[addr]
	if m == nil || m.ejected.Load() {
		return
	}
	if (o == ConnectFailure || o == Timeout) && m.held.Load() {
		c.failHeld(m, o)
		return
	}
	if c.maxFailures <= 0 {
		return
	}
	switch o {
	case Success:
		// Read before writing so that a healthy endpoint's counter stays
		// shared in every core's cache instead of bouncing between them.
		if m.fails.Load() != 0 {
			m.fails.Store(0)
		}
		return
	case ServerError:
		if !c.serverErrors {
			return
		}
	case ConnectFailure, Timeout:
	default:
		return
	}
	n := m.fails.Add(1)
	// Exactly one of the reporters that pushed the count to the threshold
	// wins the swap back to zero and tries the ejection; whether or not the
	// cap allows it, the next attempt needs another full run of failures,
	// which bounds how often the lock is taken.
	if n >= c.maxFailures && m.fails.CompareAndSwap(n, 0) {
		c.eject(m, n)
	}
}

// failHeld makes held member m leave at once: a request to it failed as a
// request to a backend that is gone does.
func (c *LoadBalanceCheckConf) failHeld(m *member, o Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || m.gone || !m.held.Load() {
		return
	}
	c.log.WithFields(logrus.Fields{"addr": m.addr, "outcome": o.String()}).Warn("held endpoint failed a request: removed at once")
	c.dropHeldLocked(m)
}

// eject takes m out of the published set for its next ejection time, unless
// it is already out or the ejection cap is reached.
func (c *LoadBalanceCheckConf) eject(m *member, failures int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || m.gone || !m.healthy() {
		return
	}
	p := c.cfg.Passive
	ejected := 0
	for _, o := range c.order {
		if o.ejected.Load() {
			ejected++
		}
	}
	if (ejected+1)*100 > p.MaxEjectionPercent*len(c.order) {
		c.log.WithFields(logrus.Fields{"addr": m.addr, "ejected": ejected, "members": len(c.order)}).
			Debug("ejection refused: max_ejection_percent reached")
		return
	}
	now := c.clock.Now()
	if !m.restoredAt.IsZero() && now.Sub(m.restoredAt) >= p.MaxEjection {
		m.level = 0
	}
	m.level++
	d := ejectionTime(p.Ejection, p.MaxEjection, m.level)
	m.ejectedUntil = now.Add(d)
	m.ejections++
	c.ejections++
	m.ejected.Store(true)
	if c.onEject != nil {
		c.onEject(m.addr)
	}
	c.log.WithFields(logrus.Fields{
		"addr": m.addr, "failures": failures, "ejection": logging.Duration(d), "ejections": m.ejections,
	}).Warn("endpoint ejected")
	c.republishLocked()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// ejectionTime returns base × 2^(level-1), capped at max.
func ejectionTime(base, max time.Duration, level int) time.Duration {
	d := base
	for i := 1; i < level && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// expiryLoop restores ejected members when their ejection expires, until the
// checker closes.
func (c *LoadBalanceCheckConf) expiryLoop() {
	defer c.wg.Done()
	c.deadlineLoop(c.safeRestoreExpired, c.wake)
}

// deadlineLoop runs step, then waits until the deadline step returned (none
// when zero) or a signal on wake, and again, until the checker closes. The
// ejection expiry and the removal guard's hold both run on it.
func (c *LoadBalanceCheckConf) deadlineLoop(step func() time.Time, wake <-chan struct{}) {
	for {
		next := step()
		var t Timer
		var fire <-chan time.Time
		if !next.IsZero() {
			t = c.clock.NewTimer(next)
			fire = t.C()
		}
		select {
		case <-c.ctx.Done():
		case <-wake:
		case <-fire:
		}
		if t != nil {
			t.Stop()
		}
		if c.ctx.Err() != nil {
			return
		}
	}
}

// safeRestoreExpired is restoreExpired turning a panic into an error log,
// retried a second later, so that a bug cannot leave members ejected forever.
func (c *LoadBalanceCheckConf) safeRestoreExpired() (next time.Time) {
	defer func() {
		if p := recover(); p != nil {
			c.log.WithField("panic", p).Error("restoring ejected endpoints panicked")
			next = c.clock.Now().Add(time.Second)
		}
	}()
	return c.restoreExpired()
}

// restoreExpired restores every member whose ejection has expired and
// returns the earliest expiry still ahead (zero if none).
func (c *LoadBalanceCheckConf) restoreExpired() (next time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return time.Time{}
	}
	now := c.clock.Now()
	changed := false
	for _, m := range c.order {
		if !m.ejected.Load() {
			continue
		}
		if now.Before(m.ejectedUntil) {
			if next.IsZero() || m.ejectedUntil.Before(next) {
				next = m.ejectedUntil
			}
			continue
		}
		m.ejected.Store(false)
		m.fails.Store(0)
		m.ejectedUntil = time.Time{}
		m.restoredAt = now
		changed = true
		c.log.WithFields(logrus.Fields{"addr": m.addr, "ejections": m.ejections}).Info("endpoint restored after ejection")
	}
	if changed {
		c.republishLocked()
	}
	return next
}
