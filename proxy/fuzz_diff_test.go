package proxy

// Differential fuzzing of the fast path against stock net/http.
//
// Each target runs the same bytes through two gateways built once per fuzz
// target: a proxy.Server with its fast path (zkgate), and the reference, a
// plain net/http.Server whose handler is a stock httputil.ReverseProxy
// (Rewrite: SetURL to the backend; no zkgate code). Each gateway has its own
// raw-socket backend that records what it receives.
//
// FuzzParseRequest: the input is what a client writes on one connection
// before it half-closes. The sequence of requests the fast side's backend
// received (method, target, body, end-to-end fields) must equal the
// reference's, or be a strict prefix of it when the fast side closed the
// client connection after its last answer (a stricter rejection, as in
// /work/shared-notes/http-rules.md). Delivering a request the reference did
// not deliver at that position, or more requests, is a leniency or a
// desync.
//
// FuzzParseResponse: the input is what the backend writes in answer to the
// first request (the connection then stays open; every later request on any
// connection gets the marker response). A client sends GET /a, then GET /b
// on a new connection. The fast side's answer to /a is the reference's
// (status, end-to-end fields, body, trailer, how it ended) or a 502; its
// answer to /b is always the marker: bytes of the first answer must never
// reach another client.
//
// What is normalised away, because it legitimately differs: header order
// (values of one name keep their order), the case of names, hop-by-hop and
// framing fields, forwarding fields, User-Agent and Accept-Encoding (both
// may set them), a response's Date and a Content-Type only one side has
// (net/http sniffs one), and the target's form (zkgate cleans and decodes
// the path; ReverseProxy drops unparsable query parameters, applied to both
// here), request trailers (ReverseProxy does not forward them), and a
// request the fast side answers with an error of its own (no backend
// answer) while keeping the connection: zkgate's Handler rejects some
// well-framed requests net/http takes (an ambiguous escaped path), so the
// fast side's requests must be the reference's in order with at most that
// many left out. And one harness matter: net/http cancels a request's
// context as soon as a read of the client connection meets its end, the
// half-close of a client still awaiting answers included, losing requests
// at random; the reference's handler detaches the request's context from
// that cancellation. (The fast side's hand-offs to net/http keep it: a
// request lost there shows as an error answer or a closed connection,
// which the property allows.)

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zkgate/zkgate/balancer"
)

// fzDeadline bounds every client exchange and every wait of one execution.
const fzDeadline = 2 * time.Second

// fzMarker is the backend's answer to every request but the first of a
// FuzzParseResponse execution.
const fzMarker = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nMARKER"

// fzSerial runs fn on each input of at most limit bytes, one input at a
// time: a target's gateways and their backends serve one execution at once.
func fzSerial(f *testing.F, limit int, fn func(t *testing.T, in []byte)) {
	var mu sync.Mutex
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > limit {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fn(t, in)
	})
}

// --- the two gateways

// fzQuietLog discards the standard logger's output until the target ends:
// net/http's transport logs each unsolicited response it sees.
func fzQuietLog(f *testing.F) {
	w := log.Writer()
	log.SetOutput(io.Discard)
	f.Cleanup(func() { log.SetOutput(w) })
}

func fzListen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}

// fzGateway is one side: its address, how to point it at an execution's
// backend, and how to empty its upstream pool.
type fzGateway struct {
	addr       string
	setBackend func(addr string) error
	closeIdle  func()
	srv        *Server // nil for the reference
}

// fzFastGateway serves a catch-all route on a Server with its fast path.
func fzFastGateway(f *testing.F) *fzGateway {
	return fzRouteGateway(f, true, nil)
}

// fzRouteGateway serves a catch-all route with policies (nil: none) on a
// Server with its fast path on or off.
func fzRouteGateway(f *testing.F, fast bool, policies *Policies) *fzGateway {
	return fzServerGateway(f, ServerConfig{DisableFastPath: !fast}, policies)
}

