package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBatchedFlushesKeepAnswersWhole: on one client connection, many
// handlers at once flush as they go (gRPC-like answers: five flushed
// messages and a trailer, through an h2c service), answer by
// forward.direct, and send large bodies in chunks, so that flushes yield
// to each other (flushBatchedLocked) all the time. Every answer must
// arrive whole, in order, with its trailer, and the run must end.
func TestBatchedFlushesKeepAnswersWhole(t *testing.T) {
	large := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	grpcLike := h2cBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		for i := range 5 {
			fmt.Fprintf(w, "msg%d;", i)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("Grpc-Status", "0")
	}))
	plain := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/large" {
			_, _ = w.Write(large)
			return
		}
		_, _ = io.WriteString(w, "small")
	})
	tr := NewTransport(TransportConfig{Protocol: UpstreamH2C})
	t.Cleanup(tr.CloseIdleConnections)
	g := testRoute(t, "g", "round_robin", &Upstream{Name: "g", Transport: tr, PassHostHeader: true}, grpcLike)
	g.PathPrefix = "/g"
	_, h := newFrontend(t, Options{}, g, testRoute(t, "p", "round_robin", testUpstream(t, "svc"), plain.addr()))
	fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate})
	client := h2cClient(t)

	check := func(kind int) error {
		var req *http.Request
		switch kind {
		case 0:
			req, _ = http.NewRequest(http.MethodPost, fe.URL+"/g/call", strings.NewReader("call"))
			req.Header.Set("Content-Type", "application/grpc")
		case 1:
			req, _ = http.NewRequest(http.MethodGet, fe.URL+"/small", nil)
		default:
			req, _ = http.NewRequest(http.MethodGet, fe.URL+"/large", nil)
		}
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		switch {
		case err != nil || res.StatusCode != http.StatusOK:
			return fmt.Errorf("%s %s: %d, %v", req.Method, req.URL.Path, res.StatusCode, err)
		case kind == 0 && (string(body) != "msg0;msg1;msg2;msg3;msg4;" || res.Trailer.Get("Grpc-Status") != "0"):
			return fmt.Errorf("gRPC-like answer %q with trailer %v", body, res.Trailer)
		case kind == 1 && string(body) != "small":
			return fmt.Errorf("small answer %q", body)
		case kind == 2 && !bytes.Equal(body, large):
			return fmt.Errorf("large answer of %d bytes, not the %d sent", len(body), len(large))
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 48)
	for i := range 48 {
		wg.Go(func() {
			for j := range 20 {
				if err := check((i + j) % 3); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("960 requests on one connection not answered within 60s")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
