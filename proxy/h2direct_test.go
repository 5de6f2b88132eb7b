package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// directFrontend starts a native h2c entry point with one route to addr
// (route timeout to, none when zero) and counts the requests
// forward.direct serves.
func directFrontend(t *testing.T, addr string, to time.Duration) (*frontend, *atomic.Int32) {
	t.Helper()
	r := testRoute(t, "r", "round_robin", testUpstream(t, "svc"), addr)
	r.Timeout = to
	_, h := newFrontend(t, Options{}, r)
	var n atomic.Int32
	h.onDirect = func() { n.Add(1) }
	return startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate}), &n
}

// TestDirectShortBodyResetsStream: an answer whose body ends before its
// Content-Length (the upstream closed) is reset (RST_STREAM
// INTERNAL_ERROR), never ended with END_STREAM as if it were whole.
func TestDirectShortBodyResetsStream(t *testing.T) {
	addr := review23Backend(t, func(_ string, nc net.Conn) bool {
		_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
		return false // and the connection closes
	})
	fe, direct := directFrontend(t, addr, 0)
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.headers("/x"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	got := 0
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("the stream neither ended nor was reset: %v", err)
		}
		if f.Header().StreamID != 1 {
			continue
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			got += len(f.Data())
			if f.StreamEnded() {
				t.Fatalf("a body cut at %d of 100 bytes was ended as whole", got)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				t.Fatal("the answer's head ended the stream")
			}
		case *http2.RSTStreamFrame:
			if f.ErrCode != http2.ErrCodeInternal {
				t.Fatalf("RST_STREAM %v, want INTERNAL_ERROR", f.ErrCode)
			}
			if direct.Load() != 1 {
				t.Fatalf("forward.direct served %d requests, want 1", direct.Load())
			}
			return
		}
	}
}

// TestDirectRouteTimeout: Route.Timeout bounds the wait for the answer's
// head (504), not the body that follows a head in time — as the timer of
// the other paths, stopped when the head arrives.
func TestDirectRouteTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var calls atomic.Int32
	addr := review23Backend(t, func(_ string, nc net.Conn) bool {
		if calls.Add(1) == 1 {
			<-release // never answers in time
			return false
		}
		_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
		time.Sleep(1500 * time.Millisecond) // the body after the route's timeout (what is tested, not a wait)
		_, _ = io.WriteString(nc, "late")
		return true
	})
	// A second: the head, sent at once, arrives well within it even on a
	// loaded machine; the body comes half a second after it.
	fe, direct := directFrontend(t, addr, time.Second)
	c := h2cClient(t)
	res, err := c.Get(fe.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d past the route timeout, want 504", res.StatusCode)
	}
	res, err = c.Get(fe.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || string(body) != "late" {
		t.Fatalf("a head in time with a late body: %d %q %v, want 200 \"late\"", res.StatusCode, body, err)
	}
	if direct.Load() != 2 {
		t.Fatalf("forward.direct served %d requests, want 2", direct.Load())
	}
}

// TestDirectInformational: a 103 before the answer reaches the client, with
// its fields, then the answer.
func TestDirectInformational(t *testing.T) {
	addr := review23Backend(t, func(_ string, nc net.Conn) bool {
		_, _ = io.WriteString(nc, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Answer: yes\r\n\r\nok")
		return true
	})
	fe, direct := directFrontend(t, addr, 0)
	var hints []string
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, http.StatusText(code)+": "+h.Get("Link"))
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fe.URL+"/x", nil)
	res, err := h2cClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || string(body) != "ok" || res.Header.Get("X-Answer") != "yes" || res.ContentLength != 2 {
		t.Fatalf("answer %d %q %v %v", res.StatusCode, body, res.Header, err)
	}
	if len(hints) != 1 || hints[0] != "Early Hints: </style.css>; rel=preload" {
		t.Fatalf("informational answers seen: %q", hints)
	}
	if direct.Load() != 1 {
		t.Fatalf("forward.direct served %d requests, want 1", direct.Load())
	}
}
