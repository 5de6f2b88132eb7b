package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/zkgate/zkgate/balancer"
	"github.com/zkgate/zkgate/healthcheck"
)

// maxRepicks bounds the picks made to find an endpoint not tried yet for a
// request: balancers cannot exclude endpoints, so a retry picks again and
// skips tried addresses.
const maxRepicks = 8

// failKind classifies why an exchange failed; it picks the error status and
// whether another attempt may follow.
type failKind uint8

const (
	failNone           failKind = iota
	failNoEndpoint              // the balancer had no endpoint: 503
	failConnect                 // nothing was sent (dial failed): 502, retry any method
	failTimeout                 // the endpoint did not answer in time: 504
	failRouteTimeout            // Route.Timeout expired: 504, no retry
	failClientDeadline          // the client's own deadline (grpc-timeout) passed: 504, no retry, no report
	failBackend                 // the connection broke after sending: 502
	failServerError             // a 5xx answer (passed on unless retried)
	failClientGone              // the client went away: no response, no report
	failBodyTooLarge            // the request body passed MaxBodyBytes: 413
	failBadBody                 // reading the client's body failed: 400
	failBodyTimeout             // the client's body did not come within BodyTimeout: 408
	failBadRequest              // ReverseProxy refused the request itself: 400
)

// attempts makes the attempts of one request, on either path: it picks an
// endpoint from the route's balancer, tries it, reports the outcome to the
// passive health checks, and while the RetryPolicy allows picks an endpoint
// not tried yet and tries again. Each request with an endpoint to try is
// deposited in the policy's retry budget, whether or not it is retried. try sends the request to ep and says what
// the attempt came to; discard drops the answer of an attempt that is
// retried. It returns the last endpoint tried (whose Done is the caller's)
// and the last attempt's kind and error; failNoEndpoint and the balancer's
// error when there was no endpoint to try. The deposit counts, and an
// attempt starts, at *ex.clock when the path keeps one (else the deposit
// at the request's start).
//
// The steps are startAttempts and endAttempt, so that an attempt begun by
// one caller can be ended by another; attempts is the two in a loop.
func (e *entry) attempts(ex *exchange, try func(ep balancer.Endpoint) (failKind, error), discard func()) (balancer.Endpoint, failKind, error) {
	var run attemptRun
	if err := e.startAttempts(ex, &run); err != nil {
		return run.ep, failNoEndpoint, err
	}
	for {
		kind, err := try(run.ep)
		if !e.endAttempt(ex, &run, kind, discard) {
			return run.ep, kind, err
		}
	}
}

// attemptRun is where a request's attempts stand: the endpoint of the
// attempt under way, and when it began (zero when nobody observes
// attempts and the path keeps no clock).
type attemptRun struct {
	ep    balancer.Endpoint
	began time.Time
}

// startAttempts picks the request's first endpoint into run, deposits the
// request in the retry budget and begins the first attempt. An error is
// the balancer's: no endpoint to try (and no Done owed).
func (e *entry) startAttempts(ex *exchange, run *attemptRun) error {
	ep, err := e.route.Balancer.Pick(ex.hashKey)
	run.ep = ep
	if err != nil {
		return err
	}
	if pol := &e.route.Upstream.Retry; pol.Budget != nil && pol.Attempts > 1 {
		at := ex.start
		if ex.clock != nil {
			at = *ex.clock // read again after a body that was waited for
		}
		pol.Budget.depositAt(at)
	}
	e.beginAttempt(ex, run, 1)
	return nil
}

// beginAttempt records the start of attempt number attempt, to run.ep.
func (e *entry) beginAttempt(ex *exchange, run *attemptRun, attempt int) {
	ex.attempts = attempt
	ex.addr = run.ep.Addr
	ex.tried = append(ex.tried, run.ep.Addr)
	switch {
	case ex.clock == nil:
		run.began = time.Time{}
		if e.route.Upstream.Attempts != nil {
			run.began = time.Now()
		}
	case attempt > 1:
		*ex.clock = time.Now()
		run.began = *ex.clock
	default:
		run.began = *ex.clock
	}
}