// fzServerGateway serves a catch-all route with policies (nil: none) on a
// Server with cfg.
func fzServerGateway(f *testing.F, cfg ServerConfig, policies *Policies) *fzGateway {
	fast := !cfg.DisableFastPath
	tr := NewTransport(TransportConfig{DialTimeout: fzDeadline})
	if !fast {
		// net/http's transport pools a connection with an answer's
		// excess bytes on it (a body after a 204), which the next
		// request on it reads — answers running at once too: the
		// poisoning the fast path guards against, and the reason
		// fast_path: false is not for the internet. Not what this
		// target checks.
		tr.Std().DisableKeepAlives = true
	}
	up := &Upstream{Name: "svc", Transport: tr, PassHostHeader: true}
	h := NewHandler(nil, Options{})
	srv := NewServer(h, cfg)
	ln := fzListen(f)
	go func() { _ = srv.Serve(ln) }()
	f.Cleanup(func() {
		_ = srv.Close()
		tr.CloseIdleConnections()
	})
	setBackend := func(addr string) error {
		b, err := balancer.New("round_robin")
		if err != nil {
			return err
		}
		balancer.NewStatic(balancer.Endpoint{ID: addr, Addr: addr, Weight: 1}).Attach(b)
		rt, err := NewRouter([]*Route{{Name: "all", Balancer: b, Upstream: up, Policies: policies}})
		if err != nil {
			return err
		}
		h.SetRouter(rt)
		return nil
	}
	return &fzGateway{addr: ln.Addr().String(), setBackend: setBackend, closeIdle: tr.CloseIdleConnections, srv: srv}
}

// fzRefGateway is the reference: net/http.Server and a stock
// httputil.ReverseProxy.
func fzRefGateway(f *testing.F) *fzGateway {
	var target atomic.Pointer[url.URL]
	tr := &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 16}
	discard := log.New(io.Discard, "", 0)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target.Load()) },
		Transport: tr,
		ErrorLog:  discard,
	}
	// net/http cancels a request's context when a read of the client
	// connection meets its end, even the half-close of a client that
	// awaits its answers: requests would be lost at random. The reference
	// serves every request it parsed. (A context of its own, not
	// WithoutCancel's alone, whose nil Done would make ReverseProxy watch
	// CloseNotify instead.)
	uncancelled := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
		defer cancel()
		rp.ServeHTTP(w, r.WithContext(ctx))
	})
	hs := &http.Server{Handler: uncancelled, ErrorLog: discard}
	ln := fzListen(f)
	go func() { _ = hs.Serve(ln) }()
	f.Cleanup(func() {
		_ = hs.Close()
		tr.CloseIdleConnections()
	})
	setBackend := func(addr string) error {
		u, err := url.Parse("http://" + addr)
		target.Store(u)
		return err
	}
	return &fzGateway{addr: ln.Addr().String(), setBackend: setBackend, closeIdle: tr.CloseIdleConnections}
}

// --- the backend

// fzBackend is a raw-socket endpoint: it reads requests strictly (CRLF,
// no obs-fold), records each, and answers with answer, which reports
// whether the connection stays open.
type fzBackend struct {
	ln     net.Listener
	answer func(bw *bufio.Writer, req *rawMessage) bool
	busy   atomic.Int64 // requests being read or answered

	done chan struct{} // closed when Accept has failed

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	log   []string
}

// fzBackendSeq numbers the backends, to give each its own loopback address.
var fzBackendSeq atomic.Uint32

// fzBackendHost returns the next of 65,024 loopback addresses (127.1.0.1 to
// 127.1.255.254). A run makes thousands of backends, each leaving sockets in
// TIME_WAIT on its port for a minute; on one address they would use up the
// ephemeral port range within a run ("bind: address already in use").
func fzBackendHost() string {
	n := fzBackendSeq.Add(1) % (254 * 256)
	return fmt.Sprintf("127.1.%d.%d", n/254, n%254+1)
}

// newFzBackend starts a backend; each execution has its own, so that a
// request a gateway sends late cannot be taken for one of the next.
func newFzBackend(answer func(bw *bufio.Writer, req *rawMessage) bool) (*fzBackend, error) {
	ln, err := net.Listen("tcp", fzBackendHost()+":0")
	if err != nil {
		return nil, err
	}
	b := &fzBackend{ln: ln, answer: answer, conns: make(map[net.Conn]struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for {
			c, err := b.ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns[c] = struct{}{}
			b.mu.Unlock()
			go b.serve(c)
		}
	}()
	return b, nil
}

// close stops the backend: its listener and every connection.
func (b *fzBackend) close() {
	b.ln.Close()
	<-b.done
	b.closeAll()
}

func (b *fzBackend) addr() string { return b.ln.Addr().String() }

func (b *fzBackend) serve(c net.Conn) {
	defer func() {
		c.Close()
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
	}()
	br, bw := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		_ = c.SetDeadline(time.Time{})
		if _, err := br.Peek(1); err != nil {
			return
		}
		b.busy.Add(1)
		_ = c.SetDeadline(time.Now().Add(fzDeadline))
		req, err := fzReadRequest(br, bw)
		if err != nil {
			if !fzTruncated(err) {
				b.record("unreadable request: " + err.Error() + "\n")
			}
			b.busy.Add(-1)
			return
		}
		b.record(fzFormatRequest(req))
		keep := b.answer(bw, req)
		keep = bw.Flush() == nil && keep && !fzHasToken(req.values("Connection"), "close")
		b.busy.Add(-1)
		if !keep {
			return
		}
	}
}

