package proxy

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/sirupsen/logrus"
	"github.com/zkgate/zkgate/balancer"
)

// StatusClientClosedRequest is the status recorded (in the access log and
// metrics, never sent) for a request whose client went away before the
// answer, as nginx and Traefik record it.
const StatusClientClosedRequest = 499

// errRouteTimeout is the cancellation cause of a request whose
// Route.Timeout expired.
var errRouteTimeout = errors.New("proxy: route timeout")

// errClientDeadline is the cancellation cause of a request whose client's
// own deadline (a gRPC call's grpc-timeout) passed first: the endpoint is
// not to blame.
var errClientDeadline = errors.New("proxy: the client's deadline passed")

var (
	jsonContentType = []string{"application/json"}
	nosniff         = []string{"nosniff"}
	retryAfter      = []string{"1"}
)

// handleError is the ReverseProxy.ErrorHandler of every forwarded request:
// the one place where a failed request of the net/http side gets its
// status. The client receives a small JSON body naming the route and
// service, never the internal error text, which is logged at debug level.
func handleError(ex *exchange, w http.ResponseWriter, err error) {
	kind := ex.fail
	switch {
	case kind != failNone:
	case errors.Is(err, balancer.ErrNoEndpoint):
		kind = failNoEndpoint
	case ex.attempts == 0:
		// ReverseProxy refused the request before any attempt: an
		// upgrade to a non-printable protocol name.
		kind = failBadRequest
	}
	logFailure(ex, err)
	writeFailure(w, ex, kind)
	if kind == failClientGone {
		// net/http would answer 200 with an empty body for a handler that
		// wrote nothing, to a client that may still be reading (one that
		// half-closed): abort the response, as the fast path closes the
		// connection then. Handler.finish still records the 499.
		panic(http.ErrAbortHandler)
	}
}

// logFailure logs a failed proxied request of route ex.e at debug level.
func logFailure(ex *exchange, err error) {
	if debugEnabled(ex.h.log) {
		ex.h.log.WithFields(logrus.Fields{
			"route": ex.e.route.Name, "service": ex.e.service, "endpoint": ex.addr, "attempts": ex.attempts,
		}).WithError(err).Debug("proxied request failed")
	}
}

// writeFailure answers a request of route ex.e that failed with kind.
func writeFailure(w http.ResponseWriter, ex *exchange, kind failKind) {
	route, service := ex.e.route.Name, ex.e.service
	switch kind {
	case failClientGone:
		// Nobody is listening; record the status without sending it.
		ex.sw.status = StatusClientClosedRequest
	case failNoEndpoint:
		w.Header()["Retry-After"] = retryAfter
		ex.writeError(w, http.StatusServiceUnavailable, "no healthy endpoint", route, service)
	case failTimeout, failRouteTimeout:
		ex.writeError(w, http.StatusGatewayTimeout, "gateway timeout", route, service)
	case failClientDeadline:
		ex.writeError(w, http.StatusGatewayTimeout, "deadline exceeded", route, service)
	case failBodyTooLarge:
		ex.writeError(w, http.StatusRequestEntityTooLarge, "request body too large", route, service)
	case failBadBody:
		ex.writeError(w, http.StatusBadRequest, "bad request body", route, service)
	case failBodyTimeout:
		ex.writeError(w, http.StatusRequestTimeout, "request body timeout", route, service)
	case failBadRequest:
		ex.writeError(w, http.StatusBadRequest, "bad request", route, service)
	default:
		ex.writeError(w, http.StatusBadGateway, "bad gateway", route, service)
	}
}

// writeError answers the exchange's request with status: a gRPC error for a
// gRPC request, the JSON error body otherwise.
func (ex *exchange) writeError(w http.ResponseWriter, status int, msg, route, service string) {
	if ex.grpc {
		writeGRPCError(w, status, msg, route, service)
		ex.sw.status = status // what the log and metrics record
		return
	}
	writeError(w, status, msg, route, service)
}

// writeError sends status with the body {"error":msg,"route":...,"service":...}.
func writeError(w http.ResponseWriter, status int, msg, route, service string) {
	b := make([]byte, 0, 64+len(msg)+len(route)+len(service))
	b = append(b, `{"error":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, route)
	b = append(b, `,"service":`...)
	b = appendJSONString(b, service)
	b = append(b, "}\n"...)
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = nosniff
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// debugEnabled reports whether log writes debug entries, so that the error
// path builds no fields for a logger that would drop them.
func debugEnabled(log logrus.FieldLogger) bool {
	switch l := log.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(logrus.DebugLevel)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(logrus.DebugLevel)
	}
	return true
}