// endAttempt ends the attempt under way in run, which came to kind: it is
// reported and observed, and the retry rules decide. It reports whether
// another attempt follows; it has begun then, to the endpoint now in run,
// after discard dropped the last attempt's answer and the last endpoint
// got its Done. Otherwise run.ep's Done is the caller's.
func (e *entry) endAttempt(ex *exchange, run *attemptRun, kind failKind, discard func()) bool {
	obs := e.route.Upstream.Attempts
	var took time.Duration
	if obs != nil {
		took = time.Since(run.began)
	}
	ep := run.ep
	e.report(ep.Addr, kind)
	next, ok := e.retry(ex, kind, ex.attempts)
	if o, has := outcome(kind); has && obs != nil {
		obs.ObserveAttempt(Attempt{Addr: ep.Addr, Outcome: o, End: run.began.Add(took), Duration: took, Retried: ok})
	}
	if !ok {
		return false
	}
	discard()
	e.done(ep)
	run.ep = next
	e.beginAttempt(ex, run, ex.attempts+1)
	return true
}

// roundTrip makes the attempts of one forwarded request through the
// upstream's transport. It is the request's ReverseProxy.Transport.
func (e *entry) roundTrip(ex *exchange, req *http.Request) (*http.Response, error) {
	up := e.route.Upstream
	hasBody := req.Body != nil && ex.body.src != nil
	if hasBody {
		req.GetBody = ex.body.getBody
	}
	var res *http.Response
	try := func(ep balancer.Endpoint) (failKind, error) {
		r := req
		if ex.attempts > 1 {
			r = req.WithContext(req.Context()) // a shallow copy: the last attempt may still hold req
			u := *req.URL
			r.URL = &u
		}
		r.URL.Scheme = up.scheme()
		r.URL.Host = ep.Addr
		if hasBody {
			r.Body = ex.body.view()
		}
		var err error
		res, err = up.Transport.RoundTrip(r)
		if err != nil {
			// A failure once the timer's deadline has passed is the
			// deadline's, whichever came first: the timer, or an
			// endpoint that gave up at the same deadline (a gRPC server
			// resets the stream when the grpc-timeout it was passed
			// expires).
			ctx := r.Context()
			expired := !ex.deadline.IsZero() && !time.Now().Before(ex.deadline)
			if errors.Is(context.Cause(ctx), errClientDeadline) || (expired && ex.byClient) {
				return failClientDeadline, err
			}
			return classify(err, ex.body.readErr(), expired || errors.Is(context.Cause(ctx), errRouteTimeout), ctx.Err() != nil), err
		}
		if res.StatusCode >= 500 {
			return failServerError, nil
		}
		return failNone, nil
	}
	discard := func() {
		if res != nil {
			res.Body.Close() // the connection is not reused: the body may be slow
			res = nil
		}
	}
	ep, kind, err := e.attempts(ex, try, discard)
	if err != nil {
		if kind != failNoEndpoint {
			e.done(ep)
		}
		ex.fail = kind
		return nil, err
	}
	if !ex.stopTimer() {
		// Route.Timeout fired as the answer arrived: the request's
		// context is cancelled, so the body could not be copied.
		res.Body.Close()
		e.done(ep)
		ex.fail = failRouteTimeout
		if ex.byClient {
			ex.fail = failClientDeadline
		}
		return nil, context.DeadlineExceeded
	}
	if e.track != nil {
		res.Body = trackBody(res.Body, e.track, ep)
	}
	if len(res.Trailer) > 0 && res.ContentLength >= 0 && req.ProtoMajor == 1 && req.ProtoMinor >= 1 &&
		req.Method != http.MethodHead && res.StatusCode >= 200 && res.StatusCode != http.StatusNoContent && res.StatusCode != http.StatusNotModified {
		// An HTTP/2 endpoint may send a length and trailers (gRPC
		// status, checksums); an HTTP/1.1 client gets trailers only in a
		// chunked body, so the length goes.
		res.ContentLength = -1
		delete(res.Header, "Content-Length")
	}
	return res, nil
}