func (b *fzBackend) record(s string) {
	b.mu.Lock()
	b.log = append(b.log, s)
	b.mu.Unlock()
}

// recorded is the number of requests recorded since the last settle.
func (b *fzBackend) recorded() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.log)
}

// settle waits until no request is being read or answered, and returns the
// requests recorded since the last settle.
func (b *fzBackend) settle() []string {
	deadline := time.Now().Add(fzDeadline / 4)
	for b.busy.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	reqs := b.log
	b.log = nil
	return reqs
}

// closeAll closes every connection and waits until their goroutines end,
// so that nothing of an execution reaches the next one.
func (b *fzBackend) closeAll() {
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	deadline := time.Now().Add(fzDeadline)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		n := len(b.conns)
		b.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// fzReadRequest reads one request as it came, its body decoded; it answers
// "Expect: 100-continue" before reading the body.
func fzReadRequest(br *bufio.Reader, bw *bufio.Writer) (*rawMessage, error) {
	start, err := readLine(br)
	if err != nil {
		return nil, err
	}
	m := &rawMessage{start: start}
	if m.fields, err = readFields(br); err != nil {
		return nil, err
	}
	if fzHasToken(m.values("Expect"), "100-continue") {
		bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := bw.Flush(); err != nil {
			return nil, err
		}
	}
	te, cl := m.values("Transfer-Encoding"), m.values("Content-Length")
	switch {
	case len(te) > 0:
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return nil, fmt.Errorf("request Transfer-Encoding %q", te)
		}
		if len(cl) > 0 {
			return nil, fmt.Errorf("request with Transfer-Encoding and Content-Length %q", cl)
		}
		if m.body, err = io.ReadAll(httputil.NewChunkedReader(br)); err != nil {
			return nil, fmt.Errorf("chunked body: %w", err)
		}
		if m.trailer, err = readFields(br); err != nil {
			return nil, fmt.Errorf("trailer: %w", err)
		}
	case len(cl) > 0:
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if len(cl) != 1 || err != nil || n < 0 || cl[0][0] == '+' {
			return nil, fmt.Errorf("request Content-Length %q", cl)
		}
		m.body = make([]byte, n)
		if _, err := io.ReadFull(br, m.body); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
	}
	return m, nil
}

// fzTruncated reports whether err is a message cut short by a close or a
// reset: a gateway abandoning a request, not one it sent wrong.
func fzTruncated(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.As(err, &ne) && ne.Timeout()
}

func fzHasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// --- normalisation

// fzSkipped are the fields left out of comparisons: hop-by-hop and framing
// fields and those either gateway may set.
var fzSkipped = map[string]bool{
	"Host": true, "Connection": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
	"X-Real-Ip": true, "Forwarded": true, "User-Agent": true, "Accept-Encoding": true,
}

// fzFields are fields as sorted lines: canonical names, values in their
// order within a name, skipped names and skip(name) left out.
func fzFields(b *strings.Builder, indent string, fields []rawField, skip func(string) bool) {
	var kept []rawField
	for _, f := range fields {
		name := textproto.CanonicalMIMEHeaderKey(f.name)
		if fzSkipped[name] || strings.HasPrefix(name, "X-Forwarded-") || skip != nil && skip(name) {
			continue
		}
		kept = append(kept, rawField{name, f.value})
	}
	slices.SortStableFunc(kept, func(x, y rawField) int { return strings.Compare(x.name, y.name) })
	for _, f := range kept {
		fmt.Fprintf(b, "%s%s: %q\n", indent, f.name, f.value)
	}
}

