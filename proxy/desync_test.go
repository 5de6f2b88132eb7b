package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Regression tests for the fast path's desynchronisation bugs (issue 15),
// one named test per class, asserting the behaviour /work/shared-notes/
// http-rules.md specifies. Each runs a fast-path Server in front of a
// recBackend (rawbackend_test.go) that records every byte it receives.

// hiddenRequest is a whole request placed inside request bodies: a gateway
// that loses its place in a body forwards it as a request of its own.
const hiddenRequest = "GET /hidden HTTP/1.1\r\nHost: example.net\r\n\r\n"

// smugglingBody returns n bytes of body in which hiddenRequest recurs.
func smugglingBody(n, seed int) string {
	var b strings.Builder
	for i := seed; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%07d\r\n\r\n%s", i, hiddenRequest)
	}
	return b.String()[:n]
}

// carrierBody returns n bytes of runs of empty lines each followed by
// hiddenRequest: a parser landing anywhere in it at an even offset reads
// empty lines, then the hidden request.
func carrierBody(n, seed int) string {
	run := strings.Repeat("\r\n", 8+seed) + hiddenRequest
	return strings.Repeat(run, n/len(run)+1)[:n]
}

// pipelined is one request of a pipeline.
type pipelined struct {
	method, target, body string
	chunk                int // > 0: the body goes chunked in chunks of this size; else with a Content-Length
}

func (p pipelined) raw() string {
	head := p.method + " " + p.target + " HTTP/1.1\r\nHost: example.net\r\n"
	switch {
	case p.chunk > 0:
		return head + "Transfer-Encoding: chunked\r\n\r\n" + chunked(p.body, p.chunk)
	case p.body != "":
		return head + "Content-Length: " + strconv.Itoa(len(p.body)) + "\r\n\r\n" + p.body
	}
	return head + "\r\n"
}

// seen is p as seenRequest.String prints it.
func (p pipelined) seen() string {
	return fmt.Sprintf("%s %s body %s", p.method, p.target, formatBody([]byte(p.body)))
}

// getsAfter returns n pipelined GETs named from prefix.
func getsAfter(prefix string, n int) []pipelined {
	gets := make([]pipelined, n)
	for i := range gets {
		gets[i] = pipelined{method: "GET", target: fmt.Sprintf("/%s%d", prefix, i)}
	}
	return gets
}

// runPipeline writes reqs to a fast-path Server in one write and checks
// that each is answered 202, in order, and that the backend received
// exactly reqs, in order, with their bodies, and never /hidden.
func runPipeline(t *testing.T, reqs []pipelined) {
	t.Helper()
	be := newRecBackend(t, cannedScript("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"))
	s := startServer(t, true, ServerConfig{}, be.addr())
	c := dialServer(t, s.addr)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var raw strings.Builder
	for _, r := range reqs {
		raw.WriteString(r.raw())
	}
	wrote := make(chan error, 1)
	go func() { _, err := io.WriteString(c, raw.String()); wrote <- err }()
	for i, r := range reqs {
		m, err := readMessage(c.br, true, r.method)
		if err != nil {
			t.Errorf("answer %d of %d (%s %s): %v", i+1, len(reqs), r.method, r.target, connErr(err))
			break
		}
		if m.statusCode() != 202 {
			t.Errorf("answer %d of %d (%s %s): %q %q, want 202", i+1, len(reqs), r.method, r.target, m.start, formatBody(m.body))
			break
		}
	}
	if err := <-wrote; err != nil {
		t.Errorf("writing the pipeline: %v", err)
	}
	got := be.requestLines()
	for _, l := range got {
		if strings.Contains(l, "/hidden") {
			t.Errorf("the backend received a request smuggled in a body: %s", l)
		}
	}
	want := make([]string, len(reqs))
	for i, r := range reqs {
		want[i] = r.seen()
	}
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Fatalf("the backend received %d requests, want %d; the first difference is request %d:\n got %.300s\nwant %.300s",
				len(got), len(want), i+1, g, w)
		}
	}
}

