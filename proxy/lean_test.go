package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// heldHeaderTransport fails every attempt at once but keeps reading the
// request's header on a goroutine of its own after RoundTrip returns, as
// net/http's HTTP/2 transport may (the stream's writer, when the attempt
// fails or is reset midway).
type heldHeaderTransport struct {
	release chan struct{}
	wg      sync.WaitGroup
	seen    chan string // "" when the header read late is the one sent
}

func (tr *heldHeaderTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := req.Header
	then := h.Get("X-Forwarded-For") + "|" + h.Get("X-Kept")
	tr.wg.Go(func() {
		<-tr.release
		if now := h.Get("X-Forwarded-For") + "|" + h.Get("X-Kept"); now != then {
			tr.seen <- "read " + now + " where the attempt was sent " + then
			return
		}
		tr.seen <- ""
	})
	return nil, errors.New("attempt failed")
}

// A failed attempt's outbound header is not given back to the pool by
// forward.lean: the transport may still be reading it after RoundTrip
// returned (CI caught net/http's HTTP/2 writer reading a map the pool had
// cleared). The map stays whole, its fields those of the request.
func TestLeanKeepsAFailedAttemptsHeader(t *testing.T) {
	tr := &heldHeaderTransport{release: make(chan struct{}), seen: make(chan string, 5)}
	up := &Upstream{Name: "svc", Transport: tr, PassHostHeader: true}
	rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", up, "127.0.0.1:1")})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(rt, Options{})
	// One request after the other: each takes a map from the pool, which
	// a map given back too early would be.
	for i := range 5 {
		var body io.Reader
		method := http.MethodGet
		if i%2 == 0 {
			method, body = http.MethodPost, strings.NewReader("body")
		}
		req := httptest.NewRequest(method, "http://gateway.test/x", body)
		req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
		req.Header.Set("X-Kept", "request "+strconv.Itoa(i))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadGateway {
			t.Fatalf("status %d, want 502", rec.Code)
		}
	}
	close(tr.release)
	for range 5 {
		select {
		case got := <-tr.seen:
			if got != "" {
				t.Errorf("the transport %s", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the transport's readers did not finish")
		}
	}
	tr.wg.Wait()
}

// An answer that announces a trailer (Trailer: 0) and then sends an empty
// trailer section ends its HTTP/2 stream through forward.lean, as through
// ReverseProxy. lean set the announced key without a value, and Go's
// HTTP/2 server then held the stream open for a trailer section it never
// wrote: the client waited for its own timeout (FuzzRoundTripH1 found
// it).
func TestLeanAnnouncedTrailerNeverSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: 0\r\n\r\n2\r\nok\r\n0\r\n\r\n")
			})
		}
	})
	for _, server := range []HTTP2Server{HTTP2ServerGo, HTTP2ServerZkgate} {
		side := newH2SideOn(t, false, server, ln.Addr().String())
		client := h2cClient(t)
		client.Timeout = 5 * time.Second
		if got := h2Exchange(t, client, http.MethodGet, "http://"+side.addr+"/t"); !strings.HasPrefix(got, "HTTP/2.0 200\n") || !strings.Contains(got, "body \"ok\"\n") {
			t.Errorf("HTTP/2 server %v: the client got %q, want the 200 and its body, whole", server, got)
		}
	}
}