// fzTarget is a request target with its path decoded and cleaned (zkgate
// cleans paths) and its query without unparsable parameters (ReverseProxy
// drops them).
func fzTarget(target string) string {
	p, q, hasQ := strings.Cut(target, "?")
	if strings.HasPrefix(p, "/") {
		if u, err := url.PathUnescape(p); err == nil {
			p = u
		}
		np := path.Clean(p)
		if strings.HasSuffix(p, "/") && np != "/" {
			np += "/"
		}
		p = np
	}
	if !hasQ {
		return p
	}
	return p + "?" + fzCleanQuery(q)
}

// fzCleanQuery is ReverseProxy's cleanQueryParams.
func fzCleanQuery(s string) string {
	reencode := func(s string) string {
		v, _ := url.ParseQuery(s)
		return v.Encode()
	}
	ishex := func(c byte) bool {
		return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencode(s)
		case '%':
			if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
				return reencode(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}

func fzFormatRequest(m *rawMessage) string {
	method, rest, _ := strings.Cut(m.start, " ")
	target, _, _ := strings.Cut(rest, " ")
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", method, fzTarget(target))
	fzFields(&b, "  ", m.fields, nil)
	fmt.Fprintf(&b, "  body: %s\n", formatBody(m.body))
	return b.String()
}

// --- FuzzParseRequest

// fzStatusLine is a status line.
var fzStatusLine = regexp.MustCompile(`^HTTP/1\.[01] (\d{3})`)

// fzClientResult is what a client received on one connection.
type fzClientResult struct {
	// answers are the final answers' status codes, those the gateway
	// made itself (no X-Fz-Req from the backend) marked with "*".
	answers []string
	// own counts the answers the gateway made itself.
	own int
	end string // "closed" (EOF or reset) or the error
	raw []byte // what was received
}

// fzQuiet is how long the fast side's client waits for more answers
// before it half-closes.
const fzQuiet = 10 * time.Millisecond

// fzSend writes in on a new connection to addr, half-closes, and reads
// until the gateway closes. With quiet, the half-close waits until no
// answer byte has come for fzQuiet: net/http, to which the fast path hands
// some requests, cancels a request in flight when a read meets the
// client's end of stream (the reference's handler is shielded from that).
func fzSend(addr string, in []byte, quiet bool) fzClientResult {
	c, err := net.DialTimeout("tcp", addr, fzDeadline)
	if err != nil {
		return fzClientResult{end: "dial: " + err.Error()}
	}
	defer c.Close()
	end := time.Now().Add(fzDeadline)
	_ = c.SetDeadline(end)
	halfClose := func() { _ = c.(*net.TCPConn).CloseWrite() }
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if _, err := c.Write(in); err == nil && !quiet {
			halfClose()
		}
	}()
	var out []byte
	buf := make([]byte, 32<<10)
	for {
		if quiet {
			_ = c.SetReadDeadline(time.Now().Add(fzQuiet))
		}
		n, rerr := c.Read(buf)
		out = append(out, buf[:n]...)
		var ne net.Error
		if quiet && n == 0 && errors.As(rerr, &ne) && ne.Timeout() && time.Now().Before(end) {
			<-wrote
			halfClose()
			quiet = false
			_ = c.SetReadDeadline(end)
			continue
		}
		if rerr != nil {
			if rerr != io.EOF {
				err = rerr
			}
			break
		}
	}
	c.Close()
	<-wrote
	r := fzClientResult{end: "closed", raw: out}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		r.end = connErr(err)
	}
	// The answers are found by their status lines (the bodies, "ok\n" and
	// the gateways' error texts, have none).
	lines := strings.Split(string(out), "\n")
	for i := 0; i < len(lines); i++ {
		m := fzStatusLine.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		code, _ := strconv.Atoi(m[1])
		own := true
		for i++; i < len(lines) && strings.TrimSuffix(lines[i], "\r") != ""; i++ {
			if len(lines[i]) > 9 && strings.EqualFold(lines[i][:9], "X-Fz-Req:") {
				own = false
			}
		}
		switch {
		case code/100 == 1 && code != 101:
		case own:
			r.answers = append(r.answers, m[1]+"*")
			r.own++
		default:
			r.answers = append(r.answers, m[1])
		}
	}
	return r
}

