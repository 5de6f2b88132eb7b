package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/zkgate/zkgate/balancer"
)

// ErrUnknownEndpoint is returned (wrapped) by Drain and Undrain for an
// address that is not a member of the service.
var ErrUnknownEndpoint = errors.New("unknown endpoint")

// LoadBalanceCheckConf observes an upstream LoadBalanceConf (the membership
// of one service) and is itself a LoadBalanceConf publishing the members that
// work: those that pass active probes, are not ejected by passive checks and
// are neither drained nor pending their first probe — or every such
// non-drained, non-pending member while the panic threshold is crossed. Its
// removal guard (see guard.go) holds mass removals for a while. It publishes
// only when that set changes. Make it with New and stop
// it with Close.
type LoadBalanceCheckConf struct {
	// subject publishes the healthy set. It is a named field rather than
	// embedded so that its Publish method is not part of this type's API:
	// only the checker decides what it publishes.
	subject  balancer.Subject
	upstream balancer.LoadBalanceConf
	watch    *membership
	cfg      Config
	log      logrus.FieldLogger
	clock    Clock
	onEject  func(addr string) // nil without OnEject
	// onMembers (nil without OnMembers) hears of each change of the
	// members' addresses; shownAddrs is the set it heard last (under mu).
	onMembers  func(addrs []string)
	shownAddrs []string
	probe      prober // nil without active probing
	client     *http.Client
	sem        chan struct{} // bounds concurrent probes
	wake       chan struct{} // tells the expiry loop an ejection happened
	guardSet   chan struct{} // tells the guard loop a hold began

	// Hot path (Report): immutable map of the current members.
	snap         atomic.Pointer[map[string]*member]
	maxFailures  int64
	serverErrors bool
	guarding     bool // the removal guard is on

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	loops  atomic.Int64 // probe loops running, for tests and Status

	probes        atomic.Uint64
	probeFailures atomic.Uint64

	mu               sync.Mutex // guards what follows and every member's guarded fields
	closed           bool
	members          map[string]*member
	order            []*member // members sorted by address
	panicking        bool
	panicActivations uint64
	ejections        uint64
	guardUntil       time.Time // end of the removal guard's hold; zero when not holding
	guardEngagements uint64
}

// member is the health state of one address. It is keyed by address, so it
// survives weight and metadata changes of the endpoint.
type member struct {
	addr string

	// Lock-free, for Report. ejected and held are written under the
	// checker's lock.
	fails   atomic.Int64 // consecutive failed requests reported
	ejected atomic.Bool
	held    atomic.Bool // removed upstream, kept by the removal guard

	// Guarded by the checker's mu.
	ep           balancer.Endpoint
	cancel       context.CancelFunc // stops the probe loop
	kick         chan struct{}      // asks the probe loop for a probe now
	gone         bool               // left the upstream membership
	pending      bool               // awaits its first probe (RequireFirstPass)
	active       riseFall
	draining     bool
	lastProbe    time.Time
	lastResult   string
	ejectedUntil time.Time
	ejections    int
	level        int       // exponent of the next ejection time
	restoredAt   time.Time // end of the last ejection
	shown        string    // state() at the last republish
	since        time.Time // when it entered shown
}

var _ balancer.LoadBalanceConf = (*LoadBalanceCheckConf)(nil)

// New returns a checker over upstream's membership and attaches it to
// upstream. Members are routed as soon as upstream lists them (backends
// register when ready) and probed at once. log receives state changes only;
// nil discards them. Close stops the checker.
func New(upstream balancer.LoadBalanceConf, cfg Config, log logrus.FieldLogger, opts ...Option) (*LoadBalanceCheckConf, error) {
	if upstream == nil {
		return nil, errors.New("healthcheck: new: upstream conf is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("healthcheck: invalid config: %w", err)
	}
	cfg = cfg.withDefaults()
	o := options{clock: realClock{}}
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	c := &LoadBalanceCheckConf{
		upstream:     upstream,
		cfg:          cfg,
		log:          log.WithField("component", "healthcheck"),
		clock:        o.clock,
		onEject:      o.onEject,
		onMembers:    o.onMembers,
		sem:          make(chan struct{}, cfg.Active.MaxConcurrent),
		wake:         make(chan struct{}, 1),
		guardSet:     make(chan struct{}, 1),
		maxFailures:  int64(cfg.Passive.MaxFailures),
		serverErrors: cfg.Passive.ServerErrors,
		guarding:     cfg.RemovalGuard.MaxPercent > 0 && cfg.RemovalGuard.MaxPercent < 100,
		members:      map[string]*member{},
	}
	c.watch = &membership{c}
	empty := map[string]*member{}
	c.snap.Store(&empty)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	switch cfg.Active.Type {
	case ProbeTCP:
		c.probe = tcpProbe(cfg.Active)
	case ProbeHTTP:
		c.client = newProbeClient(cfg.Active)
		c.probe = httpProbe(c.client, cfg.Active)
	}
	if c.maxFailures > 0 {
		c.wg.Add(1)
		go c.expiryLoop()
	}
	if c.guardOn() {
		c.wg.Add(1)
		go c.guardLoop()
	}
	upstream.Attach(c.watch)
	return c, nil
}

// Attach implements balancer.LoadBalanceConf. The checker publishes while
// holding its own lock, so an observer's Update must not call back into the
// checker (Status, Drain, ...).
func (c *LoadBalanceCheckConf) Attach(o balancer.Observer) { c.subject.Attach(o) }

// Detach implements balancer.LoadBalanceConf.
func (c *LoadBalanceCheckConf) Detach(o balancer.Observer) { c.subject.Detach(o) }

// Endpoints implements balancer.LoadBalanceConf: the published set.
func (c *LoadBalanceCheckConf) Endpoints() []balancer.Endpoint { return c.subject.Endpoints() }

// Close detaches the checker from upstream, stops every probe and timer and
// waits for them. Observers keep the last published set. Close is
// idempotent.
func (c *LoadBalanceCheckConf) Close() error {
	c.upstream.Detach(c.watch)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.cancel()
	c.mu.Unlock()
	c.wg.Wait()
	if c.client != nil {
		c.client.CloseIdleConnections()
	}
	return nil
}

// Panicking reports whether the panic threshold is crossed, so that every
// member is published.
func (c *LoadBalanceCheckConf) Panicking() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.panicking
}