// Class 1, body bookkeeping: a chunked body larger than the 4 KiB read
// buffer, then in the same write a second chunked POST and 200 GETs. The
// backend must see exactly those 202 requests in order with their bodies
// (never the "GET /hidden" inside the first body) and the client 202
// answers.
func TestSmugglingChunkedBodyPastReadBuffer(t *testing.T) {
	t.Parallel()
	reqs := []pipelined{
		{method: "POST", target: "/one", body: smugglingBody(10<<10, 0), chunk: 1000},
		{method: "POST", target: "/two", body: "second body", chunk: 5},
	}
	// Bodies that carry hidden requests next, so that bytes lost or
	// skipped put the parser inside one of them.
	for i := range 6 {
		reqs = append(reqs, pipelined{method: "POST", target: fmt.Sprintf("/carrier-%d", i), body: carrierBody(1500, i)})
	}
	runPipeline(t, append(reqs, getsAfter("g", 200)...))
}

// Class 1, pending bytes: two chunked POSTs both spanning reads, all in
// one write: reading the 20 KiB first body reads well past its end (the
// second POST and many GETs, more than two read buffers of them); the
// second body, 6000 bytes, ends before those bytes are used up. They must
// not be lost or overwritten when the second body is read: every request
// is forwarded once, in order, and answered.
func TestSmugglingPendingBytesReuse(t *testing.T) {
	t.Parallel()
	reqs := []pipelined{
		{method: "POST", target: "/one", body: smugglingBody(20<<10, 1), chunk: 1000},
		{method: "POST", target: "/two", body: smugglingBody(6000, 2), chunk: 700},
	}
	reqs = append(reqs, getsAfter("a", 120)...)
	reqs = append(reqs, pipelined{method: "PUT", target: "/three", body: "third", chunk: 2})
	reqs = append(reqs, getsAfter("b", 120)...)
	runPipeline(t, reqs)
}

// Class 1, Content-Length variant: bodies larger than the read buffer with
// a Content-Length, then 200 pipelined GETs, all in one write.
func TestSmugglingContentLengthBodyPastReadBuffer(t *testing.T) {
	t.Parallel()
	reqs := []pipelined{
		{method: "POST", target: "/one", body: smugglingBody(10<<10, 3)},
		{method: "POST", target: "/two", body: smugglingBody(5000, 4)},
	}
	runPipeline(t, append(reqs, getsAfter("g", 200)...))
}

// strayResponse is a complete response a backend writes on a keep-alive
// connection after its answer.
const strayResponse = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTRAY!"

// Class 2, upstream response poisoning: a backend that writes bytes after
// a complete response (after a 204 or a 304, after a HEAD answer with the
// body it announced, after fewer body bytes than it sent), in the same
// write or a few ms later, must not get them to the next client: clients
// on other connections get their own answers, never "STRAY!".
func TestUpstreamStrayResponseNeverReachesAnotherClient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, method  string
		answer, extra string // the response, then bytes before the stray one
		status        int
	}{
		{"after 204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", "", 204},
		{"after 304", "GET", "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n", "", 304},
		{"after a HEAD answer with its body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hello", 200},
		{"after a Content-Length shorter than the body", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "--", 200},
	} {
		for _, later := range []bool{false, true} {
			name := tc.name + " in the same write"
			if later {
				name = tc.name + " a few ms later"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				strayWritten := make(chan struct{})
				be := newRecBackend(t, func(_, _ int, r *http.Request, _ []byte, c net.Conn) bool {
					if r.URL.Path != "/trigger" {
						_, err := io.WriteString(c, freshAnswer(r.RequestURI))
						return err == nil
					}
					if later {
						_, _ = io.WriteString(c, tc.answer)
						time.Sleep(5 * time.Millisecond) // the backend's own pace, not synchronisation
						_, _ = io.WriteString(c, tc.extra+strayResponse)
					} else {
						_, _ = io.WriteString(c, tc.answer+tc.extra+strayResponse)
					}
					close(strayWritten)
					return true
				})
				s := startServer(t, true, ServerConfig{}, be.addr())
				first := dialServer(t, s.addr)
				first.send(t, tc.method+" /trigger HTTP/1.1\r\nHost: example.net\r\n\r\n")
				if m := first.response(t, tc.method); m.statusCode() != tc.status {
					t.Errorf("the triggering request got %q, want %d", m.start, tc.status)
				}
				select {
				case <-strayWritten:
				case <-time.After(diffDeadline):
					t.Fatal("the backend did not write its stray response")
				}
				for i := range 4 {
					target := fmt.Sprintf("/victim-%d", i)
					c := dialServer(t, s.addr)
					c.send(t, "GET "+target+" HTTP/1.1\r\nHost: example.net\r\n\r\n")
					m, err := readMessage(c.br, true, "GET")
					if err != nil {
						t.Fatalf("client %d: reading its answer: %v", i, err)
					}
					if m.statusCode() != 200 || string(m.body) != "fresh:"+target {
						t.Errorf("client %d on another connection got %q %q, want 200 %q", i, m.start, m.body, "fresh:"+target)
					}
				}
			})
		}
	}
}