// fzRequestSeeds are requests a client may write, well-formed and not.
func fzRequestSeeds() []string {
	const host = "Host: example.net\r\n"
	get := "GET /a HTTP/1.1\r\n" + host + "\r\n"
	big := strings.Repeat("0123456789abcdef", 320) // 5120 bytes
	return []string{
		get,
		"GET /q?x=1&y=%41;z HTTP/1.1\r\n" + host + "X-One: 1\r\nX-One: 2\r\nCookie: a=b\r\n\r\n",
		get + "GET /b HTTP/1.1\r\n" + host + "\r\n" + "HEAD /c HTTP/1.1\r\n" + host + "\r\n",
		"HEAD /h HTTP/1.1\r\n" + host + "\r\n" + get,
		"POST /p HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello" + get,
		"PUT /p HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n" + get,
		"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" + get,
		"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5;ext=1;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n" + get,
		"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n0\r\nX-T: t\r\n\r\n" + get,
		"POST /s HTTP/1.1\r\n" + host + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG" + get,
		"POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n" + get,
		"POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked \r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
		"POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get,
		"POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get,
		"POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get,
		"POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get,
		"POST /s HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc" + get,
		"POST /s HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 10\r\n\r\nabc" + get,
		"POST /s HTTP/1.1\r\n" + host + "Content-Length: 3, 3\r\n\r\nabc" + get,
		"POST /s HTTP/1.1\r\n" + host + "Content-Length: +3\r\n\r\nabc" + get,
		"POST /s HTTP/1.1\r\n" + host + "Content-Length: 003\r\n\r\nabc" + get,
		"GET /f HTTP/1.1\r\n" + host + "X-Fold: a\r\n b\r\n\r\n" + get,
		"POST /f HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + get,
		"GET /lf HTTP/1.1\n" + "Host: example.net\nX-A: 1\n\n" + get,
		"POST /lf HTTP/1.1\r\n" + host + "X-A: 1\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + get,
		"GET /cr HTTP/1.1\r\n" + host + "X-A: 1\rX-B: 2\r\n\r\n" + get,
		"GET /cr\r HTTP/1.1\r\n" + host + "\r\n" + get,
		"POST /sp HTTP/1.1\r\n" + host + "Content-Length : 5\r\n\r\nhello" + get,
		"POST /sp HTTP/1.1\r\n" + host + "Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n" + get,
		"POST /u HTTP/1.1\r\n" + host + "Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + get,
		"GET /nul HTTP/1.1\r\n" + host + "X-A: a\x00b\r\n\r\n" + get,
		"GET http://example.net/abs?x=1 HTTP/1.1\r\n" + host + "\r\n" + get,
		"OPTIONS * HTTP/1.1\r\n" + host + "\r\n" + get,
		"OPTIONS /o HTTP/1.1\r\n" + host + "\r\n" + get,
		"GET /10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /10b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get,
		"POST /10 HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get,
		"GET /nohost HTTP/1.1\r\n\r\n" + get,
		"GET /twohost HTTP/1.1\r\n" + host + host + "\r\n" + get,
		"POST /e HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello" + get,
		"GET /ws HTTP/1.1\r\n" + host + "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" + get,
		"PURGE /cache HTTP/1.1\r\n" + host + "\r\n" + get,
		"get /lower HTTP/1.1\r\n" + host + "\r\n" + get,
		"GET /v HTTP/1.2\r\n" + host + "\r\n" + get,
		"GET /v HTTP/2.0\r\n" + host + "\r\n" + get,
		"\r\n" + get,
		"GET /huge HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("x", 40<<10) + "\r\n\r\n" + get,
		"GET /mid HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("y", 5000) + "\r\n\r\n" + get,
		"GET /a%2Fb/../c/./d//e?x HTTP/1.1\r\n" + host + "\r\n" + get,
		"GET /%2e%2e/x HTTP/1.1\r\n" + host + "\r\n" + get,
		"POST /bigc HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n", len(big), big) + "0\r\n\r\n" +
			"POST /next HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nxyz" + get,
		"POST /bigcl HTTP/1.1\r\n" + host + "Content-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big + get,
		"POST /bad HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n" + get,
		"POST /bad HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n" + get,
		"POST /bad HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n" + get,
		"POST /short HTTP/1.1\r\n" + host + "Content-Length: 10\r\n\r\nabc",
		"DELETE /d HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\nhi" + get,
		"GET /conn HTTP/1.1\r\n" + host + "Connection: X-Drop, close\r\nX-Drop: 1\r\nX-Keep: 2\r\n\r\n" + get,
		"GET /te HTTP/1.1\r\n" + host + "TE: trailers\r\nProxy-Connection: keep-alive\r\n\r\n" + get,
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range fzRequestSeeds() {
		f.Add([]byte(s))
	}
	fast, ref := fzFastGateway(f), fzRefGateway(f)
	fzSerial(f, 256<<10, func(t *testing.T, in []byte) {
		var fastC, refC fzClientResult
		var fastR, refR []string
		var wg sync.WaitGroup
		for _, side := range []struct {
			g     *fzGateway
			c     *fzClientResult
			r     *[]string
			quiet bool
		}{{fast, &fastC, &fastR, true}, {ref, &refC, &refR, false}} {
			var b *fzBackend
			b, err := newFzBackend(func(bw *bufio.Writer, req *rawMessage) bool {
				answer(bw, req, "200 OK", "ok\n", "X-Fz-Req: "+strconv.Itoa(b.recorded()))
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := side.g.setBackend(b.addr()); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				*side.c = fzSend(side.g.addr, in, side.quiet)
				*side.r = b.settle()
				side.g.closeIdle()
				b.close()
			})
		}
		wg.Wait()

		// The fast side's requests must be the reference's in order, some
		// left out: each left-out one answered by the fast side itself (a
		// stricter rule; the connection may stay open when the framing was
		// sound), or the ones after its last when it closed the connection.
		var problem string
		j, skipped := 0, 0
		for i, r := range fastR {
			for j < len(refR) && refR[j] != r {
				j++
				skipped++
			}
			if j == len(refR) {
				problem = fmt.Sprintf("the fast path delivered request %d, which the reference did not deliver after the ones before", i+1)
				break
			}
			j++
		}
		switch {
		case problem != "":
		case skipped > fastC.own:
			problem = fmt.Sprintf("the fast path left out %d of the reference's requests between the ones it delivered and answered only %d requests itself",
				skipped, fastC.own)
		case j < len(refR) && fastC.end != "closed":
			problem = fmt.Sprintf("the fast path delivered %d of the reference's %d requests and did not close the connection (%s)",
				len(fastR), len(refR), fastC.end)
		}
		if problem != "" {
			t.Fatalf("%s\ninput: %s\n%s\nreference answers %v, then %s; fast path answers %v, then %s (* the gateway's own)\nbackend requests (- reference, + fast path):\n%s\nthe fast path's client received %s",
				problem, fzQuote(in), fzShowInput(in), refC.answers, refC.end, fastC.answers, fastC.end,
				lineDiff(fzNumbered(refR), fzNumbered(fastR)), fzQuote(fastC.raw))
		}
	})
}

