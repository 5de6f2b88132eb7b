package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
)

// prober checks one address once. It returns nil when the endpoint is
// healthy. It must return promptly once ctx is done.
type prober func(ctx context.Context, addr string) error

// tcpProbe connects to the address and closes the connection at once. It
// proves that something accepts connections, not that it answers them.
func tcpProbe(cfg ActiveConfig) prober {
	d := &net.Dialer{Timeout: cfg.Timeout}
	return func(ctx context.Context, addr string) error {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// newProbeClient returns the client shared by every http probe of a checker:
// no proxy from the environment, no keep-alive (each probe proves that a new
// connection is accepted and served, and no idle connection is kept per
// endpoint), no redirect following. The probe's context bounds the whole
// exchange by cfg.Timeout (see runProbe), so that every timeout reads alike.
func newProbeClient(cfg ActiveConfig) *http.Client {
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
		TLSClientConfig:        cfg.TLS,
		TLSHandshakeTimeout:    cfg.Timeout,
	}
	switch {
	case cfg.H2C:
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = p
	case cfg.H2:
		p := new(http.Protocols)
		p.SetHTTP2(true)
		tr.Protocols = p
		tr.ForceAttemptHTTP2 = true
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// httpProbe sends GET cfg.Path and expects a status in cfg.ExpectStatus.
func httpProbe(client *http.Client, cfg ActiveConfig) prober {
	return func(ctx context.Context, addr string) error {
		scheme := "http://"
		if cfg.TLS != nil {
			scheme = "https://"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+addr+cfg.Path, nil)
		if err != nil {
			return err
		}
		if cfg.Host != "" {
			req.Host = cfg.Host
		}
		req.Header.Set("User-Agent", "zkgate-healthcheck")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		// Read a little of the body so that the server does not see a reset
		// before it finished writing; the connection is not reused anyway.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		_ = resp.Body.Close()
		if !cfg.ExpectStatus.Contains(resp.StatusCode) {
			return fmt.Errorf("status %d, want %s", resp.StatusCode, cfg.ExpectStatus)
		}
		return nil
	}
}

// riseFall damps flapping: it turns a run of probe results into a health
// state that changes only after HealthyThreshold successes or
// UnhealthyThreshold failures in a row. Its zero value is healthy.
type riseFall struct {
	down    bool
	okRun   int // consecutive successes
	failRun int // consecutive failures
}

// observe records one probe result and reports whether the state changed.
func (r *riseFall) observe(ok bool, rise, fall int) bool {
	if ok {
		r.failRun = 0
		r.okRun++
		if r.down && r.okRun >= rise {
			r.down = false
			return true
		}
		return false
	}
	r.okRun = 0
	r.failRun++
	if !r.down && r.failRun >= fall {
		r.down = true
		return true
	}
	return false
}

// startProbe starts m's probe loop when active probing is on. c.mu must be
// held and the checker open.
func (c *LoadBalanceCheckConf) startProbe(m *member) {
	if c.probe == nil {
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	m.cancel = cancel
	m.kick = make(chan struct{}, 1)
	c.wg.Add(1)
	c.loops.Add(1)
	go c.probeLoop(ctx, m)
}

// probeLoop probes m at once, then every jittered Interval (measured from the
// start of one probe to the start of the next) or when kicked, until ctx is
// done.
func (c *LoadBalanceCheckConf) probeLoop(ctx context.Context, m *member) {
	defer c.wg.Done()
	defer c.loops.Add(-1)
	var next time.Time
	for {
		if !next.IsZero() {
			t := c.clock.NewTimer(next)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
			case <-m.kick:
				t.Stop()
			}
		}
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		start := c.clock.Now()
		err := c.runProbe(ctx, m.addr)
		<-c.sem
		if ctx.Err() != nil {
			return // the member left or the checker closed: the result is moot
		}
		end := c.clock.Now()
		c.probeDone(m, end, err)
		next = start.Add(c.jittered(c.cfg.Active.Interval))
	}
}

// runProbe runs one probe with the configured timeout, turning a panic into
// an error so that a bad probe cannot kill the loop.
func (c *LoadBalanceCheckConf) runProbe(ctx context.Context, addr string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("probe panicked: %v", p)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Active.Timeout)
	defer cancel()
	err = c.probe(ctx, addr)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timeout after %s: %w", c.cfg.Active.Timeout, err)
	}
	return err
}

// jittered returns d scaled by a random factor in [1-Jitter, 1+Jitter].
func (c *LoadBalanceCheckConf) jittered(d time.Duration) time.Duration {
	j := c.cfg.Active.Jitter
	if j == 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + j*(2*rand.Float64()-1)))
}

// probeDone records a probe result finished at end and republishes when the
// member's health changed.
func (c *LoadBalanceCheckConf) probeDone(m *member, end time.Time, err error) {
	c.probes.Add(1)
	if err != nil {
		c.probeFailures.Add(1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || m.gone {
		return
	}
	m.lastProbe = end
	m.lastResult = "ok"
	if err != nil {
		m.lastResult = err.Error()
	}
	f := c.log.WithField("addr", m.addr)
	if m.held.Load() && err != nil {
		f.WithField("error", m.lastResult).Warn("held endpoint failed a probe: removed at once")
		c.dropHeldLocked(m)
		return
	}
	if m.pending {
		m.pending = false
		if err == nil {
			m.active.okRun = 1
			f.Info("endpoint passed its first probe: routed")
		} else {
			m.active.down = true
			m.active.failRun = 1
			f.WithField("error", m.lastResult).Warn("endpoint failed its first probe: not routed")
		}
		c.republishLocked()
		return
	}
	a := c.cfg.Active
	if !m.active.observe(err == nil, a.HealthyThreshold, a.UnhealthyThreshold) {
		return
	}
	if m.active.down {
		f.WithFields(logrus.Fields{"error": m.lastResult, "failures": m.active.failRun}).Warn("endpoint down")
	} else {
		f.WithField("successes", m.active.okRun).Info("endpoint up")
	}
	c.republishLocked()
}

// kickProbe asks m's probe loop, if any, to probe now instead of at the end
// of its interval. c.mu must be held.
func (c *LoadBalanceCheckConf) kickProbe(m *member) {
	if m.kick == nil {
		return
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
}