// Class 3, stale upstream connections: a backend that closes each
// keep-alive connection right after its answer (a keep-alive timeout
// without "Connection: close") leaves the gateway's pooled connection
// closed; once its FIN has arrived, a GET, a POST with Content-Length: 0,
// a POST with a body and a PURGE (served by net/http) each get 200 on a
// fresh connection, never 502.
func TestStaleUpstreamConnectionReplaced(t *testing.T) {
	t.Parallel()
	be := newRecBackend(t, func(_, _ int, r *http.Request, _ []byte, c net.Conn) bool {
		_, _ = io.WriteString(c, freshAnswer(r.Method+" "+r.RequestURI))
		return false // closed right after the answer
	})
	s := startServer(t, true, ServerConfig{}, be.addr())
	for i, raw := range []string{
		"GET /prime HTTP/1.1\r\nHost: example.net\r\n\r\n",
		"GET /get HTTP/1.1\r\nHost: example.net\r\n\r\n",
		"POST /empty HTTP/1.1\r\nHost: example.net\r\nContent-Length: 0\r\n\r\n",
		"POST /body HTTP/1.1\r\nHost: example.net\r\nContent-Length: 5\r\n\r\nhello",
		"PURGE /purge HTTP/1.1\r\nHost: example.net\r\n\r\n",
		"GET /again HTTP/1.1\r\nHost: example.net\r\n\r\n",
		"POST /body-again HTTP/1.1\r\nHost: example.net\r\nContent-Length: 5\r\n\r\nhello",
	} {
		// The backend has closed every connection it accepted: the FIN
		// of the one the gateway pooled has reached it.
		waitFor(t, "the backend to close its connections", func() bool { return be.open.Load() == 0 })
		line, _, _ := strings.Cut(raw, " HTTP/1.1")
		c := dialServer(t, s.addr)
		c.send(t, raw)
		m := c.response(t, strings.Fields(line)[0])
		if m.statusCode() != 200 || string(m.body) != "fresh:"+line {
			t.Errorf("request %d (%s) on a pool of closed connections got %q %q, want 200", i, line, m.start, formatBody(m.body))
		}
	}
}

// smuggledGet follows each ambiguous request in the same write.
const smuggledGet = "GET /SMUGGLED HTTP/1.1\r\nHost: example.net\r\n\r\n"

// wantRejected sends raw to a fast-path Server in one write and checks the
// answer is status, the connection closes after it and the backend was
// never contacted.
func wantRejected(t *testing.T, cfg ServerConfig, raw string, status int) {
	t.Helper()
	be := newRecBackend(t, cannedScript(freshAnswer("/any")))
	s := startServer(t, true, cfg, be.addr())
	c := dialServer(t, s.addr)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() { _, _ = io.WriteString(c, raw) }() // may be cut short by the close
	m, err := readMessage(c.br, true, "GET")
	switch {
	case err != nil:
		t.Errorf("reading the answer: %v, want %d", connErr(err), status)
	case m.statusCode() != status:
		t.Errorf("answer %q %q, want %d", m.start, formatBody(m.body), status)
	default:
		c.wantClosed(t)
	}
	if n := be.accepted.Load(); n != 0 {
		t.Errorf("the backend was contacted (%d connections) and received %q", n, be.requestLines())
	}
}

