package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// h2Side is a Server serving h2c, whose one route's transport sends
// bodiless HTTP/2 requests with roundTripH1, or (std) through net/http's
// transport only.
type h2Side struct {
	name string
	addr string
	tr   *Transport
}

func newH2Side(t testing.TB, std bool, backend string) *h2Side {
	t.Helper()
	return newH2SideOn(t, std, h2ServerUnderTest, backend)
}

// newH2SideOn is newH2Side with the given HTTP/2 server.
func newH2SideOn(t testing.TB, std bool, server HTTP2Server, backend string) *h2Side {
	t.Helper()
	name := map[bool]string{false: "roundTripH1", true: "net/http's transport"}[std]
	tr := NewTransport(TransportConfig{DialTimeout: 2 * time.Second, StdTransportOnly: std})
	trackStdDials(tr)
	t.Cleanup(tr.CloseIdleConnections)
	up := &Upstream{Name: "svc", Transport: tr, PassHostHeader: true}
	rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", up, backend)})
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(NewHandler(rt, Options{}), ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: server})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		select {
		case <-served:
		case <-time.After(diffDeadline):
			t.Errorf("%s: Serve did not return after Close", name)
		}
	})
	return &h2Side{name: name, addr: ln.Addr().String(), tr: tr}
}

// pooled reports how many endpoint pools the fast path's side of the
// transport holds: roundTripH1 made one if it sent anything.
func (s *h2Side) pooled() int {
	s.tr.mu.Lock()
	defer s.tr.mu.Unlock()
	return len(s.tr.pools)
}

// h2cClient speaks HTTP/2 with prior knowledge, on a connection of its own
// per test.
func h2cClient(t testing.TB) *http.Client {
	t.Helper()
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       diffDeadline,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// incomplete is h2Exchange's description of an answer the client did not
// get whole: whether its head came before the stream was reset depends on
// timing.
const incomplete = "incomplete answer\n"

// h2Exchange sends one request and describes what the client got: status,
// fields (sorted; a Date the gateway made is set aside), body, trailers,
// or incomplete.
func h2Exchange(t testing.TB, c *http.Client, method, url string) string {
	t.Helper()
	var reqBody io.Reader
	if method == http.MethodPost {
		reqBody = strings.NewReader("posted body")
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, reqBody)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "gateway.test" // the same on both sides
	req.Header.Set("X-Client", "h2")
	res, err := c.Do(req)
	if err != nil {
		return incomplete
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return incomplete
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d\n", res.Proto, res.StatusCode)
	fields := func(h http.Header) {
		for _, k := range slices.Sorted(maps.Keys(h)) {
			v := h[k]
			if k == "Date" && !slices.Contains(v, backendDate) {
				v = []string{"(the gateway's)"}
			}
			fmt.Fprintf(&b, "  %s: %q\n", k, v)
		}
	}
	fields(res.Header)
	switch {
	case len(body) > 256:
		fmt.Fprintf(&b, "body of %d bytes, sha256 %x\n", len(body), sha256.Sum256(body))
	default:
		fmt.Fprintf(&b, "body %q\n", body)
	}
	if len(res.Trailer) > 0 {
		b.WriteString("trailer\n")
		fields(res.Trailer)
	}
	return b.String()
}

// diffH2Sides sends GET, HEAD and a POST with a body from an HTTP/2
// client through ref and cand, to the backend behaving as bh (which
// records what it got in log): the backend must receive the same requests
// and the client the same answers, except that cand answers 502 where
// bh's answer to a GET or HEAD is one the fast path refuses (a POST goes
// through net/http's transport on both sides).
func diffH2Sides(t *testing.T, bh responseBehaviour, log *requestLog, ref, cand *h2Side, refName, candName string) {
	t.Helper()
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			var got, backend [2]string
			for i, side := range []*h2Side{ref, cand} {
				got[i] = h2Exchange(t, h2cClient(t), method, "http://"+side.addr+"/x?q=1")
				backend[i] = log.take()
			}
			if bh.badResponse && method != http.MethodPost {
				if !strings.HasPrefix(got[1], "HTTP/2.0 502\n") {
					t.Errorf("%s passed on an answer the fast path refuses:\n%s", candName, got[1])
				}
				return
			}
			if bh.emptyFraming {
				// See diffCase.emptyFraming: the reference's framing of an
				// empty close-delimited body depends on timing.
				for i := range got {
					got[i] = strings.Replace(got[i], "  Content-Length: [\"0\"]\n", "", 1)
				}
			}
			if got[0] != got[1] {
				t.Errorf("the client got different answers (- %s, + %s):\n%s", refName, candName, lineDiff(got[0], got[1]))
			}
			if backend[0] != backend[1] {
				t.Errorf("the backend got different requests (- %s, + %s):\n%s", refName, candName, lineDiff(backend[0], backend[1]))
			}
		})
	}
}

