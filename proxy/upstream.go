package proxy

import (
	"errors"
	"net/http"
	"time"

	"github.com/zkgate/zkgate/balancer"
)

// proxy makes the attempts of one request (entry.attempts) and relays the
// answer. It reports whether the client connection stays open.
func (c *fconn) proxy(e *entry, ex *exchange) bool {
	tr := e.route.Upstream.Transport.(*Transport)
	var deadline time.Time
	if t := e.route.Timeout; t > 0 {
		deadline = ex.start.Add(t)
	}
	var uc *upConn
	try := func(ep balancer.Endpoint) (failKind, error) {
		// (A retry's c.now is read by attempts, through ex.clock.)
		if ex.attempts == 1 {
			c.armWatch()
		}
		var kind failKind
		var err error
		uc, kind, err = c.attempt(tr, e, ep, deadline)
		return kind, err
	}
	discard := func() {
		if uc != nil {
			uc.close()
		}
	}
	ep, kind, err := e.attempts(ex, try, discard)
	return c.answer(e, ex, ep, uc, kind, err)
}

// answer ends the exchange whose attempts are over: the last one, to ep,
// came to kind and err, and uc is its connection with the answer's head
// parsed into c.res (nil when it failed). It relays the answer, or answers
// the failure, and gives ep its Done. It reports whether the client
// connection stays open.
func (c *fconn) answer(e *entry, ex *exchange, ep balancer.Endpoint, uc *upConn, kind failKind, err error) bool {
	if kind == failNoEndpoint {
		return c.fail(ex, kind, err)
	}
	if !(c.inWait || c.inLoop) || uc == nil {
		// A request served inside its hot wait, or begun by a loop,
		// keeps its watch while its answer's body is relayed (relay ends
		// it): nothing else sees its client go away, or the server close
		// it, while an endpoint keeps a stream silent.
		c.disarmWatch()
	}
	if uc == nil {
		e.done(ep)
		return c.fail(ex, kind, err)
	}
	if c.res.status == http.StatusSwitchingProtocols {
		c.disarmWatch() // (never served inside a hot wait)
		keep := c.switchProtocols(uc, ex)
		if c.tunnelUp != nil {
			// In flight until the tunnel closes: least_request counts
			// it as the net/http side does.
			c.tunnelEntry, c.tunnelEp = e, ep
		} else {
			e.done(ep)
		}
		return keep
	}
	keep := c.relay(uc, ex)
	e.done(ep)
	return keep
}

// failure classifies a failed exchange with an endpoint (classify).
func (c *fconn) failure(err error, deadline time.Time) failKind {
	if c.gone.Load() {
		return failClientGone
	}
	return classify(err, nil, !deadline.IsZero() && !time.Now().Before(deadline), false)
}

// attempt sends the request to ep and reads the response head into c.res.
// On success (an answer, 5xx included) it returns the connection, which
// the body is then read from; on failure the connection is closed.
func (c *fconn) attempt(tr *Transport, e *entry, ep balancer.Endpoint, deadline time.Time) (*upConn, failKind, error) {
	p := tr.endpointPool(ep.Addr)
	uc := p.reusable(c.now)
	fresh := uc == nil
	if fresh {
		var err error
		if uc, err = tr.dialBy(p, deadline); err != nil {
			return nil, c.failure(err, deadline), err
		}
	}
	return c.attemptOn(tr, p, uc, fresh, ep.Addr, deadline, false, nil)
}

// attemptOn is attempt on uc, a connection to p (fresh: dialed for it).
// When written, the request was written on uc already (by a loop,
// loop_linux.go), with werr the write's error: the attempt goes on from
// there.
func (c *fconn) attemptOn(tr *Transport, p *hostPool, uc *upConn, fresh bool, addr string, deadline time.Time, written bool, werr error) (*upConn, failKind, error) {
	for {
		if !c.watchUpstream(uc) {
			uc.close()
			return nil, failClientGone, errClientGone
		}
		var err error
		if written {
			written, err = false, werr
			if err == nil {
				err = c.awaitHead(uc)
			}
		} else {
			err = c.roundTripHead(uc, addr, deadline)
		}
		if err == nil {
			if c.res.status >= 500 {
				return uc, failServerError, nil
			}
			return uc, failNone, nil
		}
		stale := staleConn(uc, err)
		uc.close()
		kind := c.failure(err, deadline)
		if fresh || !stale || kind == failRouteTimeout || kind == failClientGone ||
			(uc.nwritten > 0 && !c.ex.replayable) {
			return nil, kind, err
		}
		// A kept-alive connection the endpoint had closed: nothing was
		// processed, so try once more on a fresh one when nothing was
		// written or the request may be sent twice (net/http's rule; the
		// body is in memory).
		fresh = true
		if uc, err = tr.dialBy(p, deadline); err != nil {
			return nil, c.failure(err, deadline), err
		}
	}
}

// roundTripHead writes the request on uc, addr being its endpoint's
// address (the Host value when c.out leaves it out), and reads the final
// response head into c.res, passing informational answers on to the
// client.
func (c *fconn) roundTripHead(uc *upConn, addr string, deadline time.Time) error {
	uc.begin(c.now, deadline)
	if err := c.writeRequest(uc, addr, true); err != nil {
		return err
	}
	return c.awaitHead(uc)
}

// writeRequest writes the request on uc, addr being its endpoint's address
// (the Host value when c.out leaves it out). await is whether the write
// may wait for the answer in the same system call's wait
// (upConn.flushRequest): a loop waits for it in its own epoll set.
func (c *fconn) writeRequest(uc *upConn, addr string, await bool) error {
	if c.hostAt < 0 {
		return uc.sendRequest(c.out, c.body, await)
	}
	_, _ = uc.bw.Write(c.out[:c.hostAt])
	_, _ = uc.bw.WriteString(addr)
	_, _ = uc.bw.Write(c.out[c.hostAt:])
	_, _ = uc.bw.Write(c.body)
	return uc.flushRequest(await)
}

// awaitHead reads the final response head of the request written on uc
// into c.res, passing informational answers on to the client.
func (c *fconn) awaitHead(uc *upConn) error {
	for informational := 0; ; informational++ {
		n, err := readResponseHead(uc.br)
		if err == nil {
			err = c.res.parse(uc.br, n)
		}
		if err != nil {
			return err
		}
		if c.res.status >= 200 {
			return nil
		}
		if c.res.status == http.StatusSwitchingProtocols {
			if c.req.upgrade != nil {
				return nil // switchProtocols checks it
			}
			return errUnaskedSwitch
		}
		if informational == max1xx {
			return errTooMany1xx
		}
		// An informational answer (103 Early Hints): pass it on.
		c.writeHead(false)
		_, _ = uc.br.Discard(n)
		if err := c.bw.Flush(); err != nil {
			return errClientGone
		}
	}
}

// max1xx is the number of informational answers passed on before a final
// one; more fail the exchange (502), as net/http's transport fails it.
const max1xx = 5

var (
	errUnaskedSwitch = errors.New("proxy: upstream switched protocols unasked")
	errTooMany1xx    = errors.New("proxy: upstream sent too many informational answers")
	errClientGone    = errors.New("proxy: the client went away")
)