// Class 4, ambiguous request framing: Content-Length with Transfer-Encoding
// in any spelling or position, each followed by a smuggled GET in the same
// write, is answered 400 and the connection closed; the backend sees
// nothing, /SMUGGLED least of all.
func TestAmbiguousFramingRejected(t *testing.T) {
	t.Parallel()
	const start = "POST /x HTTP/1.1\r\nHost: example.net\r\n"
	const body = "\r\n0\r\n\r\n" // the head's end, then the last chunk or 5 bytes
	for _, tc := range []struct{ name, raw string }{
		{"Content-Length then Transfer-Encoding", start + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n" + body},
		{"Transfer-Encoding then Content-Length", start + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n" + body},
		{"lower-case names", start + "content-length: 5\r\ntransfer-encoding: chunked\r\n" + body},
		{"chunked with a trailing space", start + "Content-Length: 5\r\nTransfer-Encoding: chunked \r\n" + body},
		{"Chunked capitalised", start + "Transfer-Encoding: Chunked\r\nContent-Length: 5\r\n" + body},
		{"Transfer-Encoding obs-folded", start + "Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n" + body},
		{"Transfer-Encoding after a bare-LF line", "POST /x HTTP/1.1\r\nHost: example.net\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n" + body},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantRejected(t, ServerConfig{}, tc.raw+smuggledGet, 400)
		})
	}
}

// Class 4, request trailers: Content-Length, Transfer-Encoding and Host in
// a chunked body's trailer section are dropped: the request is served but
// the backend sees none of them, as trailers or as header fields.
func TestForbiddenRequestTrailersDropped(t *testing.T) {
	t.Parallel()
	be := newRecBackend(t, func(_, _ int, r *http.Request, _ []byte, c net.Conn) bool {
		_, err := io.WriteString(c, freshAnswer(r.RequestURI))
		return err == nil
	})
	s := startServer(t, true, ServerConfig{}, be.addr())
	c := dialServer(t, s.addr)
	c.send(t, "POST /t HTTP/1.1\r\nHost: example.net\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"5\r\nhello\r\n0\r\nContent-Length: 77777\r\nTransfer-Encoding: chunked\r\nHost: evil.example\r\nX-Checksum: abc\r\n\r\n")
	if m := c.response(t, "POST"); m.statusCode() != 200 || string(m.body) != "fresh:/t" {
		t.Errorf("answer %q %q, want 200 fresh:/t", m.start, m.body)
	}
	raw := string(be.recorded())
	for _, s := range []string{"77777", "evil.example"} {
		if strings.Contains(raw, s) {
			t.Errorf("the backend received %q from a forbidden trailer field:\n%s", s, raw)
		}
	}
	seen, err := be.requests()
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || string(seen[0].body) != "hello" {
		t.Fatalf("the backend received %v, want one POST /t with body hello", seen)
	}
	r := seen[0].req
	for _, name := range []string{"Content-Length", "Transfer-Encoding", "Host"} {
		if v, ok := r.Trailer[name]; ok {
			t.Errorf("trailer %s: %q forwarded", name, v)
		}
	}
	if r.Host != "example.net" {
		t.Errorf("the backend got Host %q, want example.net", r.Host)
	}
}

// Class 4, underscores: a field whose name, with '_' read as '-', is a
// framing or forwarding field is answered 400, no backend contacted
// (a backend that folds '_' into '-' would frame the body otherwise).
func TestUnderscoreFramingFieldRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, raw string }{
		{"Transfer_Encoding", "POST /x HTTP/1.1\r\nHost: example.net\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggledGet},
		{"Content_Length", "POST /x HTTP/1.1\r\nHost: example.net\r\nContent_Length: 5\r\n\r\n" + smuggledGet},
		{"X_Forwarded_For", "GET /x HTTP/1.1\r\nHost: example.net\r\nX_Forwarded_For: 10.0.0.1\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantRejected(t, ServerConfig{}, tc.raw, 400)
		})
	}
}