func fzNumbered(reqs []string) string {
	var b strings.Builder
	for i, r := range reqs {
		fmt.Fprintf(&b, "#%d %s", i+1, r)
	}
	return b.String()
}

// fzQuote is in quoted, short enough to read.
func fzQuote(in []byte) string {
	if len(in) > 400 {
		return fmt.Sprintf("%q... (%d bytes)", in[:400], len(in))
	}
	return fmt.Sprintf("%q", in)
}

// fzShowInput is in with its line ends shown, short enough to read.
func fzShowInput(in []byte) string {
	s := string(in)
	if len(s) > 600 {
		s = s[:600] + fmt.Sprintf("... (%d bytes)", len(in))
	}
	s = strings.NewReplacer("\r", `\r`, "\n", "\\n\n", "\x00", `\0`).Replace(s)
	return "  | " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  | ")
}

// --- FuzzParseResponse

// fzNeedsEOF reports whether net/http's parser needs the end of the
// connection to end the answer to a GET in script (a head or a body cut
// short, a close-delimited body): the backend closes the connection after
// it then, rather than leave both gateways waiting. A malformed answer, a
// 101, or a whole one keeps the connection open.
func fzNeedsEOF(script []byte) bool {
	r := bytes.NewReader(script)
	br := bufio.NewReader(r)
	for {
		rest := script[len(script)-r.Len()-br.Buffered():]
		if !bytes.Contains(rest, []byte("\n\n")) && !bytes.Contains(rest, []byte("\n\r\n")) {
			return true // the head is not whole
		}
		res, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		if err != nil {
			return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		}
		if res.StatusCode == http.StatusSwitchingProtocols {
			return false
		}
		if res.StatusCode >= 100 && res.StatusCode < 200 {
			continue
		}
		_, err = io.Copy(io.Discard, res.Body)
		if err != nil {
			return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
		}
		return res.ContentLength < 0 && len(res.TransferEncoding) == 0 &&
			res.StatusCode != http.StatusNoContent && res.StatusCode != http.StatusNotModified
	}
}

