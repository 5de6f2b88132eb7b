package healthcheck

import (
	"time"

	"github.com/sirupsen/logrus"
)

// The removal guard. A membership change that removes more than
// RemovalGuard.MaxPercent of the members listed before it engages the guard
// for RemovalGuard.Hold: the removed members stay members ("held": probed,
// published when healthy, counted for the panic threshold) instead of
// leaving. During the hold:
//   - a held member that fails an active probe leaves at once (it is probed
//     as soon as the hold starts), and so does one a request could not reach
//     (Report of a connect failure or timeout); the other held members are
//     then unpublished until a probe, sent at once, passes again;
//   - a held member listed again upstream is an ordinary member again;
//   - every further removal joins the hold, which keeps its end time, so a
//     stream of changes cannot prolong it;
//   - when no member is held any more, the hold ends early.
// When the hold ends, the remaining held members leave: what upstream lists
// is published, even an empty list.

// guardOn reports whether the removal guard is configured.
func (c *LoadBalanceCheckConf) guardOn() bool { return c.guarding }

// guardHolds reports whether the members of c.members absent from next are
// held rather than dropped, engaging the guard when next removes too many.
// c.mu must be held.
func (c *LoadBalanceCheckConf) guardHolds(next map[string]*member) bool {
	if !c.guardOn() {
		return false
	}
	if !c.guardUntil.IsZero() {
		return true
	}
	removed := 0
	for addr := range c.members {
		if next[addr] == nil {
			removed++
		}
	}
	before := len(c.members)
	if removed == 0 || removed*100 <= c.cfg.RemovalGuard.MaxPercent*before {
		return false
	}
	hold := c.cfg.RemovalGuard.Hold
	c.guardUntil = c.clock.Now().Add(hold)
	c.guardEngagements++
	c.log.WithFields(logrus.Fields{
		"removed": removed, "members": before, "max_percent": c.cfg.RemovalGuard.MaxPercent,
		"hold": hold, "until": c.guardUntil.UTC().Format(time.RFC3339),
	}).Warnf("removal guard engaged: %d of %d members removed at once, holding them for %s", removed, before, hold)
	select {
	case c.guardSet <- struct{}{}:
	default:
	}
	return true
}

// heldLocked returns the number of held members. c.mu must be held.
func (c *LoadBalanceCheckConf) heldLocked() int {
	n := 0
	for _, m := range c.order {
		if m.held.Load() {
			n++
		}
	}
	return n
}

// endGuardIfIdleLocked ends a hold that holds no member any more. c.mu must
// be held.
func (c *LoadBalanceCheckConf) endGuardIfIdleLocked() {
	if c.guardUntil.IsZero() || c.heldLocked() > 0 {
		return
	}
	c.guardUntil = time.Time{}
	c.log.Info("removal guard ended: no member held any more")
}

// dropHeldLocked makes held member m, which failed, leave at once. A failed
// held member is evidence that the removal was real, so with active probing
// the other held members are taken out of the published set (pending, as new
// members are) and probed at once: each comes back on a passing probe and
// leaves on a failing one. That keeps the retries of a request from landing
// on one dead held member after another. c.mu must be held.
func (c *LoadBalanceCheckConf) dropHeldLocked(m *member) {
	next := make(map[string]*member, len(c.members))
	rechecks := 0
	for addr, o := range c.members {
		if o == m {
			continue
		}
		next[addr] = o
		if c.probe != nil && o.held.Load() && !o.pending {
			o.pending = true
			c.kickProbe(o)
			rechecks++
		}
	}
	c.dropLocked(m)
	c.installLocked(next)
	if rechecks > 0 {
		c.log.WithField("rechecked", rechecks).Infof("removal guard: re-checking %d other held members before routing to them again", rechecks)
	}
	c.endGuardIfIdleLocked()
	c.republishLocked()
}

// guardLoop ends holds when they expire, until the checker closes.
func (c *LoadBalanceCheckConf) guardLoop() {
	defer c.wg.Done()
	c.deadlineLoop(c.endExpiredHold, c.guardSet)
}

// endExpiredHold drops the held members once the hold has expired and
// returns the end of the hold still ahead (zero if none).
func (c *LoadBalanceCheckConf) endExpiredHold() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.guardUntil.IsZero() {
		return time.Time{}
	}
	if c.clock.Now().Before(c.guardUntil) {
		return c.guardUntil
	}
	next := make(map[string]*member, len(c.members))
	dropped := 0
	for addr, m := range c.members {
		if m.held.Load() {
			c.dropLocked(m)
			dropped++
			continue
		}
		next[addr] = m
	}
	c.guardUntil = time.Time{}
	c.installLocked(next)
	c.log.WithFields(logrus.Fields{"removed": dropped, "members": len(next)}).
		Infof("removal guard ended: hold expired, %d held members removed, %d members left", dropped, len(next))
	c.republishLocked()
	return time.Time{}
}