// wantBadGateway has a client ask for /bad, whose answer the backend
// script makes malformed, and checks it gets 502 without anything of the
// malformed answer, then that the same client connection gets /next.
func wantBadGateway(t *testing.T, bad string) {
	t.Helper()
	be := newRecBackend(t, func(_, _ int, r *http.Request, _ []byte, c net.Conn) bool {
		if r.URL.Path == "/bad" {
			_, err := io.WriteString(c, bad)
			return err == nil // kept open: the gateway must close it
		}
		_, err := io.WriteString(c, freshAnswer(r.RequestURI))
		return err == nil
	})
	s := startServer(t, true, ServerConfig{}, be.addr())
	c := dialServer(t, s.addr)
	c.send(t, "GET /bad HTTP/1.1\r\nHost: example.net\r\n\r\n")
	m, err := readMessage(c.br, true, "GET")
	if err != nil {
		t.Fatalf("the answer is not a well-formed response (the malformed head was relayed?): %v", err)
	}
	if m.statusCode() != 502 {
		t.Errorf("answer %q, want 502", m.start)
	}
	if strings.Contains(m.start, "Injected") || len(m.values("X-Injected")) > 0 || len(m.values("X-Big")) > 0 {
		t.Errorf("the client received the backend's malformed head: %.100q with fields %.300q", m.start, m.fields)
	}
	c.send(t, "GET /next HTTP/1.1\r\nHost: example.net\r\n\r\n")
	m, err = readMessage(c.br, true, "GET")
	if err != nil {
		t.Fatalf("the next request on the same client connection: %v", err)
	}
	if m.statusCode() != 200 || string(m.body) != "fresh:/next" {
		t.Errorf("the next request got %q %q, want 200 fresh:/next", m.start, m.body)
	}
}

// Class 4, response framing: a bare CR in the status line or in a field
// (a header injection for a client splitting on CR) and whitespace before
// a colon make the response 502; the client never sees the injected field
// and its connection stays usable.
func TestResponseBareCRAndSpaceBeforeColon502(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, raw string }{
		{"bare CR in the status line", "HTTP/1.1 200 OK\rX-Injected: 1\r\nContent-Length: 5\r\n\r\nhello"},
		{"bare CR in a field", "HTTP/1.1 200 OK\r\nX-A: 1\rX-Injected: 1\r\nContent-Length: 5\r\n\r\nhello"},
		{"space before the colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantBadGateway(t, tc.raw)
		})
	}
}

// Class 5, response limit: a response head of 24 KiB (over 20 KiB) is
// answered 502 and the client connection kept.
func TestResponseHeadTooLarge502(t *testing.T) {
	t.Parallel()
	wantBadGateway(t, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("b", 24<<10)+"\r\nContent-Length: 5\r\n\r\nhello")
}

// Class 5, request limits at the defaults: a 64 KiB field or a 1000 KiB one
// (answered without waiting for all of it), 5,000 small fields (a head under
// MaxHeaderBytes), a 64 KiB target, a Content-Length past MaxBodyBytes and
// an asterisk-form target are rejected (431, 431, 431, 414, 413, 400) with
// the connection closed and no backend contacted.
func TestRequestLimits(t *testing.T) {
	t.Parallel()
	head := func(target string, fields ...string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: example.net\r\n" + strings.Join(fields, "") + "\r\n"
	}
	for _, tc := range []struct {
		name   string
		raw    string
		status int
	}{
		{"64 KiB field", head("/x", "X-Big: "+strings.Repeat("b", 64<<10)+"\r\n"), 431},
		{"1000 KiB field", head("/x", "X-Big: "+strings.Repeat("b", 1000<<10)+"\r\n"), 431},
		{"5000 small fields", head("/x", strings.Repeat("X: 1\r\n", 5000)), 431},
		{"64 KiB target", head("/" + strings.Repeat("t", 64<<10)), 414},
		{"Content-Length past MaxBodyBytes", "POST /x HTTP/1.1\r\nHost: example.net\r\nContent-Length: 100000000000000000\r\n\r\n", 413},
		{"asterisk-form target", "OPTIONS * HTTP/1.1\r\nHost: example.net\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantRejected(t, ServerConfig{}, tc.raw, tc.status)
		})
	}
}