// TestRoundTripH1Diff sends GET and HEAD from an HTTP/2 client through two
// gateways, one sending them with roundTripH1 and one through net/http's
// transport, to a backend answering in each of responseBehaviours' ways:
// the backend must receive the same requests and the client the same
// answers, but where the fast path's response rules refuse what net/http
// passes on (502, as for HTTP/1.1 clients).
func TestRoundTripH1Diff(t *testing.T) {
	raw := func(name, answer string) responseBehaviour {
		return responseBehaviour{name: name, respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(answer)
			return false
		}}
	}
	chunkedHead := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
	// Broken body framing, which the head passes: both transports must
	// cut the answer.
	broken := []responseBehaviour{
		raw("chunk data longer than its size", chunkedHead+"5\r\nhelloXX\r\n0\r\n\r\n"),
		raw("chunk data longer than its size, then a chunk", chunkedHead+"5\r\nhelloXX5\r\nworld\r\n0\r\n\r\n"),
		raw("chunk size not hex", chunkedHead+"5x\r\nhello\r\n0\r\n\r\n"),
		raw("chunk size with a sign", chunkedHead+"+5\r\nhello\r\n0\r\n\r\n"),
		raw("chunked cut in a chunk", chunkedHead+"5\r\nhel"),
		raw("chunked cut before the last chunk", chunkedHead+"5\r\nhello\r\n"),
		raw("trailer line ending in a bare LF", chunkedHead+"5\r\nhello\r\n0\r\nX-T: 1\n\r\n"),
		raw("trailer line without a colon", chunkedHead+"5\r\nhello\r\n0\r\nX-T 1\r\n\r\n"),
	}
	for _, bh := range append(responseBehaviours(), broken...) {
		t.Run(bh.name, func(t *testing.T) {
			log := &requestLog{}
			be := newScriptedBackend(t, "b", log, bh.respond)
			lean, std := newH2Side(t, false, be.addr()), newH2Side(t, true, be.addr())
			diffH2Sides(t, bh, log, std, lean, "net/http's transport", "roundTripH1")
			if lean.pooled() == 0 || std.pooled() != 0 {
				t.Errorf("roundTripH1 was not what sent the requests (pools: %d with it, %d without)", lean.pooled(), std.pooled())
			}
		})
	}
}

