package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the proxy, not a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }

// benchHandler returns a Handler proxying /api to an in-process backend
// answering a small body, and the request to send it.
func benchHandler(b *testing.B, opts Options) (*Handler, *http.Request) {
	body := []byte(`{"ok":true,"msg":"hello from the backend"}`)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(body)
	}))
	b.Cleanup(be.Close)
	up := &Upstream{Name: "svc", Transport: NewTransport(TransportConfig{}), PassHostHeader: true}
	b.Cleanup(up.Transport.(*Transport).CloseIdleConnections)
	route := testRoute(b, "api", "round_robin", up, be.Listener.Addr().String())
	route.PathPrefix = "/api"
	route.StripPrefix = true
	rt, err := NewRouter(append(benchRouter(b).Routes(), route))
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "http://example.com/api/items/42?x=1", nil)
	req.RemoteAddr = "192.0.2.10:40000"
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	return NewHandler(rt, opts), req
}

func serveOnce(b *testing.B, h *Handler, req *http.Request, w *discardWriter) {
	clear(w.h)
	w.status = 0
	h.ServeHTTP(w, req)
	if w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
}

// BenchmarkHandler measures one proxied GET through the whole Handler:
// route match among 41 routes, pick, rewrite, a keep-alive round trip to a
// loopback backend and the copy of a small body.
func BenchmarkHandler(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		h, req := benchHandler(b, Options{})
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			serveOnce(b, h, req, w)
		}
	})
	b.Run("serial-accesslog", func(b *testing.B) {
		log := NewAccessLog(io.Discard, AccessLogOptions{})
		defer log.Close()
		h, req := benchHandler(b, Options{AccessLog: log})
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			serveOnce(b, h, req, w)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		h, req := benchHandler(b, Options{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := &discardWriter{h: http.Header{}}
			for pb.Next() {
				serveOnce(b, h, req, w)
			}
		})
	})
}