// fzAnswer is a final answer as a client read it.
type fzAnswer struct {
	status int
	body   []byte
	text   string // normalised: status, fields, body, trailer, how it ended
	ctype  string // the Content-Type values, compared when both sides have one
	// cut: the gateway closed the connection before the answer was whole
	// (net/http sends nothing when the body breaks before its buffer is
	// flushed, the fast path what it had relayed): the client can tell
	// either from a whole answer, but not what it would have been.
	cut bool
	// stalled: the body never ended, the connection neither (the client's
	// deadline passed) — the gateway was waiting for bytes that never
	// came.
	stalled bool
	fields  string // the text before the body: status and fields
}

// same reports whether a and b are the same answer.
func (a fzAnswer) same(b fzAnswer) bool {
	if a.cut && b.cut {
		return true
	}
	sameType := a.ctype == b.ctype || a.ctype == "" || b.ctype == ""
	unfinished := func(x fzAnswer) bool { return x.cut || x.stalled }
	if unfinished(a) && unfinished(b) && a.fields == b.fields && sameType {
		// Neither answer finished: one side waited on a body that never
		// ended, and the other waited too or refused at once framing the
		// first was still reading (a trailer line with a bare CR, which
		// net/http reads as a field and then waits for the blank line).
		// What reached the client before depends on how far each read
		// ahead (net/http's chunked reader holds a whole chunk back while
		// it reads the trailer after the last chunk; the fast path relays
		// the chunk at once), so one body need only begin the other.
		return bytes.HasPrefix(a.body, b.body) || bytes.HasPrefix(b.body, a.body)
	}
	if a.cut || b.cut {
		return false
	}
	return a.text == b.text && sameType
}

func (a fzAnswer) show() string {
	if a.ctype == "" {
		return a.text
	}
	return a.text + fmt.Sprintf("  Content-Type: %q\n", a.ctype)
}

// fzGet sends a GET of target on a new connection to addr and reads the
// final answer (1xx but 101 skipped).
func fzGet(addr, target string) fzAnswer {
	c, err := net.DialTimeout("tcp", addr, fzDeadline)
	if err != nil {
		return fzAnswer{text: "dial: " + err.Error()}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(fzDeadline))
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: example.net\r\n\r\n"); err != nil {
		return fzAnswer{text: "write: " + connErr(err)}
	}
	a, _ := fzRead(bufio.NewReader(c))
	return a
}

// fzRead reads the final answer to a GET from br (1xx but 101 skipped), as
// a client reads it and as it came (m: its fields and trailer as sent, the
// body decoded from its framing).
func fzRead(br *bufio.Reader) (a fzAnswer, m *rawMessage) {
	m = &rawMessage{}
	for {
		start, err := readLine(br)
		if err != nil {
			a.text = "no answer: " + connErr(err)
			a.cut = fzCut(err)
			return a, m
		}
		m.start = start
		a.status = m.statusCode()
		if m.fields, err = readFields(br); err != nil {
			a.text = fmt.Sprintf("status %d, head unreadable: %s", a.status, connErr(err))
			return a, m
		}
		if a.status/100 != 1 || a.status == 101 {
			break
		}
	}
	var bodyErr error
	te, cl := m.values("Transfer-Encoding"), m.values("Content-Length")
	switch {
	case a.status/100 == 1 || a.status == 204 || a.status == 304:
	case len(te) > 0:
		a.body, bodyErr = io.ReadAll(httputil.NewChunkedReader(br))
		if bodyErr == nil {
			m.trailer, bodyErr = readFields(br)
		}
	case len(cl) > 0:
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if err != nil || n < 0 || len(cl) > 1 {
			bodyErr = fmt.Errorf("Content-Length %q", cl)
			break
		}
		a.body, bodyErr = io.ReadAll(io.LimitReader(br, n))
		if bodyErr == nil && int64(len(a.body)) < n {
			bodyErr = io.ErrUnexpectedEOF
		}
	default:
		a.body, bodyErr = io.ReadAll(br)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "status %d\n", a.status)
	fzFields(&b, "  ", m.fields, func(name string) bool { return name == "Date" || name == "Content-Type" })
	a.ctype = strings.Join(m.values("Content-Type"), "\n")
	a.fields = b.String()
	fmt.Fprintf(&b, "  body: %s\n", formatBody(a.body))
	fzFields(&b, "  trailer ", m.trailer, nil)
	if bodyErr != nil {
		fmt.Fprintf(&b, "  body ended: %s\n", connErr(bodyErr))
		a.cut = fzCut(bodyErr)
		a.stalled = connErr(bodyErr) == "timeout"
	}
	a.text = b.String()
	m.body = a.body
	return a, m
}