// TestRoundTripH1Eligible: what roundTripH1 leaves to net/http's transport.
func TestRoundTripH1Eligible(t *testing.T) {
	tr := NewTransport(TransportConfig{})
	h2 := func(method string, edit func(*http.Request)) *http.Request {
		r, err := http.NewRequest(method, "http://127.0.0.1:1/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
		if edit != nil {
			edit(r)
		}
		return r
	}
	for _, c := range []struct {
		name string
		req  *http.Request
		want bool
	}{
		{"HTTP/2 GET", h2("GET", nil), true},
		{"HTTP/2 HEAD", h2("HEAD", nil), true},
		{"HTTP/1.1 GET (a hand-off)", h2("GET", func(r *http.Request) { r.ProtoMajor, r.ProtoMinor = 1, 1 }), false},
		{"with a body", h2("GET", func(r *http.Request) { r.Body, r.ContentLength = io.NopCloser(strings.NewReader("x")), 1 }), false},
		{"POST", h2("POST", nil), false},
		{"CONNECT", h2("CONNECT", nil), false},
		{"with trailers", h2("GET", func(r *http.Request) { r.Trailer = http.Header{"X-T": nil} }), false},
		{"field name with a space", h2("GET", func(r *http.Request) { r.Header["X Y"] = []string{"1"} }), false},
		{"field value with a CR", h2("GET", func(r *http.Request) { r.Header.Set("X-A", "1\r\nX-B: 2") }), false},
		{"Host with a slash", h2("GET", func(r *http.Request) { r.Host = "a/b" }), false},
	} {
		if _, got := tr.h1Target(c.req); got != c.want {
			t.Errorf("%s: h1Target = %v, want %v", c.name, got, c.want)
		}
	}
	for _, cfg := range []TransportConfig{{StdTransportOnly: true}, {Protocol: UpstreamH2C}} {
		if _, ok := NewTransport(cfg).h1Target(h2("GET", nil)); ok {
			t.Errorf("%+v: h1Target took an HTTP/2 GET", cfg)
		}
	}
}

// TestRoundTripH1ClientGone: an HTTP/2 client that gives up on a request
// the backend has not answered ends the exchange, and the connection the
// late answer comes on is closed, not pooled: the next request gets its
// own answer.
func TestRoundTripH1ClientGone(t *testing.T) {
	release := make(chan struct{})
	got := make(chan string, 4)
	log := &requestLog{}
	be := newScriptedBackend(t, "b", log, func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		target := strings.Fields(req.start)[1]
		got <- target
		if target == "/first" {
			select {
			case <-release:
			case <-time.After(diffDeadline):
			}
		}
		answer(w, req, "200 OK", target)
		return true
	})
	t.Cleanup(func() { close(release) }) // before the backend's cleanup waits for it
	side := newH2Side(t, false, be.addr())
	c := h2cClient(t)

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+side.addr+"/first", nil)
	if err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	go func() {
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
		}
		failed <- err
	}()
	select {
	case <-got: // the backend holds /first
	case <-time.After(diffDeadline):
		t.Fatal("the backend did not receive /first")
	}
	cancel()
	if err := <-failed; err == nil {
		t.Fatal("the cancelled request succeeded")
	}
	if body := h2Exchange(t, c, http.MethodGet, "http://"+side.addr+"/second"); !strings.Contains(body, `body "/second"`) {
		t.Fatalf("the request after a cancelled one got:\n%s", body)
	}
}

// TestNoSniffAfterEarlyHints: an answer without Content-Type gets none from
// the gateway after an informational answer either (ReverseProxy clears
// the header map after passing a 1xx on, and with it the Handler's mark
// that keeps net/http from sniffing a type), over HTTP/2 with either
// transport and over HTTP/1.1 on the net/http side.
func TestNoSniffAfterEarlyHints(t *testing.T) {
	log := &requestLog{}
	be := newScriptedBackend(t, "b", log, func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		w.WriteString("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n<html>hi</html>")
		return true
	})
	check := func(name, url string, c *http.Client) {
		t.Helper()
		for range 20 { // the 1xx is passed on while the answer is awaited
			desc := h2Exchange(t, c, http.MethodGet, url)
			if !strings.Contains(desc, `body "<html>hi</html>"`) {
				t.Fatalf("%s: got\n%s", name, desc)
			}
			if strings.Contains(desc, "Content-Type") {
				t.Fatalf("%s: the gateway sniffed a type for an answer without one:\n%s", name, desc)
			}
		}
	}
	for _, std := range []bool{false, true} {
		side := newH2Side(t, std, be.addr())
		check("HTTP/2, "+side.name, "http://"+side.addr+"/x", h2cClient(t))
	}
	ref := newDiffSide(t, "net/http", false, Options{}, oneRoute(t, "round_robin", nil, be.addr()))
	check("HTTP/1.1, net/http side", "http://"+ref.addr+"/x", &http.Client{Timeout: diffDeadline})
}