// membership is the checker's observer of upstream. It is a separate type so
// that Update is not part of the checker's API.
type membership struct{ c *LoadBalanceCheckConf }

// Update receives upstream's membership: new addresses get a fresh state
// (pending their first probe under RequireFirstPass) and a probe loop;
// departed ones lose their loop, unless the removal guard holds them;
// remaining ones keep their state and take the new ID, weight and metadata.
func (w *membership) Update(endpoints []balancer.Endpoint) {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	listed := balancer.Normalize(endpoints)
	next := make(map[string]*member, len(c.members)+len(listed))
	for _, ep := range listed {
		m := c.members[ep.Addr]
		switch {
		case m == nil:
			// Joins and leaves are logged once, by the membership
			// source (discovery logs each change with its endpoints).
			m = &member{addr: ep.Addr, pending: c.probe != nil && c.cfg.Active.RequireFirstPass}
			c.startProbe(m)
		case m.held.Load():
			m.held.Store(false)
			c.log.WithField("addr", ep.Addr).Info("endpoint listed again: removal guard no longer holds it")
		}
		m.ep = ep
		next[ep.Addr] = m
	}
	hold := c.guardHolds(next)
	for addr, m := range c.members {
		if next[addr] != nil {
			continue
		}
		if hold {
			if !m.held.Load() {
				m.held.Store(true)
				c.kickProbe(m)
			}
			next[addr] = m
			continue
		}
		c.dropLocked(m)
	}
	c.installLocked(next)
	c.endGuardIfIdleLocked()
	c.republishLocked()
}

// dropLocked stops m, which is leaving the membership. c.mu must be held; the
// caller removes m from c.members.
func (c *LoadBalanceCheckConf) dropLocked(m *member) {
	m.gone = true
	if m.cancel != nil {
		m.cancel()
	}
}

// installLocked makes next the membership. c.mu must be held.
func (c *LoadBalanceCheckConf) installLocked(next map[string]*member) {
	order := make([]*member, 0, len(next))
	for _, m := range next {
		order = append(order, m)
	}
	slices.SortFunc(order, func(a, b *member) int { return strings.Compare(a.addr, b.addr) })
	// next is never modified after this point: Report reads it lock-free.
	c.members = next
	c.order = order
	c.snap.Store(&next)
	if c.onMembers != nil {
		addrs := make([]string, len(order))
		for i, m := range order {
			addrs[i] = m.addr
		}
		if c.shownAddrs == nil || !slices.Equal(addrs, c.shownAddrs) {
			c.shownAddrs = addrs
			c.onMembers(addrs)
		}
	}
}

// republishLocked publishes the set the current states call for and logs
// panic transitions. c.mu must be held; holding it while publishing keeps
// publications in the order of the state changes.
func (c *LoadBalanceCheckConf) republishLocked() {
	all := make([]balancer.Endpoint, 0, len(c.order))
	healthy := make([]balancer.Endpoint, 0, len(c.order))
	// Every change of a member's state republishes: this is where the
	// time it entered its state is taken.
	var now time.Time
	for _, m := range c.order {
		if st := m.state(); st != m.shown {
			if now.IsZero() {
				now = c.clock.Now()
			}
			m.shown, m.since = st, now
		}
		if m.draining || m.pending {
			continue
		}
		all = append(all, m.ep)
		if m.healthy() {
			healthy = append(healthy, m.ep)
		}
	}
	panicking := len(all) > 0 &&
		(len(healthy) == 0 || len(healthy)*100 < c.cfg.PanicThreshold*len(all))
	if panicking != c.panicking {
		c.panicking = panicking
		f := c.log.WithFields(logrus.Fields{"healthy": len(healthy), "members": len(all), "panic_threshold": c.cfg.PanicThreshold})
		if panicking {
			c.panicActivations++
			f.Warn("panic threshold crossed: routing to every member, healthy or not")
		} else {
			f.Info("panic mode left: routing to healthy members only")
		}
	}
	if panicking {
		c.subject.Publish(all)
	} else {
		c.subject.Publish(healthy)
	}
}

// healthy reports whether m passes every check. The checker's mu must be
// held.
func (m *member) healthy() bool {
	return !m.draining && !m.pending && !m.active.down && !m.ejected.Load()
}

// state names m's state for Status. The checker's mu must be held.
func (m *member) state() string {
	switch {
	case m.draining:
		return StateDraining
	case m.pending:
		return StatePending
	case m.ejected.Load():
		return StateEjected
	case m.active.down:
		return StateUnhealthy
	default:
		return StateHealthy
	}
}
