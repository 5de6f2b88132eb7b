// Package echo is the demo backend behind cmd/echo-backend: an HTTP server
// that answers with its identity and the request it saw (Handler), or in
// gRPC mode a gRPC server over h2c implementing gRPC's interop TestService
// and the health service (GRPCService). Either registers itself in ZooKeeper
// through discovery.Registrar, and on SIGTERM deregisters, drains and exits.
package echo

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// maxDelay bounds ?delay= so that a demo request cannot hold a connection
// forever.
const maxDelay = time.Minute

// Handler serves the echo backend's HTTP API:
//
//	GET|POST /...      JSON with the instance id, address and the request seen
//	GET /healthz       200 "ok", or 500 while failing
//	GET|POST /fail     toggles failing mode (every other path answers 500)
//	?delay=DURATION    on any request, waits that long before answering
type Handler struct {
	// Instance is the instance id shown in every answer.
	Instance string
	// Addr is the advertised "host:port".
	Addr string
	// Weight is the registered weight, shown in answers.
	Weight int

	failing  atomic.Bool
	requests atomic.Uint64
}

// Reply is the JSON body of an echo answer.
type Reply struct {
	Instance string      `json:"instance"`
	Addr     string      `json:"addr"`
	Weight   int         `json:"weight"`
	Count    uint64      `json:"count"`
	Request  RequestInfo `json:"request"`
}

// RequestInfo describes the request the backend saw.
type RequestInfo struct {
	Method     string              `json:"method"`
	Host       string              `json:"host"`
	Path       string              `json:"path"`
	Query      string              `json:"query,omitempty"`
	RemoteAddr string              `json:"remote_addr"`
	Headers    map[string][]string `json:"headers"`
	BodyBytes  int64               `json:"body_bytes"`
}

// Failing reports whether the handler is in failing mode.
func (h *Handler) Failing() bool { return h.failing.Load() }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d := r.URL.Query().Get("delay"); d != "" {
		delay, err := time.ParseDuration(d)
		if err != nil || delay < 0 || delay > maxDelay {
			http.Error(w, "bad delay "+strconv.Quote(d)+": want a duration like 200ms, at most 1m", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	switch r.URL.Path {
	case "/healthz":
		if h.failing.Load() {
			http.Error(w, "failing", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
		return
	case "/fail":
		now := !h.failing.Load()
		h.failing.Store(now)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"failing":`+strconv.FormatBool(now)+"}\n")
		return
	}
	n, _ := io.Copy(io.Discard, r.Body)
	if h.failing.Load() {
		http.Error(w, "failing (toggle with /fail)", http.StatusInternalServerError)
		return
	}
	reply := Reply{
		Instance: h.Instance,
		Addr:     h.Addr,
		Weight:   h.Weight,
		Count:    h.requests.Add(1),
		Request: RequestInfo{
			Method:     r.Method,
			Host:       r.Host,
			Path:       r.URL.Path,
			Query:      r.URL.RawQuery,
			RemoteAddr: r.RemoteAddr,
			Headers:    r.Header,
			BodyBytes:  n,
		},
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Echo-Instance", h.Instance)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(reply)
}
