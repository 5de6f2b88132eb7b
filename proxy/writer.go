package proxy

import (
	"bufio"
	"net"
	"net/http"
)

// statusWriter records the status and body size a response writer sent, for
// the access log and metrics. It passes flushes and hijacks (WebSocket
// upgrades) through; http.ResponseController reaches everything else with
// Unwrap.
type statusWriter struct {
	w      http.ResponseWriter
	status int   // the final status; 0 until one is written
	size   int64 // body bytes written
	// z encodes the body when the route compresses the answer
	// (forward.compress); size then counts what it sends.
	z *encoder
}

func (s *statusWriter) Header() http.Header { return s.w.Header() }

// noSniff keeps net/http from sniffing a type for a final answer without
// one: a proxy passes the type it got, or none. The key without a value
// does it; it is set here, as the answer's head goes out, because
// ReverseProxy clears the header map after passing a 1xx on.
func noSniff(h http.Header) {
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil
	}
}

func (s *statusWriter) WriteHeader(code int) {
	// 1xx answers other than 101 are informational: the final status
	// follows.
	if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.status = code
		noSniff(s.w.Header())
	}
	s.w.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
		noSniff(s.w.Header())
	}
	if s.z != nil {
		if err := s.z.write(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	n, err := s.w.Write(p)
	s.size += int64(n)
	return n, err
}

// FlushError flushes the encoder, if any, and the underlying writer (see
// http.ResponseController).
func (s *statusWriter) FlushError() error {
	if s.z != nil {
		if err := s.z.flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(s.w).Flush()
}

// Flush implements http.Flusher.
func (s *statusWriter) Flush() { _ = s.FlushError() }

// Hijack hands the connection over for a protocol switch; the status is
// then 101, which ReverseProxy writes on the connection itself.
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(s.w).Hijack()
	if err == nil && s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.w }