// Class 5, the other side of the limits: a head just under them (a 4 KiB
// target, 90 fields, about 20 KiB in all) is forwarded whole and answered
// 200.
func TestRequestLimitsHeadJustUnderServed(t *testing.T) {
	t.Parallel()
	be := newRecBackend(t, func(_, _ int, r *http.Request, _ []byte, c net.Conn) bool {
		_, err := io.WriteString(c, freshAnswer("big head"))
		return err == nil
	})
	s := startServer(t, true, ServerConfig{}, be.addr())
	target := "/" + strings.Repeat("t", 4<<10-1)
	var fields strings.Builder
	for i := range 89 { // and Host: 90
		fmt.Fprintf(&fields, "X-Field-%02d: %s\r\n", i, strings.Repeat("v", 210))
	}
	raw := "GET " + target + " HTTP/1.1\r\nHost: example.net\r\n" + fields.String() + "\r\n"
	c := dialServer(t, s.addr)
	c.send(t, raw)
	if m := c.response(t, "GET"); m.statusCode() != 200 {
		t.Fatalf("a head of %d bytes with 90 fields got %q %q, want 200", len(raw), m.start, formatBody(m.body))
	}
	seen, err := be.requests()
	if err != nil || len(seen) != 1 {
		t.Fatalf("the backend received %v (%v), want one request", seen, err)
	}
	if r := seen[0].req; r.RequestURI != target || len(r.Header) < 89 {
		t.Errorf("the backend received a target of %d bytes and %d fields, want %d and at least 89",
			len(r.RequestURI), len(r.Header), len(target))
	}
}

// drip writes to a connection at a fixed pace until stopped or the
// connection fails.
func drip(c net.Conn, piece string, every time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if _, err := io.WriteString(c, piece); err != nil {
				return
			}
		}
	}
}