// classify says what a failed attempt's error err means, on either path:
// bodyErr is the error reading the client's body (nil: none), routeExpired
// whether Route.Timeout has passed, clientGone whether the client went
// away. The first that holds decides: the client's body, the route
// timeout, the client, a dial error (nothing was sent), a timeout; anything
// else is a broken exchange.
func classify(err, bodyErr error, routeExpired, clientGone bool) failKind {
	var maxErr *http.MaxBytesError
	var opErr *net.OpError
	var netErr net.Error
	switch {
	case errors.As(bodyErr, &maxErr):
		return failBodyTooLarge
	case bodyErr != nil:
		return failBadBody
	case routeExpired:
		return failRouteTimeout
	case clientGone:
		return failClientGone
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return failConnect
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return failTimeout
	}
	return failBackend
}

// outcome maps an attempt's result to its passive health report; failures
// that are not the endpoint's (the client's, or no endpoint) report nothing.
func outcome(k failKind) (healthcheck.Outcome, bool) {
	switch k {
	case failNone:
		return healthcheck.Success, true
	case failConnect:
		return healthcheck.ConnectFailure, true
	case failTimeout, failRouteTimeout:
		return healthcheck.Timeout, true
	case failBackend:
		// The connection broke before a response: the endpoint is gone or
		// going (killed, crashed), not merely answering errors.
		return healthcheck.ConnectFailure, true
	case failServerError:
		return healthcheck.ServerError, true
	}
	return 0, false
}

// retry decides whether a failed attempt is tried again, and on which
// endpoint: one not tried yet for this request. A retry the policy allows
// is made only if the service's retry budget, if any, allows it.
func (e *entry) retry(ex *exchange, k failKind, attempt int) (balancer.Endpoint, bool) {
	pol := e.route.Upstream.Retry
	if attempt >= pol.Attempts {
		return balancer.Endpoint{}, false
	}
	switch k {
	case failConnect:
	case failTimeout:
		if !pol.OnTimeout || !ex.replayable {
			return balancer.Endpoint{}, false
		}
	case failBackend:
		if !(pol.OnBrokenConnection || pol.OnServerError) || !ex.replayable {
			return balancer.Endpoint{}, false
		}
	case failServerError:
		if !pol.OnServerError || !ex.replayable {
			return balancer.Endpoint{}, false
		}
	default:
		return balancer.Endpoint{}, false
	}
	if ex.body.src != nil && !ex.body.replayable() {
		return balancer.Endpoint{}, false
	}
	if ex.bodyUnkept && k != failConnect {
		// A fast-path body the policy does not keep for replays
		// (BufferBodyBytes) was sent: as on the Handler's path, it is not
		// sent again.
		return balancer.Endpoint{}, false
	}
	next, ok := e.pickUntried(ex)
	if ok && pol.Budget != nil && !pol.Budget.TryWithdraw() {
		// The service's retry budget is spent: the request ends with
		// what this attempt gave.
		e.done(next)
		return balancer.Endpoint{}, false
	}
	return next, ok
}

// pickUntried picks an endpoint whose address is not in ex.tried. The key
// is varied after the first pick so that consistent hashing can move on; a
// retry is rare enough for the allocation.
func (e *entry) pickUntried(ex *exchange) (balancer.Endpoint, bool) {
	key := ex.hashKey
	for i := 0; i < maxRepicks; i++ {
		if i > 0 {
			key = ex.hashKey + "\x00" + string(rune('0'+i))
		}
		ep, err := e.route.Balancer.Pick(key)
		if err != nil {
			return balancer.Endpoint{}, false
		}
		if !ex.triedAddr(ep.Addr) {
			return ep, true
		}
		e.done(ep) // a discarded pick ends like any other
	}
	return balancer.Endpoint{}, false
}

// report passes the outcome of an attempt to addr, if it has one, to the
// route's Reporter.
func (e *entry) report(addr string, k failKind) {
	if rep := e.route.Upstream.Reporter; rep != nil {
		if o, ok := outcome(k); ok {
			rep.Report(addr, o)
		}
	}
}

// done tells a tracking balancer that the attempt to ep has finished.
func (e *entry) done(ep balancer.Endpoint) {
	if e.track != nil {
		e.track.Done(ep)
	}
}