// fzResponseSeeds are answers a backend may write to GET /a.
func fzResponseSeeds() []string {
	const date = "Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n"
	const stray = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTRAY"
	return []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + date + "X-A: 1\r\nX-A: 2\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: t\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n" + stray,
		"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 5\r\n\r\n" + stray,
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
		"HTTP/1.1 200 OK\rX-A: 1\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nX-A: 1\rContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello" + stray,
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello" + "xx",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nX-Fold: a\r\n Content-Length: 2\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
		"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + stray,
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body",
		"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello" + stray,
		"HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("h", 24<<10) + "\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("h", 5000) + "\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + stray,
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + stray,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nnot chunked",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n" + stray,
		"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
		"HTTP/1.1 200 OK\r\nContent-Len",
		"HTTP/1.0 000 000000000000000\n\r\n", // found by the fuzzer
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range fzResponseSeeds() {
		f.Add([]byte(s))
	}
	fzQuietLog(f)
	fast, ref := fzFastGateway(f), fzRefGateway(f)
	fzSerial(f, 64<<10, func(t *testing.T, script []byte) {
		closeAfter := fzNeedsEOF(script)
		var fastA, fastB, refA, refB fzAnswer
		var wg sync.WaitGroup
		for _, side := range []struct {
			g    *fzGateway
			a, b *fzAnswer
		}{{fast, &fastA, &fastB}, {ref, &refA, &refB}} {
			var first atomic.Bool
			b, err := newFzBackend(func(bw *bufio.Writer, _ *rawMessage) bool {
				if first.Swap(true) {
					bw.WriteString(fzMarker)
					return true
				}
				bw.Write(script)
				return !closeAfter
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := side.g.setBackend(b.addr()); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				*side.a = fzGet(side.g.addr, "/a")
				if side.g == ref {
					// The stock transport may pool the connection with
					// the script's excess bytes on it (the poisoning
					// the fast path guards against): the reference's
					// /b is asked on a fresh upstream connection.
					side.g.closeIdle()
				}
				*side.b = fzGet(side.g.addr, "/b")
				b.settle()
				side.g.closeIdle()
				b.close()
			})
		}
		wg.Wait()

		fzCompareAnswers(t, script, "the fast path", "/b on a new connection", fastA, fastB, refA, refB)
	})
}

// fzCompareAnswers fails t when side's answer a to /a differs from the
// reference's refA (a 502 of side's excepted), or when either answer to
// /b (bWhat) is not the backend's marker, naming the backend's answer
// script and any earlier problems.
func fzCompareAnswers(t *testing.T, script []byte, side, bWhat string, a, b, refA, refB fzAnswer, problems ...string) {
	t.Helper()
	if !a.same(refA) && a.status != http.StatusBadGateway {
		what := "the answers to /a differ"
		if refA.status == http.StatusBadGateway {
			what = "the reference answered /a 502, " + side + " did not (a leniency?)"
		}
		problems = append(problems, fmt.Sprintf("%s (- reference, + %s):\n%s", what, side, lineDiff(refA.show(), a.show())))
	}
	if !fzIsMarker(b) {
		problems = append(problems, side+"'s answer to "+bWhat+" is not the marker:\n"+b.show())
	}
	if !fzIsMarker(refB) {
		problems = append(problems, "the reference's answer to /b is not the marker (harness?):\n"+refB.show())
	}
	if len(problems) > 0 {
		t.Fatalf("backend answer %s\n%s\n%s", fzQuote(script), fzShowInput(script), strings.Join(problems, "\n"))
	}
}

func fzCut(err error) bool {
	e := connErr(err)
	return e == "closed" || e == "closed mid-message"
}

func fzIsMarker(a fzAnswer) bool {
	return a.status == 200 && string(a.body) == "MARKER" && !strings.Contains(a.text, "ended:")
}