// Class 6, slow buffered bodies: 20 clients send a POST head announcing
// 4 KiB and then a byte every 100 ms. With BodyTimeout 300 ms each is
// answered 408 (or closed) within 3 s, no backend connection is held for
// them, and a GET during the attack is answered at once.
func TestSlowRequestBodyDoesNotPinBackend(t *testing.T) {
	t.Parallel()
	be := newRecBackend(t, func(_, _ int, r *http.Request, _ []byte, c net.Conn) bool {
		_, err := io.WriteString(c, freshAnswer(r.RequestURI))
		return err == nil
	})
	s := startServer(t, true, ServerConfig{BodyTimeout: 300 * time.Millisecond}, be.addr())
	var maxOpen atomic.Int64
	watching := make(chan struct{})
	var watchWG sync.WaitGroup
	watchWG.Go(func() {
		for {
			maxOpen.Store(max(maxOpen.Load(), be.open.Load()))
			select {
			case <-watching:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	const clients = 20
	stop := make(chan struct{})
	results := make(chan string, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		c := dialServer(t, s.addr)
		_ = c.SetDeadline(start.Add(3 * time.Second))
		c.send(t, fmt.Sprintf("POST /slow-%d HTTP/1.1\r\nHost: example.net\r\nContent-Length: 4096\r\n\r\n", i))
		wg.Go(func() { drip(c, "a", 100*time.Millisecond, stop) })
		wg.Go(func() {
			m, err := readMessage(c.br, true, "POST")
			switch {
			case err != nil && connErr(err) == "closed":
				results <- ""
			case err != nil:
				results <- fmt.Sprintf("client %d: %s after %v", i, connErr(err), time.Since(start).Round(time.Millisecond))
			case m.statusCode() != 408:
				results <- fmt.Sprintf("client %d: %q, want 408", i, m.start)
			default:
				results <- ""
			}
		})
	}
	g := dialServer(t, s.addr)
	_ = g.SetDeadline(time.Now().Add(time.Second))
	g.send(t, "GET /during HTTP/1.1\r\nHost: example.net\r\n\r\n")
	if m, err := readMessage(g.br, true, "GET"); err != nil || m.statusCode() != 200 {
		t.Errorf("a GET during the attack: %v, want 200 within 1s", err)
	}
	for range clients {
		if r := <-results; r != "" {
			t.Error(r)
		}
	}
	close(stop)
	wg.Wait()
	close(watching)
	watchWG.Wait()
	if a, m := be.accepted.Load(), maxOpen.Load(); a > 2 || m > 2 {
		t.Errorf("the backend accepted %d connections, %d open at once, during the attack; want at most 2", a, m)
	}
	for _, l := range be.requestLines() {
		if strings.Contains(l, "/slow-") {
			t.Errorf("a request whose body never came whole reached the backend: %.100s", l)
		}
	}
}

// Class 6, slow streamed bodies: a 200 KiB body (streamed, over 64 KiB)
// sent at 10 KiB/s, under MinBodyRate 100 KiB/s, ends the exchange: the
// backend's connection is closed within BodyTimeout and a margin.
func TestSlowRequestStreamedBodyReleasesBackend(t *testing.T) {
	t.Parallel()
	const bodyTimeout = 300 * time.Millisecond
	be := newRecBackend(t, func(_, _ int, r *http.Request, _ []byte, c net.Conn) bool {
		_, err := io.WriteString(c, freshAnswer(r.RequestURI))
		return err == nil
	})
	s := startServer(t, true, ServerConfig{BodyTimeout: bodyTimeout, MinBodyRate: 100 << 10}, be.addr())
	c := dialServer(t, s.addr)
	start := time.Now()
	c.send(t, "POST /stream HTTP/1.1\r\nHost: example.net\r\nContent-Length: 204800\r\n\r\n")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); _ = c.Close(); wg.Wait() }()
	wg.Go(func() { drip(c, strings.Repeat("s", 1<<10), 100*time.Millisecond, stop) })
	var answered atomic.Bool
	wg.Go(func() {
		_, _ = readMessage(c.br, true, "POST") // an answer or the close
		answered.Store(true)
	})
	deadline := start.Add(bodyTimeout + 1500*time.Millisecond)
	for !(be.open.Load() == 0 && (be.accepted.Load() > 0 || answered.Load())) {
		if time.Now().After(deadline) {
			t.Fatalf("%v after the head the backend still holds %d connection(s) (accepted %d) for a body at 10 KiB/s; want it closed within BodyTimeout (%v) and a margin",
				time.Since(start).Round(time.Millisecond), be.open.Load(), be.accepted.Load(), bodyTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("the backend's connection was let go %v after the head", time.Since(start).Round(time.Millisecond))
}

// readUntil reads from c until the bytes read end with want, or fails at
// the connection's deadline; it returns what was read.
func readUntil(t *testing.T, c *clientConn, want string) string {
	t.Helper()
	var got []byte
	for !strings.HasSuffix(string(got), want) {
		b, err := c.br.ReadByte()
		if err != nil {
			t.Fatalf("waiting for %q: %v after %q", want, err, got)
		}
		got = append(got, b)
	}
	return string(got)
}

// Class 4, response framing: a chunk-size line the endpoint wrote with
// white space or an extension never reaches the client: each size line is
// written anew, so that the client's parser cannot read the framing
// otherwise than the gateway did.
func TestResponseChunkLinesReframed(t *testing.T) {
	t.Parallel()
	be := newRecBackend(t, func(_, _ int, r *http.Request, _ []byte, c net.Conn) bool {
		_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"5 ;a=\"x;y\"\r\nhello\r\n6;b\r\n world\r\n0;end\r\nX-T: 1\r\n\r\n")
		return err == nil
	})
	s := startServer(t, true, ServerConfig{}, be.addr())
	c := dialServer(t, s.addr)
	c.send(t, "GET /c HTTP/1.1\r\nHost: example.net\r\n\r\n")
	got := readUntil(t, c, "\r\n0\r\nX-T: 1\r\n\r\n")
	if _, body, _ := strings.Cut(got, "\r\n\r\n"); body != "5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n" {
		t.Errorf("the client got the body framed as %q, want the size lines written anew", body)
	}
}

// Class 4: an endpoint that sends informational answers without end (a
// 103 flood) gets 502 after max1xx of them, as from net/http's transport;
// the client connection stays usable.
func TestResponseInformationalFlood502(t *testing.T) {
	t.Parallel()
	flood := strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", 50)
	be := newRecBackend(t, func(_, _ int, r *http.Request, _ []byte, c net.Conn) bool {
		if r.URL.Path == "/flood" {
			_, _ = io.WriteString(c, flood+"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return false
		}
		_, err := io.WriteString(c, freshAnswer(r.RequestURI))
		return err == nil
	})
	s := startServer(t, true, ServerConfig{}, be.addr())
	c := dialServer(t, s.addr)
	c.send(t, "GET /flood HTTP/1.1\r\nHost: example.net\r\n\r\n")
	informational := 0
	m := c.response(t, "GET")
	for ; m.statusCode() == 103 && informational <= 50; m = c.response(t, "GET") {
		informational++
	}
	if m.statusCode() != 502 || informational != max1xx {
		t.Errorf("the client got %d informational answers, then %q; want %d, then 502", informational, m.start, max1xx)
	}
	c.send(t, "GET /next HTTP/1.1\r\nHost: example.net\r\n\r\n")
	if m := c.response(t, "GET"); m.statusCode() != 200 || string(m.body) != "fresh:/next" {
		t.Errorf("the next request got %q %q, want 200 fresh:/next", m.start, m.body)
	}
}

// A client that half-closes after a request handed off to net/http is
// gone for net/http (it cancels the request): the gateway closes the
// connection without an answer, as the fast path does, and records 499. It
// sent an empty 200 the backend never wrote.
func TestHandoffHalfCloseGetsNoMadeUpAnswer(t *testing.T) {
	t.Parallel()
	be := newRecBackend(t, func(_, _ int, r *http.Request, _ []byte, c net.Conn) bool {
		// Hold the answer until the gateway gives the request up.
		_ = c.SetReadDeadline(time.Now().Add(diffDeadline))
		_, _ = io.Copy(io.Discard, c)
		return false
	})
	s := startServer(t, true, ServerConfig{}, be.addr())
	c := dialServer(t, s.addr)
	c.send(t, "PURGE /cache/x HTTP/1.1\r\nHost: example.net\r\n\r\n")
	if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c.br)
	if err != nil {
		t.Fatalf("reading the answer: %v after %q", err, got)
	}
	if len(got) != 0 {
		t.Errorf("the half-closed client got %q, want the connection closed without an answer", got)
	}
}

// A handed-off request is answered with "Connection: close" even when an
// informational answer went first: ReverseProxy clears the header map
// after passing a 100 Continue on, which dropped the field, and the client
// then reused a connection the gateway was closing (a reset, now and then,
// in TestReverseProxyExpectContinue).
func TestHandoffCloseSurvivesInformationalAnswer(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // net/http sends 100 Continue first
		_, _ = w.Write(body)
	})
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	c := dialServer(t, strings.TrimPrefix(fe.URL, "http://"))
	c.send(t, "PUT /x HTTP/1.1\r\nHost: example.net\r\nExpect: 100-continue\r\nContent-Length: 7\r\n\r\n")
	if m := c.response(t, "PUT"); m.statusCode() != http.StatusContinue {
		t.Fatalf("first answer %q, want 100 Continue", m.start)
	}
	c.send(t, "payload")
	m := c.response(t, "PUT")
	if m.statusCode() != 200 || string(m.body) != "payload" {
		t.Fatalf("final answer %q %q, want 200 payload", m.start, m.body)
	}
	if v := m.values("Connection"); len(v) != 1 || v[0] != "close" {
		t.Errorf("the final answer's Connection is %q, want close: the client would reuse a connection the gateway closes", v)
	}
}

// An endpoint that stalls inside a response — in a trailer line after the
// last chunk, in a chunk-size line, before a chunk's CRLF — does not hold
// back what was relayed before: the head and the whole chunks reach the
// client before the relay waits for the endpoint (FuzzParseResponse found
// the fast path sending nothing while net/http sent the head).
func TestStalledEndpointDoesNotHoldBackTheHead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, answer, want string }{
		{"in a trailer line", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Tr", "3\r\nabc\r\n0\r\n"},
		{"in a chunk-size line", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1", "3\r\nabc\r\n"},
		{"before a chunk's CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r", "3\r\nabc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			defer close(release)
			be := newRecBackend(t, func(_, _ int, r *http.Request, _ []byte, c net.Conn) bool {
				_, _ = io.WriteString(c, tc.answer)
				select {
				case <-release:
				case <-time.After(diffDeadline):
				}
				return false
			})
			s := startServer(t, true, ServerConfig{}, be.addr())
			c := dialServer(t, s.addr)
			c.send(t, "GET /s HTTP/1.1\r\nHost: example.net\r\n\r\n")
			got := readUntil(t, c, "\r\n\r\n"+tc.want)
			if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") {
				t.Errorf("the client got %q", got)
			}
		})
	}
}
