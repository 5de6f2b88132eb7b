package proxy

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// gRPC through the net/http side (HTTP/2 to clients and to endpoints): its
// requests are proxied as any other — trailers included, since
// ReverseProxy passes them — with three differences, decided here:
//
//   - Errors the gateway answers itself are gRPC errors: HTTP 200,
//     Content-Type application/grpc and the status in grpc-status and
//     grpc-message, with no body (a Trailers-Only answer), which every gRPC
//     client reads; an HTML or JSON body would be a protocol error to it.
//     The access log and metrics record the HTTP status the error stands
//     for (503, 504, ...).
//   - grpc-timeout bounds the wait for the answer when it is shorter than
//     the route's timeout (a deadline the gateway cannot meet is answered
//     DEADLINE_EXCEEDED rather than held).
//   - Retries follow RetryPolicy, under which a POST — every gRPC call — is
//     retried only when nothing was sent (the connection could not be
//     made), which is what gRPC's transparent retry allows.

// isGRPC reports whether r is a gRPC call: Content-Type application/grpc,
// alone or with a +suffix or parameters (gRPC over HTTP/2, PROTOCOL-HTTP2).
func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/grpc") {
		return false
	}
	rest := ct[len("application/grpc"):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// gRPC status codes the gateway answers with (google.rpc.Code).
const (
	grpcUnknown          = 2
	grpcDeadlineExceeded = 4
	grpcResourceExhaust  = 8
	grpcUnimplemented    = 12
	grpcInternal         = 13
	grpcUnavailable      = 14
)

// grpcCode maps the gateway's HTTP status for a failure to a gRPC code, as
// gRPC's "HTTP to gRPC status code mapping" does, with the gateway's own
// timeouts as DEADLINE_EXCEEDED.
func grpcCode(status int) int {
	switch status {
	case http.StatusBadRequest:
		return grpcInternal
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return grpcUnimplemented
	case http.StatusRequestEntityTooLarge:
		return grpcResourceExhaust
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return grpcDeadlineExceeded
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
		return grpcUnavailable
	}
	return grpcUnknown
}

var grpcContentType = []string{"application/grpc"}

// writeGRPCError answers a gRPC call with the gRPC error status stands
// for: a Trailers-Only answer.
func writeGRPCError(w http.ResponseWriter, status int, msg, route, service string) {
	h := w.Header()
	// A nil value keeps net/http from adding "content-length: 0" to the
	// Trailers-Only answer.
	h["Content-Length"] = nil
	h["Content-Type"] = grpcContentType
	h.Set("Grpc-Status", strconv.Itoa(grpcCode(status)))
	text := "zkgate: " + msg
	if route != "" {
		text += " (route " + route + ", service " + service + ")"
	}
	h.Set("Grpc-Message", grpcPercentEncode(text))
	w.WriteHeader(http.StatusOK)
}

// grpcPercentEncode encodes a grpc-message value: bytes outside printable
// ASCII, and '%', percent-encoded.
func grpcPercentEncode(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '%' {
			return url.PathEscape(s) // rare: the gateway's own texts are ASCII
		}
	}
	return s
}

// grpcTimeout parses the grpc-timeout header: 1 to 8 digits and a unit (H,
// M, S, m, u, n). A malformed value is ignored (ok false), as gRPC servers
// ignore it; a huge one is capped at a day.
func grpcTimeout(h http.Header) (time.Duration, bool) {
	v := h.Get("Grpc-Timeout")
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 || v[0] == '+' || v[0] == '-' {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	const most = 24 * time.Hour
	if n > int64(most/unit) {
		return most, true
	}
	if d := time.Duration(n) * unit; d > 0 {
		return d, true
	}
	return time.Nanosecond, true // 0: already expired
}
