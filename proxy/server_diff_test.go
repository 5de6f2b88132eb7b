package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The differential tests serve the same routes and backends through two
// frontends: the reference, a Server with DisableFastPath (net/http and the
// Handler, the well-tested path), and a Server with its fast path. Each
// case writes the same raw bytes to both (with net.Dial, so that nothing
// rewrites them) and compares what the backends received and what the
// client received, as canonical text; a difference is reported as a line
// diff, "-" for the reference and "+" for the fast path.

// diffDeadline bounds every connection and every wait of these tests.
const diffDeadline = 10 * time.Second

// backendDate is the Date every scripted backend answer carries (unless
// the behaviour leaves it out), so that both frontends pass the same one.
const backendDate = "Mon, 02 Jan 2006 15:04:05 GMT"

// rawField is one header field as it appeared on the wire.
type rawField struct{ name, value string }

// rawMessage is one HTTP/1.x message as read off the wire: its start line,
// its fields, its decoded body and its trailer fields.
type rawMessage struct {
	start   string
	fields  []rawField
	body    []byte
	trailer []rawField
}

func (m *rawMessage) values(name string) []string {
	var vals []string
	for _, f := range m.fields {
		if strings.EqualFold(f.name, name) {
			vals = append(vals, f.value)
		}
	}
	return vals
}

// method is the first word of a request's start line.
func (m *rawMessage) method() string {
	method, _, _ := strings.Cut(m.start, " ")
	return method
}

// statusCode is the status code of a response's start line, or 0.
func (m *rawMessage) statusCode() int {
	_, rest, _ := strings.Cut(m.start, " ")
	code, _ := strconv.Atoi(strings.SplitN(rest, " ", 2)[0])
	return code
}

// readLine reads one CRLF-terminated line. A bare LF is an error: both
// frontends must write CRLF.
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		if err == io.EOF && line != "" {
			return "", io.ErrUnexpectedEOF
		}
		return "", err
	}
	if !strings.HasSuffix(line, "\r\n") {
		return "", fmt.Errorf("line %q ends in a bare LF", line)
	}
	return line[:len(line)-2], nil
}

// readFields reads header (or trailer) fields through the empty line.
func readFields(br *bufio.Reader) ([]rawField, error) {
	var fields []rawField
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		if line == "" {
			return fields, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, fmt.Errorf("obs-fold line %q", line)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("malformed field line %q", line)
		}
		fields = append(fields, rawField{name, strings.Trim(value, " \t")})
	}
}

// readMessage reads one message from br. For a response, method is the
// request's (a HEAD answer has no body); for a request it is "".
func readMessage(br *bufio.Reader, response bool, method string) (*rawMessage, error) {
	start, err := readLine(br)
	if err != nil {
		return nil, err
	}
	m := &rawMessage{start: start}
	if m.fields, err = readFields(br); err != nil {
		return nil, err
	}
	if response {
		code := m.statusCode()
		if method == http.MethodHead || code/100 == 1 || code == 204 || code == 304 {
			return m, nil
		}
	}
	te, cl := m.values("Transfer-Encoding"), m.values("Content-Length")
	switch {
	case len(te) > 0:
		codings := strings.Split(strings.Join(te, ","), ",")
		if !strings.EqualFold(strings.TrimSpace(codings[len(codings)-1]), "chunked") {
			if !response {
				return nil, fmt.Errorf("request Transfer-Encoding %q without chunked", te)
			}
			m.body, err = io.ReadAll(br)
			return m, err
		}
		if m.body, err = io.ReadAll(httputil.NewChunkedReader(br)); err != nil {
			return nil, fmt.Errorf("chunked body: %w", err)
		}
		if m.trailer, err = readFields(br); err != nil {
			return nil, fmt.Errorf("trailer: %w", err)
		}
	case len(cl) > 0:
		for _, v := range cl[1:] {
			if v != cl[0] {
				return nil, fmt.Errorf("conflicting Content-Length %q", cl)
			}
		}
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad Content-Length %q", cl[0])
		}
		m.body = make([]byte, n)
		if _, err := io.ReadFull(br, m.body); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
	case response:
		// Close-delimited.
		m.body, err = io.ReadAll(br)
		return m, err
	}
	return m, nil
}

// formatFields appends fields as sorted lines `Canonical-Name: "value"`:
// names canonicalised, the multiset of values kept, order ignored. Date
// values are replaced by <date>: each frontend may stamp its own.
func formatFields(b *strings.Builder, indent string, fields []rawField) {
	lines := make([]string, 0, len(fields))
	for _, f := range fields {
		name := textproto.CanonicalMIMEHeaderKey(f.name)
		v := strconv.Quote(f.value)
		switch name {
		case "Date":
			v = "<date>"
		case "Trailer":
			// The Handler announces trailers in map order: the order of
			// the names is not part of the message's meaning.
			names := strings.Split(f.value, ",")
			for i := range names {
				names[i] = strings.TrimSpace(names[i])
			}
			slices.Sort(names)
			v = strconv.Quote(strings.Join(names, ", "))
		}
		lines = append(lines, indent+name+": "+v)
	}
	slices.Sort(lines)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
}

// formatBody returns a body short enough to show, or its length and hash.
func formatBody(body []byte) string {
	if len(body) <= 256 {
		return strconv.Quote(string(body))
	}
	return fmt.Sprintf("%d bytes, sha256 %x", len(body), sha256.Sum256(body))
}

// formatResponse is a response as the client received it. The reason
// phrase is left out: net/http writes the standard one for the code while
// a byte-level relay may pass the backend's, and RFC 9112 section 4 says a
// client should ignore it.
func formatResponse(b *strings.Builder, m *rawMessage) {
	proto, _, _ := strings.Cut(m.start, " ")
	fmt.Fprintf(b, "%s %d\n", proto, m.statusCode())
	formatFields(b, "  ", m.fields)
	fmt.Fprintf(b, "  body: %s\n", formatBody(m.body))
	formatFields(b, "  trailer ", m.trailer)
}

// connErr describes how reading an answer failed. A peer's close shows as
// EOF or as a reset depending on whether it still had unread bytes from
// us, a matter of timing: both are "closed".
func connErr(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "closed"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "closed mid-message"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return err.Error()
}

// requestLog records the requests the backends of a test received.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
	// closing counts the backend connections that answered and are to
	// close (their answer said nothing of it: a close-delimited body, or
	// a HEAD answer with no framing): take waits for them.
	closing atomic.Int64
	// closedPeers are the connections (connKey) a backend closed that
	// way: take waits until no standard transport
	// still holds one open (stdConns).
	closedPeers map[string]bool
}

// closedBy records that a backend closed the connection from peer
// without announcing it, or (open) that a new one came from peer.
func (l *requestLog) closedBy(peer string, open bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case open:
		delete(l.closedPeers, peer)
	case l.closedPeers == nil:
		l.closedPeers = map[string]bool{peer: true}
	default:
		l.closedPeers[peer] = true
	}
}

// peersLetGo reports whether every connection a backend closed without
// announcing it is closed on the gateway's side too, where the gateway
// watches its connections (net/http's transport, which closes one as soon
// as it reads the end). The fast path's pool checks a connection when it
// takes it, and so needs no wait.
func (l *requestLog) peersLetGo() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for peer := range l.closedPeers {
		if _, open := stdConns.Load(peer); open {
			return false
		}
		delete(l.closedPeers, peer)
	}
	return true
}

func (l *requestLog) add(backend string, m *rawMessage) {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s\n", backend, m.start)
	formatFields(&b, "  ", m.fields)
	fmt.Fprintf(&b, "  body: %s\n", formatBody(m.body))
	formatFields(&b, "  trailer ", m.trailer)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, b.String())
}

// take returns the requests recorded since the last take, once the
// backend connections that answered and are to close have closed, and
// net/http's transport has let go of them: the next request then finds a
// pooled one closed, never closing. (A gateway
// cannot tell an endpoint that closes just after an answer that did not
// announce it from one that keeps the connection; whether the next
// request takes it before the close arrives is timing, and a request
// written on it fails unless it may be sent again, on net/http's side
// and the fast path's alike.)
func (l *requestLog) take() string {
	for deadline := time.Now().Add(diffDeadline); (l.closing.Load() > 0 || !l.peersLetGo()) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.Join(l.reqs, "")
	l.reqs = nil
	return s
}

// responder writes a scripted backend's answer to req and reports whether
// the connection stays open. It may flush w and write to c itself.
type responder func(w *bufio.Writer, c net.Conn, req *rawMessage) bool

// scriptedBackend is an endpoint that records every request it reads, as
// read off the wire, and answers with raw bytes.
type scriptedBackend struct {
	name string
	ln   net.Listener
	log  *requestLog
	wg   sync.WaitGroup
}

func (b *scriptedBackend) addr() string { return b.ln.Addr().String() }

func newScriptedBackend(t *testing.T, name string, log *requestLog, respond responder) *scriptedBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &scriptedBackend{name: name, ln: ln, log: log}
	var mu sync.Mutex
	conns := make(map[net.Conn]bool)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		b.wg.Wait()
	})
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			log.closedBy(connKey(c.RemoteAddr(), c.LocalAddr()), true)
			b.wg.Go(func() {
				closing := false
				defer func() {
					c.Close()
					if closing {
						log.closedBy(connKey(c.RemoteAddr(), c.LocalAddr()), false)
						log.closing.Add(-1)
					}
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
				}()
				_ = c.SetDeadline(time.Now().Add(diffDeadline))
				br, bw := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					req, err := readMessage(br, false, "")
					if err != nil {
						if !errors.Is(err, io.EOF) && connErr(err) != "closed" {
							log.add(name, &rawMessage{start: "unreadable request: " + err.Error()})
						}
						return
					}
					log.add(name, req)
					keep := respond(bw, c, req)
					if !keep {
						closing = true
						log.closing.Add(1) // before the answer leaves
					}
					if bw.Flush() != nil || !keep {
						return
					}
				}
			})
		}
	})
	return b
}

// answer writes a whole response: the status line, the fields, and body
// with a Content-Length (none for HEAD requests' answers, which carry the
// length of the body they omit).
//
// A Content-Type is added when fields have none: net/http sniffs one for a
// body without, which the "no Content-Type" behaviour compares on its own.
func answer(w *bufio.Writer, req *rawMessage, status string, body string, fields ...string) {
	if !slices.ContainsFunc(fields, func(f string) bool {
		return strings.HasPrefix(strings.ToLower(f), "content-type:")
	}) {
		fields = append(fields, "Content-Type: text/plain")
	}
	w.WriteString("HTTP/1.1 " + status + "\r\n")
	for _, f := range fields {
		w.WriteString(f + "\r\n")
	}
	w.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	if req.method() != http.MethodHead {
		w.WriteString(body)
	}
}

// okResponder answers every request 200 with a small body naming backend.
func okResponder(backend string) responder {
	return func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		answer(w, req, "200 OK", "hello from "+backend+"\n",
			"Content-Type: text/plain; charset=utf-8", "Date: "+backendDate, "X-Backend: "+backend)
		return true
	}
}

// trackedListener counts the accepted connections that are still open, so
// that a test can wait until a server has let go of its connections (and
// so has finished their requests and recorded them).
type trackedListener struct {
	net.Listener
	open *atomic.Int64
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &trackedConn{Conn: c, open: l.open}, nil
}

type trackedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// SyscallConn passes the socket on, so that the fast path parks idle
// connections and relays tunnels in its poller as it does unwrapped ones.
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// CloseWrite passes net/http's half-close on (it sends a 400 or 431 with
// CloseWrite and a delay before closing, so that the client reads it
// before a reset), so that the wrapper changes nothing.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// diffSide is one frontend of a differential test.
type diffSide struct {
	name      string
	srv       *Server
	addr      string
	h         *Handler
	forwarded atomic.Int64 // requests the Handler forwarded with ReverseProxy
	open      atomic.Int64 // connections the server has not closed yet
	obs       *observer
	reports   *recorder
	access    *syncBuffer
}

// routeMaker builds a fresh set of routes (balancers, upstreams and
// transports of their own) whose upstreams report to rep.
type routeMaker func(rep Reporter) []*Route

// diffUpstream is testUpstream reporting to rep.
func diffUpstream(t *testing.T, name string, rep Reporter, passHost bool) *Upstream {
	t.Helper()
	up := testUpstream(t, name)
	up.Reporter = rep
	up.PassHostHeader = passHost
	return up
}

// newDiffSide starts a Server on its own loopback listener, with the fast
// path or without.
func newDiffSide(t *testing.T, name string, fast bool, opts Options, mk routeMaker) *diffSide {
	t.Helper()
	s := &diffSide{name: name, obs: &observer{}, reports: &recorder{}, access: &syncBuffer{}}
	rt, err := NewRouter(mk(s.reports))
	if err != nil {
		t.Fatal(err)
	}
	alog := NewAccessLog(s.access, AccessLogOptions{FlushInterval: 2 * time.Millisecond})
	opts.AccessLog, opts.Metrics = alog, s.obs
	s.h = NewHandler(rt, opts)
	s.h.onForward = func() { s.forwarded.Add(1) }
	s.srv = NewServer(s.h, ServerConfig{DisableFastPath: !fast})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(&trackedListener{Listener: ln, open: &s.open}) }()
	t.Cleanup(func() {
		_ = s.srv.Close()
		select {
		case err := <-served:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("%s: Serve returned %v, want http.ErrServerClosed", name, err)
			}
		case <-time.After(diffDeadline):
			t.Errorf("%s: Serve did not return after Close", name)
		}
		_ = alog.Close()
	})
	return s
}

// diffPair is the reference frontend and the fast one.
type diffPair struct {
	ref, fast *diffSide
	log       *requestLog
}

func newDiffPair(t *testing.T, opts Options, log *requestLog, mk routeMaker) *diffPair {
	t.Helper()
	return &diffPair{
		ref:  newDiffSide(t, "net/http", false, opts, mk),
		fast: newDiffSide(t, "fast", true, opts, mk),
		log:  log,
	}
}

// diffCase is one exchange of the corpus.
type diffCase struct {
	name string
	raw  string // the bytes the client writes
	// methods are the methods of the requests in raw, one per answer
	// expected; nil means one request, raw's first word.
	methods []string
	// fast: the fast path must serve every request of the connection
	// (ReverseProxy never runs on the fast frontend while
	// it runs on the reference).
	fast bool
	// noFollowUp: send no follow-up request after the answers.
	noFollowUp bool
	// handoff: the fast frontend hands the case's last request to
	// net/http, which answers it with "Connection: close" and closes: the
	// net/http parser never reads a second request on a connection (see
	// Server.serveHTTP). The case is compared without the follow-up, the
	// fast side's extra "Connection: close" set aside, and the fast side
	// must close the connection.
	handoff bool
	// rejects: the fast frontend refuses the request with this status
	// (parseRequest's table) and closes the connection, no backend
	// contacted, where net/http is more lenient; the fast side is checked
	// against that rather than against the reference.
	rejects int
	// badResponse: the backend's answer breaks the fast path's response
	// rules (fastResponse.parse) where net/http relays it: the fast side
	// must answer 502 to the case and to the follow-up on the same client
	// connection, and is not compared further.
	badResponse bool
	// emptyFraming: the answer has an empty body without framing (ended
	// by the close), which the reference frames as Content-Length: 0 or
	// as chunked, as its flush timer falls (ReverseProxy flushes such an
	// answer at once, from a timer); the framing fields are not compared.
	emptyFraming bool
}

// rejection is the client's view of a request the fast path refuses with
// status (fconn.reject).
func rejection(status int) string {
	text := strconv.Itoa(status) + " " + http.StatusText(status)
	var b strings.Builder
	formatResponse(&b, &rawMessage{
		start: "HTTP/1.1 " + text,
		fields: []rawField{
			{"Connection", "close"},
			{"Content-Type", "text/plain; charset=utf-8"},
		},
		body: []byte(text),
	})
	return b.String()
}

// rejectionReason matches what a rejection's body says after net/http's
// words.
var rejectionReason = regexp.MustCompile(`(body: "\d{3} [A-Za-z -]+): [^"]*"`)

// dropExtraClose removes from the fast side's client view one
// "Connection: close" field more than the reference's has.
func dropExtraClose(fast, ref string) string {
	const field = "  Connection: \"close\"\n"
	if strings.Count(fast, field) > strings.Count(ref, field) {
		return strings.Replace(fast, field, "", 1)
	}
	return fast
}

// followUp is sent on the connection after a case's answers, to compare
// the state each frontend leaves it in.
const followUp = "GET /follow-up HTTP/1.1\r\nHost: follow.example\r\n\r\n"

// sideResult is what one frontend did with a case, as canonical text.
type sideResult struct {
	client, backend, metrics, reports, access string
	forwarded                                 int64
}

// counts are the lengths of a side's records before a case.
type counts struct{ obs, reports, access int }

func (s *diffSide) counts() counts {
	s.obs.mu.Lock()
	n := len(s.obs.calls)
	s.obs.mu.Unlock()
	return counts{obs: n, reports: len(s.reports.list()), access: len(s.access.lines())}
}

// poll waits until cond holds or diffDeadline passes, and reports whether
// it held.
func poll(cond func() bool) bool {
	deadline := time.Now().Add(diffDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// run sends c on a fresh connection to s and returns what happened.
func (s *diffSide) run(t *testing.T, log *requestLog, c diffCase) sideResult {
	t.Helper()
	log.take()
	before := s.counts()
	forwarded := s.forwarded.Load()
	var r sideResult
	r.client = s.converse(t, c)

	// Once the server has closed the connection, its requests are over:
	// metrics and reports are in, access log lines on their way.
	if !poll(func() bool { return s.open.Load() == 0 }) {
		r.client += "server did not close the connection after the client did\n"
	}
	ok := poll(func() bool {
		c := s.counts()
		return c.access-before.access == c.obs-before.obs
	})
	if !ok {
		r.access = "access log lines missing\n"
	}
	r.backend = log.take()
	r.forwarded = s.forwarded.Load() - forwarded

	s.obs.mu.Lock()
	var b strings.Builder
	for _, o := range s.obs.calls[before.obs:] {
		fmt.Fprintf(&b, "route=%q method=%q status=%d attempts=%d\n", o.route, o.method, o.status, o.attempts)
	}
	s.obs.mu.Unlock()
	r.metrics = b.String()
	r.reports = strings.Join(s.reports.list()[before.reports:], "\n")
	b.Reset()
	for _, line := range s.access.lines()[before.access:] {
		b.WriteString(normalizeAccessLine(line))
		b.WriteByte('\n')
	}
	r.access += b.String()
	return r
}

// normalizeAccessLine drops what differs between any two requests: the
// time, the duration and the client's port.
func normalizeAccessLine(line string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return "unparsable line " + strconv.Quote(line)
	}
	delete(m, "time")
	delete(m, "Duration")
	if a, ok := m["ClientAddr"].(string); ok {
		if host, _, err := net.SplitHostPort(a); err == nil {
			m["ClientAddr"] = host + ":<port>"
		}
	}
	b, _ := json.Marshal(m) // sorted keys
	return string(b)
}

// converse writes c.raw, reads the answers, sends the follow-up, and
// returns the client's view.
func (s *diffSide) converse(t *testing.T, c diffCase) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.addr, diffDeadline)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(diffDeadline))
	if _, err := io.WriteString(conn, c.raw); err != nil {
		t.Fatal(err)
	}
	methods := c.methods
	if methods == nil {
		m, _, _ := strings.Cut(c.raw, " ")
		methods = []string{m}
	}
	var b strings.Builder
	br := bufio.NewReader(conn)
	read := func(method string) bool {
		for {
			m, err := readMessage(br, true, method)
			if err != nil {
				fmt.Fprintf(&b, "read: %s\n", connErr(err))
				return false
			}
			formatResponse(&b, m)
			if code := m.statusCode(); code < 100 || code > 199 || code == 101 {
				return true
			}
		}
	}
	for _, m := range methods {
		if !read(m) {
			return b.String()
		}
	}
	if s.name == "fast" && (c.handoff || c.rejects != 0) {
		// The fast side closes after the answer: nothing more comes.
		if _, err := br.ReadByte(); connErr(err) != "closed" {
			fmt.Fprintf(&b, "after the answers the connection was not closed: %v\n", err)
		}
		return b.String()
	}
	if c.noFollowUp {
		return b.String()
	}
	b.WriteString("follow-up:\n")
	if _, err := io.WriteString(conn, followUp); err != nil {
		fmt.Fprintf(&b, "write: %s\n", connErr(err))
		return b.String()
	}
	read(http.MethodGet)
	return b.String()
}

// compare runs c on both frontends and reports every difference.
// closedAfterFirst reports whether the client's connection was closed
// after the case's answer, before the follow-up.
func closedAfterFirst(r sideResult) bool {
	_, after, _ := strings.Cut(r.client, "follow-up:\n")
	return strings.HasPrefix(after, "read: closed")
}

// firstExchange keeps of r what the case's own request caused: the client's
// view up to the follow-up, and the first record of each log.
func firstExchange(r sideResult) sideResult {
	r.client, _, _ = strings.Cut(r.client, "follow-up:\n")
	r.client = strings.Replace(r.client, "  Connection: \"keep-alive\"\n", "", 1)
	first := func(s string) string {
		s, _, _ = strings.Cut(s, "\n")
		return s
	}
	if i := strings.Index(r.backend[min(1, len(r.backend)):], "\n["); i >= 0 {
		r.backend = r.backend[:i+2]
	}
	r.metrics, r.reports, r.access = first(r.metrics), first(r.reports), first(r.access)
	return r
}

// emptyFramingField matches the framing field of an empty body (see
// diffCase.emptyFraming).
var emptyFramingField = regexp.MustCompile(`(?m)^\s*(Content-Length: "0"|Transfer-Encoding: "chunked")\n`)

func (p *diffPair) compare(t *testing.T, c diffCase) (ref, fast sideResult) {
	t.Helper()
	if c.handoff || c.rejects != 0 {
		c.noFollowUp = true
	}
	ref = p.ref.run(t, p.log, c)
	fast = p.fast.run(t, p.log, c)
	if c.badResponse {
		// Every answer is 502; an HTTP/1.1 or keep-alive client keeps its
		// connection for the follow-up.
		n := strings.Count(fast.client, " 502\n")
		keep := !strings.Contains(c.raw, "HTTP/1.0") || strings.Contains(c.raw, "keep-alive")
		if n == 0 || n != strings.Count(fast.client, "HTTP/1.") || keep && n != 2 {
			t.Errorf("a response the fast path refuses: want 502 to the request and to the follow-up on the same connection, got:\n%s", fast.client)
		}
		return ref, fast
	}
	if c.rejects == 0 && ref.backend == "" && ref.metrics == "" && fast.client != ref.client {
		// net/http refused the request itself (no Handler ran) and the
		// fast path answered otherwise: it must have refused it with the
		// same status, in its own words, closing the connection (what a
		// follow-up met then is a matter of timing).
		if _, after, ok := strings.Cut(ref.client, "HTTP/1.1 "); ok && len(after) >= 3 {
			if code, err := strconv.Atoi(after[:3]); err == nil && code >= 400 {
				c.rejects = code
				fast.client, _, _ = strings.Cut(fast.client, "follow-up:\n")
			}
		}
	}
	want := ref
	switch {
	case c.rejects != 0:
		// The body says what is wrong after net/http's words; the request
		// is counted and logged without a route.
		fast.client = rejectionReason.ReplaceAllString(fast.client, `$1"`)
		want = sideResult{client: rejection(c.rejects), metrics: fast.metrics, access: fast.access}
		if !strings.Contains(fast.metrics, fmt.Sprintf(`route="" `)) || !strings.Contains(fast.metrics, fmt.Sprintf("status=%d", c.rejects)) ||
			strings.Count(fast.metrics, "\n") != 1 || strings.Count(fast.access, "\n") != 1 {
			t.Errorf("a refused request is counted and logged once without a route; metrics:\n%saccess log:\n%s", fast.metrics, fast.access)
		}
	case c.handoff:
		fast.client = dropExtraClose(fast.client, ref.client)
	}
	if c.emptyFraming {
		want.client = emptyFramingField.ReplaceAllString(want.client, "")
		fast.client = emptyFramingField.ReplaceAllString(fast.client, "")
		// Without framing an HTTP/1.0 client's connection can be kept
		// only with Content-Length: 0, which the reference chooses or
		// not as its flush timer falls: when one side closed, only the
		// first exchange is compared.
		if closedAfterFirst(want) || closedAfterFirst(fast) {
			want, fast = firstExchange(want), firstExchange(fast)
		}
	}
	for _, part := range []struct {
		what      string
		ref, fast string
	}{
		{"the client received", want.client, fast.client},
		{"the backends received", want.backend, fast.backend},
		{"metrics observed", want.metrics, fast.metrics},
		{"passive health reports", want.reports, fast.reports},
		{"the access log has", want.access, fast.access},
	} {
		if part.ref != part.fast {
			t.Errorf("%s differs (- net/http reference or the rejection expected, + fast path):\n%s\nrequest bytes: %q",
				part.what, lineDiff(part.ref, part.fast), c.raw)
		}
	}
	if c.fast {
		if ref.forwarded == 0 {
			t.Errorf("the reference did not forward %q with ReverseProxy: not a plain request", c.raw)
		}
		if fast.forwarded != 0 {
			t.Errorf("the fast frontend handed %d request(s) to ReverseProxy; want all served by the fast path", fast.forwarded)
		}
	}
	if testing.Verbose() {
		t.Logf("net/http:\n%s%s\nfast path (ReverseProxy ran %d times):\n%s%s",
			ref.client, ref.backend, fast.forwarded, fast.client, fast.backend)
	}
	return ref, fast
}

// lineDiff is a line diff of a and b: common lines indented, a's alone
// marked "-", b's alone "+".
func lineDiff(a, b string) string {
	x := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	y := strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	// lcs[i][j] is the length of the longest common subsequence of x[i:]
	// and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			out.WriteString("  " + x[i] + "\n")
			i++
			j++
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			out.WriteString("+ " + y[j] + "\n")
			j++
		default:
			out.WriteString("- " + x[i] + "\n")
			i++
		}
	}
	return out.String()
}

// rq builds a request head from its request line and fields.
func rq(line string, fields ...string) string {
	var b strings.Builder
	b.WriteString(line + "\r\n")
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// hostField is the Host field of most corpus requests (the catch-all route).
const hostField = "Host: example.net"

// corpusRoutes are the routes of the request corpus over two backends.
func corpusRoutes(t *testing.T, b1, b2 string) routeMaker {
	return func(rep Reporter) []*Route {
		up := diffUpstream(t, "svc", rep, true)
		strip := testRoute(t, "strip", "round_robin", up, b1)
		strip.PathPrefix, strip.StripPrefix = "/api", true
		edit := testRoute(t, "edit", "round_robin", up, b1)
		edit.PathPrefix = "/edit"
		edit.SetHeaders = map[string]string{"X-Set": "set by route", "user-agent": "route-agent", "X-Forwarded-Proto": "https"}
		edit.RemoveHeaders = []string{"X-Remove", "cookie"}
		noHost := testRoute(t, "nohost", "round_robin", diffUpstream(t, "svc-nohost", rep, false), b1)
		noHost.PathPrefix = "/nohost"
		byHeader := testRoute(t, "by-header", "consistent_hash", up, b1, b2)
		byHeader.PathPrefix, byHeader.HashOn = "/hh", "header:x-key"
		byHeaderOne := testRoute(t, "by-header-one", "consistent_hash", up, b1)
		byHeaderOne.PathPrefix, byHeaderOne.HashOn = "/hh1", "header:x-key"
		byCookie := testRoute(t, "by-cookie", "consistent_hash", up, b1, b2)
		byCookie.PathPrefix, byCookie.HashOn = "/hc", "cookie:sid"
		byPath := testRoute(t, "by-path", "consistent_hash", up, b1, b2)
		byPath.PathPrefix, byPath.HashOn = "/hp", "path"
		byIP := testRoute(t, "by-ip", "consistent_hash", up, b1, b2)
		byIP.PathPrefix, byIP.HashOn = "/hip", "client_ip"
		hosts := testRoute(t, "hosts", "round_robin", up, b2)
		hosts.Hosts = []string{"example.com", "*.example.org"}
		readOnly := testRoute(t, "read-only", "round_robin", up, b1)
		readOnly.PathPrefix, readOnly.Methods = "/ro", []string{"GET", "HEAD"}
		matchHdr := testRoute(t, "match-header", "round_robin", up, b2)
		matchHdr.PathPrefix, matchHdr.Headers = "/mh", map[string]string{"x-match": "yes"}
		all := testRoute(t, "all", "round_robin", up, b1)
		return []*Route{strip, edit, noHost, byHeader, byHeaderOne, byCookie, byPath, byIP, hosts, readOnly, matchHdr, all}
	}
}

// requestCorpus is the requests compared on the corpus routes, with
// backends answering 200 with a small body.
func requestCorpus() []diffCase {
	get := func(target string, fields ...string) string {
		return rq("GET "+target+" HTTP/1.1", append([]string{hostField}, fields...)...)
	}
	longValue := strings.Repeat("v", 5000)
	return []diffCase{
		// Methods.
		{name: "GET", raw: get("/x"), fast: true},
		{name: "HEAD", raw: rq("HEAD /x HTTP/1.1", hostField), fast: true},
		{name: "OPTIONS", raw: rq("OPTIONS /x HTTP/1.1", hostField), fast: true},
		{name: "OPTIONS star", rejects: 400, raw: rq("OPTIONS * HTTP/1.1", hostField)},
		{name: "DELETE", raw: rq("DELETE /x HTTP/1.1", hostField), fast: true},
		{name: "POST no body", raw: rq("POST /x HTTP/1.1", hostField), fast: true},
		{name: "PUT with body", raw: rq("PUT /x HTTP/1.1", hostField, "Content-Length: 5") + "hello", fast: true},
		{name: "POST with body", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: 7", "Content-Type: application/json") + `{"a":1}`, fast: true},
		{name: "PATCH with body and key", raw: rq("PATCH /x HTTP/1.1", hostField, "Content-Length: 3", "Idempotency-Key: k1") + "abc", fast: true},
		{name: "GET with body", raw: get("/x", "Content-Length: 4") + "data", fast: true},
		{name: "POST body past the buffer", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: 6000") + strings.Repeat("b", 6000), fast: true},
		{name: "PUT body of maxBufferedBody", raw: rq("PUT /x HTTP/1.1", hostField, fmt.Sprintf("Content-Length: %d", maxBufferedBody)) + patterned(maxBufferedBody, 0), fast: true},
		{name: "PUT body past maxBufferedBody", handoff: true, raw: rq("PUT /x HTTP/1.1", hostField, fmt.Sprintf("Content-Length: %d", maxBufferedBody+1)) + patterned(maxBufferedBody+1, 0)},
		{name: "POST body past the buffer then GET", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: 9000") + patterned(9000, 1) + get("/y"),
			methods: []string{"POST", "GET"}, fast: true},
		{name: "POST Content-Length with a sign", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: +3") + "abc"},
		{name: "TRACE", handoff: true, raw: rq("TRACE /x HTTP/1.1", hostField)},
		{name: "lower-case method", handoff: true, raw: rq("get /x HTTP/1.1", hostField)},
		{name: "CONNECT", handoff: true, raw: rq("CONNECT example.net:443 HTTP/1.1", hostField)},
		{name: "unknown method", handoff: true, raw: rq("PURGE /x HTTP/1.1", hostField)},

		// Queries.
		{name: "query", raw: get("/x?a=1&b=2"), fast: true},
		{name: "query escapes", raw: get("/x?a=%20b&c=%C3%A9&d=%2F"), fast: true},
		{name: "query bad escape", handoff: true, raw: get("/x?a=%zz&b=%4")},
		{name: "query semicolon", handoff: true, raw: get("/x?a=1;b=2")},
		{name: "empty query", raw: get("/x?")},
		{name: "query of question marks", raw: get("/x??a=1?")},
		{name: "query with slash and colon", raw: get("/x?next=/a/b:c@d")},
		{name: "query with plus", raw: get("/x?q=a+b")},
		{name: "fragment", handoff: true, raw: get("/x#frag")},
		{name: "query and fragment", handoff: true, raw: get("/x?a=1#frag")},

		// Paths.
		{name: "root", raw: get("/"), fast: true},
		{name: "dot segments", handoff: true, raw: get("/a/./b/../c")},
		{name: "trailing dot segment", handoff: true, raw: get("/a/b/..")},
		{name: "dot segments above root", handoff: true, raw: get("/../../x")},
		{name: "double slash", handoff: true, raw: get("//x//y")},
		{name: "trailing slash", raw: get("/x/y/"), fast: true},
		{name: "escaped slash", handoff: true, raw: get("/a%2Fb")},
		{name: "escaped letter", raw: get("/%41bc"), fast: true},
		{name: "escaped space", raw: get("/a%20b"), fast: true},
		{name: "escaped dot segment", handoff: true, raw: get("/a/%2e%2e/b")},
		{name: "escaped dot in a name", raw: get("/a/b%2ejson"), fast: true},
		{name: "escaped single dot segment", handoff: true, raw: get("/a/%2e/b")},
		{name: "escaped percent", raw: get("/a%25b"), fast: true},
		{name: "escaped percent and hex", raw: get("/a%2541"), fast: true},
		{name: "escaped lower-case hex", raw: get("/caf%c3%a9"), fast: true},
		{name: "escaped upper-case hex", raw: get("/caf%C3%A9"), fast: true},
		{name: "escaped invalid UTF-8", raw: get("/a%ff%fe"), fast: true},
		{name: "escaped NUL", raw: get("/a%00b")},
		{name: "escaped newline", raw: get("/a%0Ab")},
		{name: "escaped question mark", raw: get("/a%3Fb?c=1"), fast: true},
		{name: "escaped hash", raw: get("/a%23b"), fast: true},
		{name: "escaped unreserved", raw: get("/%7Euser/%2Dx"), fast: true},
		{name: "escaped at the end", raw: get("/a%2")},
		{name: "escape cut short", raw: get("/a%")},
		{name: "bad escape in path", raw: get("/a%zzb")},
		{name: "sub-delims in path", raw: get("/x/'()*!,;=:@$&+~"), fast: true},
		{name: "semicolon path parameter", raw: get("/x;jsessionid=1/y"), fast: true},
		{name: "unicode in path", handoff: true, raw: get("/caf\xc3\xa9")},
		{name: "quote and brackets in path", handoff: true, raw: get("/a\"b[c]{d}|e^f`g")},
		{name: "backslash in path", handoff: true, raw: get("/a\\b")},
		{name: "absolute-form target", handoff: true, raw: get("http://example.net/x?y=1")},
		{name: "absolute-form with other host", handoff: true, raw: get("http://other.example:81/x")},
		{name: "asterisk target with GET", rejects: 400, raw: get("*")},
		{name: "target without slash", raw: get("x")},

		// Hosts.
		{name: "host route", raw: rq("GET /x HTTP/1.1", "Host: example.com"), fast: true},
		{name: "host with port", raw: rq("GET /x HTTP/1.1", "Host: example.com:8080"), fast: true},
		{name: "upper-case host", raw: rq("GET /x HTTP/1.1", "Host: EXAMPLE.COM"), fast: true},
		{name: "wildcard host", raw: rq("GET /x HTTP/1.1", "Host: a.b.example.org"), fast: true},
		{name: "wildcard parent host", raw: rq("GET /x HTTP/1.1", "Host: example.org"), fast: true},
		{name: "host with trailing dot", raw: rq("GET /x HTTP/1.1", "Host: example.com.")},
		{name: "IPv6 host", raw: rq("GET /x HTTP/1.1", "Host: [::1]:80")},
		{name: "IPv4 host", raw: rq("GET /x HTTP/1.1", "Host: 127.0.0.1:8080"), fast: true},
		{name: "empty host", rejects: 400, raw: rq("GET /x HTTP/1.1", "Host:")},
		{name: "missing host", rejects: 400, raw: rq("GET /x HTTP/1.1")},
		{name: "two hosts", raw: rq("GET /x HTTP/1.1", hostField, "Host: example.com")},
		{name: "host with userinfo", rejects: 400, raw: rq("GET /x HTTP/1.1", "Host: user@example.com")},
		{name: "host with space", rejects: 400, raw: rq("GET /x HTTP/1.1", "Host: exa mple.com")},
		{name: "host case of name", raw: rq("GET /x HTTP/1.1", "hOsT: example.com")},

		// Header fields.
		{name: "duplicated fields", raw: get("/x", "X-Dup: a", "Accept: text/html", "X-Dup: b", "Accept: */*"), fast: true},
		{name: "name case variants", raw: get("/x", "x-custom: 1", "X-CUSTOM: 2", "X-Custom: 3"), fast: true},
		{name: "odd but valid names", raw: get("/x", "X_Under: 1", "x-a.b~c!: 2", "1-Digit: 3"), fast: true},
		{name: "empty value", raw: get("/x", "X-Empty:", "X-Spaces:   "), fast: true},
		{name: "value whitespace", raw: get("/x", "X-Pad: \t a  b \t"), fast: true},
		{name: "obs-text value", raw: get("/x", "X-Text: caf\xc3\xa9 \xff"), fast: true},
		{name: "tab in value", raw: get("/x", "X-Tab: a\tb"), fast: true},
		{name: "long header", raw: get("/x", "X-Long: "+longValue)},
		{name: "many fields", raw: get("/x", manyFields(60)...)},
		{name: "cookies", raw: get("/x", "Cookie: a=1", "Cookie: b=2; c=3"), fast: true},
		{name: "Content-Length zero", raw: get("/x", "Content-Length: 0")},
		{name: "chunked GET", raw: get("/x", "Transfer-Encoding: chunked") + "0\r\n\r\n"},
		{name: "chunked POST", raw: rq("POST /x HTTP/1.1", hostField, "Transfer-Encoding: chunked") + "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", fast: true},
		{name: "chunked POST empty", raw: rq("POST /x HTTP/1.1", hostField, "Transfer-Encoding: chunked") + "0\r\n\r\n", fast: true},
		{name: "chunked PUT with extensions", raw: rq("PUT /x HTTP/1.1", hostField, "Transfer-Encoding: chunked") + "5;a=b\r\nhello\r\n0;c\r\n\r\n", fast: true},
		{name: "chunked POST upper-case size", raw: rq("POST /x HTTP/1.1", hostField, "Transfer-Encoding: chunked") + "A\r\n0123456789\r\n0\r\n\r\n", fast: true},
		{name: "chunked POST with trailer fields", handoff: true, raw: rq("POST /x HTTP/1.1", hostField, "Transfer-Encoding: chunked") + "2\r\nhi\r\n0\r\nX-Sum: 1\r\n\r\n"},
		{name: "chunked POST value case", raw: rq("POST /x HTTP/1.1", hostField, "Transfer-Encoding: Chunked") + "2\r\nhi\r\n0\r\n\r\n", fast: true},
		{name: "chunked POST large", raw: rq("PUT /x HTTP/1.1", hostField, "Transfer-Encoding: chunked") + chunked(patterned(20000, 3), 1000), fast: true},
		{name: "chunked POST past maxBufferedBody", handoff: true, raw: rq("PUT /x HTTP/1.1", hostField, "Transfer-Encoding: chunked") + chunked(patterned(maxBufferedBody+10, 4), 4096)},
		{name: "chunked POST HTTP/1.0", rejects: 400, raw: rq("POST /x HTTP/1.0", hostField, "Transfer-Encoding: chunked") + "2\r\nhi\r\n0\r\n\r\n"},
		{name: "gzip, chunked POST", rejects: 501, raw: rq("POST /x HTTP/1.1", hostField, "Transfer-Encoding: gzip, chunked") + "2\r\nhi\r\n0\r\n\r\n"},
		{name: "two chunked POSTs", raw: rq("POST /x HTTP/1.1", hostField, "Transfer-Encoding: chunked") + "2\r\nhi\r\n0\r\n\r\n" +
			rq("POST /y HTTP/1.1", hostField, "Transfer-Encoding: chunked") + "3\r\nyou\r\n0\r\n\r\n", methods: []string{"POST", "POST"}, fast: true},
		{name: "chunked POST then GET, no trailers", raw: rq("POST /x HTTP/1.1", hostField, "Transfer-Encoding: chunked") +
			"5\r\nhello\r\n0\r\n\r\n" + get("/y"), methods: []string{"POST", "GET"}, fast: true},
		{name: "large chunked PUT then GETs", raw: rq("PUT /x HTTP/1.1", hostField, "Transfer-Encoding: chunked") +
			chunked(patterned(30000, 5), 7000) + get("/y") + get("/z"), methods: []string{"PUT", "GET", "GET"}, fast: true},
		{name: "Expect", handoff: true, raw: get("/x", "Expect: 100-continue")},
		{name: "Upgrade", raw: get("/x", "Connection: Upgrade", "Upgrade: websocket"), fast: true},
		{name: "Upgrade without Connection", handoff: true, raw: get("/x", "Upgrade: websocket")},
		{name: "Trailer field", handoff: true, raw: get("/x", "Trailer: X-T")},

		// Hop-by-hop fields.
		{name: "Connection close", raw: get("/x", "Connection: close"), fast: true},
		{name: "Connection keep-alive", raw: get("/x", "Connection: keep-alive"), fast: true},
		{name: "Connection Close capitalised", raw: get("/x", "Connection: Close"), fast: true},
		{name: "Connection keep-alive and close", raw: get("/x", "Connection: keep-alive, close"), fast: true},
		{name: "Connection naming a field", handoff: true, raw: get("/x", "Connection: X-Foo", "X-Foo: bar", "X-Other: kept")},
		{name: "Connection naming two fields", handoff: true, raw: get("/x", "Connection: x-foo, X-Bar", "X-Foo: 1", "X-Bar: 2", "X-Baz: 3")},
		{name: "Connection naming forwarding fields", handoff: true, raw: get("/x", "Connection: X-Forwarded-For, X-Real-Ip", "X-Forwarded-For: 1.2.3.4")},
		{name: "two Connection fields", raw: get("/x", "Connection: keep-alive", "Connection: close"), fast: true},
		{name: "Keep-Alive", raw: get("/x", "Keep-Alive: timeout=5"), fast: true},
		{name: "Proxy-Connection", raw: get("/x", "Proxy-Connection: keep-alive"), fast: true},
		{name: "Proxy-Authorization", raw: get("/x", "Proxy-Authorization: Basic eDp5"), fast: true},
		{name: "Proxy-Authenticate", raw: get("/x", "Proxy-Authenticate: Basic"), fast: true},
		{name: "Te trailers", raw: get("/x", "Te: trailers"), fast: true},
		{name: "Te gzip", raw: get("/x", "Te: gzip"), fast: true},
		{name: "Te list with trailers", raw: get("/x", "TE: deflate;q=0.5, Trailers"), fast: true},
		{name: "two Te fields", raw: get("/x", "Te: gzip", "Te: trailers"), fast: true},

		// Forwarding fields from an untrusted peer.
		{name: "forwarding fields", raw: get("/x", "Forwarded: for=1.2.3.4", "X-Forwarded-For: 1.2.3.4",
			"X-Forwarded-Host: evil.example", "X-Forwarded-Proto: https", "X-Real-Ip: 1.2.3.4",
			"X-Forwarded-Prefix: /evil"), fast: true},
		{name: "forwarding fields lower case", raw: get("/x", "x-forwarded-for: 1.2.3.4", "x-real-ip: 5.6.7.8",
			"x-forwarded-prefix: /evil"), fast: true},
		{name: "forwarding fields on a stripping route", raw: get("/api/x", "X-Forwarded-Prefix: /evil"), fast: true},

		// User-Agent.
		{name: "User-Agent", raw: get("/x", "User-Agent: curl/8"), fast: true},
		{name: "empty User-Agent", raw: get("/x", "User-Agent:"), fast: true},
		{name: "absent User-Agent", raw: get("/x"), fast: true},
		{name: "two User-Agents", raw: get("/x", "User-Agent: a", "User-Agent: b"), fast: true},

		// Routes' edits.
		{name: "strip prefix", raw: get("/api/x?q=1"), fast: true},
		{name: "strip prefix root", raw: get("/api"), fast: true},
		{name: "strip prefix slash", raw: get("/api/"), fast: true},
		{name: "strip prefix escaped", handoff: true, raw: get("/api/a%2Fb")},
		{name: "strip prefix, escapes after it", raw: get("/api/a%20b/c%41"), fast: true},
		{name: "strip prefix, escape in it", raw: get("/ap%69/x%20y")},
		{name: "strip prefix, escaped root", raw: get("/api/%41")},
		{name: "hash on escaped path", raw: get("/hp/a%20b"), fast: true},
		{name: "escaped route prefix", raw: get("/%61pi/x")},
		{name: "strip prefix traversal", handoff: true, raw: get("/api/../x")},
		{name: "prefix is not a segment", raw: get("/apix"), fast: true},
		{name: "set and remove headers", raw: get("/edit/x", "X-Remove: gone", "Cookie: a=1",
			"User-Agent: client", "X-Set: client"), fast: true},
		{name: "set headers over lower-case names", raw: get("/edit/x", "x-remove: gone", "cookie: a=1",
			"user-agent: client", "x-set: client"), fast: true},
		{name: "no host header route", raw: get("/nohost/x"), fast: true},
		{name: "hash on header", raw: get("/hh/x", "X-Key: user-17"), fast: true},
		{name: "hash on header other key", raw: get("/hh/x", "X-Key: user-4"), fast: true},
		{name: "hash on lower-case header", raw: get("/hh/x", "x-key: user-4"), fast: true},
		// An empty key picks at random: one endpoint keeps it comparable.
		{name: "hash on missing header", raw: get("/hh1/x"), fast: true},
		{name: "hash on cookie", raw: get("/hc/x", "Cookie: a=1; sid=abc"), fast: true},
		{name: "hash on cookie other", raw: get("/hc/x", "Cookie: sid=xyz"), fast: true},
		{name: "hash on path", raw: get("/hp/one"), fast: true},
		{name: "hash on path other", raw: get("/hp/two/three"), fast: true},
		{name: "hash on client ip", raw: get("/hip/x", "X-Forwarded-For: 9.9.9.9"), fast: true},
		{name: "method-restricted route", raw: rq("DELETE /ro/x HTTP/1.1", hostField)},
		{name: "method-restricted route allows", raw: rq("HEAD /ro/x HTTP/1.1", hostField), fast: true},
		{name: "header-matched route", raw: get("/mh/x", "X-Match: yes"), fast: true},
		{name: "header-matched route lower case", raw: get("/mh/x", "x-match: yes"), fast: true},
		{name: "header-matched route no match", raw: get("/mh/x", "X-Match: no"), fast: true},

		// Connections.
		{name: "pipelined", raw: get("/one") + get("/two"), methods: []string{"GET", "GET"}, fast: true},
		{name: "pipelined HEAD then GET", raw: rq("HEAD /one HTTP/1.1", hostField) + get("/two"),
			methods: []string{"HEAD", "GET"}, fast: true},
		{name: "pipelined plain then not", handoff: true, raw: get("/one") + get("/two", "Expect: 100-continue"),
			methods: []string{"GET", "GET"}},
		{name: "pipelined close then more", raw: get("/one", "Connection: close") + get("/two"), noFollowUp: true},
		{name: "pipelined three", raw: get("/1") + rq("DELETE /2 HTTP/1.1", hostField) + rq("OPTIONS /3 HTTP/1.1", hostField),
			methods: []string{"GET", "DELETE", "OPTIONS"}, fast: true},
		{name: "HTTP/1.0", raw: rq("GET /x HTTP/1.0", hostField), fast: true},
		{name: "HTTP/1.0 close", raw: rq("GET /x HTTP/1.0", hostField, "Connection: close"), fast: true},
		{name: "HTTP/1.0 POST", raw: rq("POST /x HTTP/1.0", hostField, "Content-Length: 5") + "hello"},
		{name: "HTTP/1.0 POST without length", raw: rq("POST /x HTTP/1.0", hostField) + "hello", fast: true},
		{name: "HTTP/1.0 then more", raw: rq("GET /x HTTP/1.0", hostField) + get("/y"), noFollowUp: true, fast: true},
		{name: "HTTP/1.0 keep-alive", raw: rq("GET /x HTTP/1.0", hostField, "Connection: keep-alive"), fast: true},
		{name: "HTTP/1.0 keep-alive then more", raw: rq("GET /x HTTP/1.0", hostField, "Connection: keep-alive") + get("/y"),
			methods: []string{"GET", "GET"}, fast: true},
		{name: "HTTP/1.0 keep-alive and close", raw: rq("GET /x HTTP/1.0", hostField, "Connection: keep-alive, close"), fast: true},
		{name: "HTTP/1.0 Keep-Alive capitalised", raw: rq("GET /x HTTP/1.0", hostField, "Connection: Keep-Alive"), fast: true},
		{name: "HTTP/1.0 keep-alive POST then more", raw: rq("POST /x HTTP/1.0", hostField, "Connection: keep-alive", "Content-Length: 5") + "hello" + rq("GET /y HTTP/1.0", hostField, "Connection: keep-alive"),
			methods: []string{"POST", "GET"}, fast: true},
		{name: "HTTP/1.0 without host", handoff: true, raw: rq("GET /x HTTP/1.0")},
		{name: "POST with body then GET", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: 5") + "hello" + get("/y"),
			methods: []string{"POST", "GET"}},
		{name: "leading empty line", raw: "\r\n" + get("/x")},

		// Malformed requests.
		{name: "space before colon", rejects: 400, raw: get("/x", "X-A : b")},
		{name: "bare LF", rejects: 400, raw: "GET /x HTTP/1.1\nHost: example.net\n\n"},
		{name: "bare LF in a field", rejects: 400, raw: "GET /x HTTP/1.1\r\nHost: example.net\nX-A: b\r\n\r\n"},
		{name: "bare CR in a value", raw: get("/x", "X-A: b\rc")},
		{name: "obs-fold", rejects: 400, raw: get("/x", "X-A: b", " c")},
		{name: "field without colon", raw: get("/x", "X-A")},
		{name: "empty field name", raw: get("/x", ": b")},
		{name: "NUL in value", raw: get("/x", "X-A: b\x00c")},
		{name: "DEL in value", raw: get("/x", "X-A: b\x7fc")},
		{name: "bad byte in name", raw: get("/x", "X(A): b")},
		{name: "unicode in name", raw: get("/x", "X-\xc3\xa9: b")},
		{name: "two spaces in request line", raw: rq("GET  /x HTTP/1.1", hostField)},
		{name: "trailing space in request line", raw: rq("GET /x HTTP/1.1 ", hostField)},
		{name: "HTTP/1.2", rejects: 505, raw: rq("GET /x HTTP/1.2", hostField)},
		{name: "HTTP/2.0", rejects: 505, raw: rq("GET /x HTTP/2.0", hostField)},
		{name: "lower-case version", raw: rq("GET /x http/1.1", hostField)},
		{name: "no version", raw: rq("GET /x", hostField)},
		{name: "control byte in target", raw: get("/x\x01y")},
		{name: "space in target", raw: rq("GET /x y HTTP/1.1", hostField)},
		{name: "two Content-Lengths", raw: get("/x", "Content-Length: 0", "Content-Length: 1") + "a"},
		{name: "Content-Length and chunked", rejects: 400, raw: get("/x", "Content-Length: 3", "Transfer-Encoding: chunked") + "0\r\n\r\n"},
		{name: "bad Content-Length", raw: get("/x", "Content-Length: -1")},
	}
}

// manyFields returns n distinct fields.
// chunked frames body in chunks of n bytes.
func chunked(body string, n int) string {
	var b strings.Builder
	for len(body) > 0 {
		k := min(n, len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", k, body[:k])
		body = body[k:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

func manyFields(n int) []string {
	f := make([]string, n)
	for i := range f {
		f[i] = fmt.Sprintf("X-Field-%d: value %d", i, i)
	}
	return f
}

func TestServerDiffRequests(t *testing.T) {
	log := &requestLog{}
	b1 := newScriptedBackend(t, "b1", log, okResponder("b1"))
	b2 := newScriptedBackend(t, "b2", log, okResponder("b2"))
	p := newDiffPair(t, Options{}, log, corpusRoutes(t, b1.addr(), b2.addr()))
	// Which requests the fast frontend served itself, for the log: every
	// request of the connection (the case's and the follow-up), some, or
	// none of those the reference forwarded with ReverseProxy.
	var all, some, none []string
	for _, c := range requestCorpus() {
		t.Run(c.name, func(t *testing.T) {
			ref, f := p.compare(t, c)
			switch {
			case ref.forwarded == 0:
			case f.forwarded == 0:
				all = append(all, c.name)
			case f.forwarded < ref.forwarded:
				some = append(some, c.name)
			default:
				none = append(none, c.name)
			}
		})
	}
	t.Logf("fast path served every request of: %q", all)
	t.Logf("fast path served some requests of: %q", some)
	t.Logf("fast path served none of: %q", none)
}

func TestServerDiffTrustedPeer(t *testing.T) {
	log := &requestLog{}
	b1 := newScriptedBackend(t, "b1", log, okResponder("b1"))
	b2 := newScriptedBackend(t, "b2", log, okResponder("b2"))
	opts := Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	p := newDiffPair(t, opts, log, corpusRoutes(t, b1.addr(), b2.addr()))
	get := func(target string, fields ...string) string {
		return rq("GET "+target+" HTTP/1.1", append([]string{hostField}, fields...)...)
	}
	for _, c := range []diffCase{
		{name: "no forwarding fields", raw: get("/x"), fast: true},
		{name: "forwarding fields", raw: get("/x", "Forwarded: for=1.2.3.4", "X-Forwarded-For: 1.2.3.4",
			"X-Forwarded-Host: front.example", "X-Forwarded-Proto: https", "X-Real-Ip: 1.2.3.4",
			"X-Forwarded-Prefix: /front"), fast: true},
		{name: "X-Forwarded-For chain", raw: get("/x", "X-Forwarded-For: 1.2.3.4, 10.0.0.1", "X-Forwarded-For: 127.0.0.5"), fast: true},
		{name: "X-Forwarded-For with a non-address", raw: get("/x", "X-Forwarded-For: 1.2.3.4, unknown, 127.0.0.9"), fast: true},
		{name: "X-Forwarded-For all trusted", raw: get("/x", "X-Forwarded-For: 127.0.0.7"), fast: true},
		{name: "X-Forwarded-For empty", raw: get("/x", "X-Forwarded-For:"), fast: true},
		{name: "X-Forwarded-For IPv6", raw: get("/x", "X-Forwarded-For: 2001:db8::1"), fast: true},
		{name: "empty X-Forwarded-Host and Proto", raw: get("/x", "X-Forwarded-Host:", "X-Forwarded-Proto:"), fast: true},
		{name: "two X-Forwarded-Host", raw: get("/x", "X-Forwarded-Host: a.example", "X-Forwarded-Host: b.example"), fast: true},
		{name: "lower-case forwarding fields", raw: get("/x", "x-forwarded-for: 1.2.3.4", "x-forwarded-host: f.example",
			"x-forwarded-proto: https", "x-forwarded-prefix: /p"), fast: true},
		{name: "X-Forwarded-Prefix on a stripping route", raw: get("/api/x", "X-Forwarded-Prefix: /front"), fast: true},
		{name: "route sets X-Forwarded-Proto", raw: get("/edit/x", "X-Forwarded-Proto: wss"), fast: true},
		{name: "hash on client ip", raw: get("/hip/x", "X-Forwarded-For: 9.9.9.9"), fast: true},
		{name: "hash on client ip other", raw: get("/hip/x", "X-Forwarded-For: 8.8.4.4"), fast: true},
		{name: "Connection naming X-Forwarded-For", handoff: true, raw: get("/x", "Connection: X-Forwarded-For", "X-Forwarded-For: 1.2.3.4")},
	} {
		t.Run(c.name, func(t *testing.T) { p.compare(t, c) })
	}
}

// oneRoute is a routeMaker of one catch-all route over addrs.
func oneRoute(t *testing.T, algo string, edit func(*Route), addrs ...string) routeMaker {
	return func(rep Reporter) []*Route {
		r := testRoute(t, "r", algo, diffUpstream(t, "svc", rep, true), addrs...)
		if edit != nil {
			edit(r)
		}
		return []*Route{r}
	}
}

// bigBody is a 1 MiB body that is not one byte repeated.
var bigBody = func() string {
	var b strings.Builder
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, "%07d\n", i)
	}
	return b.String()[:1<<20]
}()

// writeChunks writes body in chunks of size n and the last chunk, without
// the trailer section's end.
func writeChunks(w *bufio.Writer, body string, n int) {
	for len(body) > 0 {
		c := body[:min(n, len(body))]
		body = body[len(c):]
		fmt.Fprintf(w, "%x\r\n%s\r\n", len(c), c)
	}
	w.WriteString("0\r\n")
}

// responseBehaviour is a backend's way of answering, for the differential
// tests of the answers (TestServerDiffResponses, TestRoundTripH1Diff).
type responseBehaviour struct {
	name    string
	respond responder
	// requests are the raw requests sent; nil sends a GET and a HEAD.
	requests []diffCase
	// badResponse, emptyFraming: see diffCase.
	badResponse, emptyFraming bool
}

// responseBehaviours are the backend behaviours the answers are compared
// under.
func responseBehaviours() []responseBehaviour {
	head := func(status string, fields ...string) string {
		return "HTTP/1.1 " + status + "\r\n" + strings.Join(append(fields, ""), "\r\n") + "\r\n"
	}
	date := "Date: " + backendDate
	// Bodies carry a Content-Type (see answer), but in "no Content-Type".
	ct := "Content-Type: text/plain"
	return []responseBehaviour{
		{name: "Content-Length", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", "hello", date, "Content-Type: text/plain")
			return true
		}},
		{name: "no Date", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", "hello", "Content-Type: text/plain")
			return true
		}},
		// A Date the Connection field names is hop-by-hop: dropped, and
		// the answer gets the gateway's own Date, as net/http's server adds
		// one to a header without it.
		{name: "Connection names Date", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", "hello", "Connection: Date", date, "Content-Type: text/plain")
			return true
		}},
		{name: "empty body", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", "", date)
			return true
		}},
		{name: "custom reason phrase", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 Very Fine", "hello", date)
			return true
		}},
		{name: "lower-case field names", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", "hello", "date: "+backendDate, "x-lower: 1", "content-type: text/plain", "X-LOWER: 2")
			return true
		}},
		{name: "duplicated fields", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", "hello", date, "Set-Cookie: a=1", "Set-Cookie: b=2; Path=/", "Vary: Accept", "Vary: Cookie")
			return true
		}},
		{name: "odd field values", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", "hello", date, "X-Empty:", "X-Pad:  a \t", "X-Text: caf\xc3\xa9", "X-Tab: a\tb")
			return true
		}},
		{name: "encoded body", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", "\x1f\x8b\x08\x00not really gzip", date, "Content-Encoding: gzip", "Content-Type: text/plain")
			return true
		}},
		{name: "status 404", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "404 Not Found", "missing", date)
			return true
		}},
		{name: "status 500", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "500 Internal Server Error", "oops", date)
			return true
		}},
		{name: "status 299 unknown", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "299 Whatever", "x", date)
			return true
		}},
		{name: "redirect", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "302 Found", "", date, "Location: /elsewhere?x=1")
			return true
		}},
		{name: "Connection close from backend", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", "bye", date, "Connection: close")
			return false
		}},
		{name: "hop-by-hop fields", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", "hop", date, "Connection: X-Bar, keep-alive", "X-Bar: 1", "Keep-Alive: timeout=5",
				"Proxy-Authenticate: Basic", "Proxy-Connection: keep-alive", "Upgrade: foo", "Te: trailers",
				"Proxy-Authorization: x", "X-Keep: kept")
			return true
		}},
		{name: "Connection naming end-to-end fields", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", "x", date, "Connection: Cache-Control, x-lower", "Cache-Control: no-store", "X-Lower: 1")
			return true
		}},
		{name: "chunked", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, "Transfer-Encoding: chunked", "Content-Type: text/plain"))
			if req.method() != http.MethodHead {
				writeChunks(w, "hello, chunked world", 5)
				w.WriteString("\r\n")
			}
			return true
		}},
		{name: "chunked with declared trailers", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct, "Transfer-Encoding: chunked", "Trailer: X-Sum, X-Count"))
			if req.method() != http.MethodHead {
				writeChunks(w, "with trailers", 4)
				w.WriteString("X-Sum: 42\r\nX-Count: 3\r\n\r\n")
			}
			return true
		}, requests: []diffCase{
			{name: "GET", raw: rq("GET /x HTTP/1.1", hostField)},
			{name: "GET Te trailers", raw: rq("GET /x HTTP/1.1", hostField, "Te: trailers")},
			{name: "HEAD", raw: rq("HEAD /x HTTP/1.1", hostField)},
		}},
		{name: "chunked with undeclared trailers", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct, "Transfer-Encoding: chunked"))
			if req.method() != http.MethodHead {
				writeChunks(w, "surprise", 3)
				w.WriteString("X-Late: yes\r\n\r\n")
			}
			return true
		}, requests: []diffCase{
			{name: "GET", raw: rq("GET /x HTTP/1.1", hostField)},
			{name: "GET Te trailers", raw: rq("GET /x HTTP/1.1", hostField, "Te: trailers")},
		}},
		{name: "chunked with hop-by-hop trailers", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct, "Transfer-Encoding: chunked", "Trailer: X-Sum"))
			if req.method() != http.MethodHead {
				writeChunks(w, "abc", 3)
				w.WriteString("X-Sum: 1\r\nConnection: close\r\nX-Sum: 2\r\n\r\n")
			}
			return true
		}},
		{name: "chunked with extensions", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct, "Transfer-Encoding: chunked"))
			if req.method() != http.MethodHead {
				w.WriteString("3;name=value\r\nabc\r\n0;end\r\n\r\n")
			}
			return true
		}},
		{name: "close-delimited", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString("HTTP/1.1 200 OK\r\n" + ct + "\r\n\r\n")
			if req.method() != http.MethodHead {
				w.WriteString("body until close")
			}
			return false
		}},
		{name: "close-delimited HTTP/1.0", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
			if req.method() != http.MethodHead {
				w.WriteString("old-style body")
			}
			return false
		}},
		{name: "close-delimited large", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct))
			if req.method() != http.MethodHead {
				w.WriteString(bigBody)
			}
			return false
		}},
		{name: "close-delimited empty", emptyFraming: true, respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct))
			return false
		}},
		{name: "large Content-Length", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", bigBody, date, "Content-Type: application/octet-stream")
			return true
		}},
		{name: "large chunked", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct, "Transfer-Encoding: chunked"))
			if req.method() != http.MethodHead {
				writeChunks(w, bigBody, 20000)
				w.WriteString("\r\n")
			}
			return true
		}},
		{name: "204", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("204 No Content", date, "X-A: 1"))
			return true
		}},
		{name: "204 with Content-Length 0", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("204 No Content", date, "Content-Length: 0"))
			return true
		}},
		{name: "304", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("304 Not Modified", date, `Etag: "v1"`, "Cache-Control: max-age=60"))
			return true
		}},
		{name: "304 with Content-Length", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("304 Not Modified", date, `Etag: "v1"`, "Content-Length: 1234"))
			return true
		}},
		{name: "HEAD with Content-Length", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, "Content-Length: 1000", "Content-Type: text/html"))
			if req.method() != http.MethodHead {
				w.WriteString(strings.Repeat("h", 1000))
			}
			return true
		}},
		{name: "103 Early Hints", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("103 Early Hints", "Link: </style.css>; rel=preload; as=style", "Link: </app.js>; rel=preload"))
			w.Flush()
			answer(w, req, "200 OK", "hinted", date, "Link: </style.css>; rel=preload; as=style")
			return true
		}},
		{name: "two 1xx", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("102 Processing"))
			w.WriteString(head("103 Early Hints", "Link: </a>"))
			answer(w, req, "200 OK", "done", date)
			return true
		}},
		{name: "100 Continue unsolicited", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("100 Continue"))
			answer(w, req, "200 OK", "after continue", date)
			return true
		}},
		{name: "duplicate equal Content-Length", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct, "Content-Length: 2", "Content-Length: 2"))
			if req.method() != http.MethodHead {
				w.WriteString("ok")
			}
			return true
		}},
		{name: "Content-Length list", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct, "Content-Length: 2, 2"))
			if req.method() != http.MethodHead {
				w.WriteString("ok")
			}
			return true
		}},
		{name: "conflicting Content-Length", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct, "Content-Length: 2", "Content-Length: 3"))
			w.WriteString("okk")
			return false
		}},
		// The reference relays an answer with both Content-Length and
		// Transfer-Encoding (RFC 9112 section 6.3: ought to be handled as
		// an error); the fast path answers 502, as nginx does.
		{name: "chunked and Content-Length", badResponse: true, respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct, "Content-Length: 100", "Transfer-Encoding: chunked"))
			if req.method() != http.MethodHead {
				writeChunks(w, "te wins", 7)
				w.WriteString("\r\n")
			}
			return false
		}, requests: []diffCase{{name: "GET", raw: rq("GET /x HTTP/1.1", hostField)}}},
		{name: "unknown Transfer-Encoding", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct, "Transfer-Encoding: gzip"))
			w.WriteString("raw bytes")
			return false
		}},
		// The body is larger than net/http's write buffer, so that the
		// reference too has sent the head when the body breaks off (with a
		// short body it sends nothing: a matter of buffering).
		{name: "Content-Length longer than body", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, ct, "Content-Length: "+strconv.Itoa(len(bigBody)+1)))
			if req.method() != http.MethodHead {
				w.WriteString(bigBody)
			}
			return false
		}},
		{name: "no Content-Type", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString(head("200 OK", date, "Content-Length: 5"))
			if req.method() != http.MethodHead {
				w.WriteString("hello")
			}
			return true
		}},
		{name: "garbage", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString("this is not HTTP\r\n\r\n")
			return false
		}},
		{name: "bare LF head", badResponse: true, respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString("HTTP/1.1 200 OK\nContent-Length: 2\nContent-Type: text/plain\nX-A: 1\n\nok")
			return true
		}},
		{name: "obs-fold field", badResponse: true, respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			answer(w, req, "200 OK", "ok", date, "X-Fold: a", " b")
			return true
		}},
		{name: "closes without answering", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			return false
		}},
		{name: "HTTP/1.0 keep-alive", respond: func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
			w.WriteString("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n")
			if req.method() != http.MethodHead {
				w.WriteString("ok")
			}
			return true
		}},
	}
}

func TestServerDiffResponses(t *testing.T) {
	behaviours := responseBehaviours()
	for _, bh := range behaviours {
		t.Run(bh.name, func(t *testing.T) {
			log := &requestLog{}
			be := newScriptedBackend(t, "b", log, bh.respond)
			p := newDiffPair(t, Options{}, log, oneRoute(t, "round_robin", nil, be.addr()))
			reqs := bh.requests
			if reqs == nil {
				reqs = []diffCase{
					{name: "GET", raw: rq("GET /x HTTP/1.1", hostField)},
					{name: "HEAD", raw: rq("HEAD /x HTTP/1.1", hostField)},
					{name: "GET HTTP/1.0", raw: rq("GET /x HTTP/1.0", hostField), fast: true},
					{name: "HEAD HTTP/1.0", raw: rq("HEAD /x HTTP/1.0", hostField), fast: true},
					{name: "GET HTTP/1.0 keep-alive", raw: rq("GET /x HTTP/1.0", hostField, "Connection: keep-alive"), fast: true},
					{name: "HEAD HTTP/1.0 keep-alive", raw: rq("HEAD /x HTTP/1.0", hostField, "Connection: keep-alive"), fast: true},
				}
			}
			for _, c := range reqs {
				c.badResponse = bh.badResponse
				c.emptyFraming = bh.emptyFraming
				t.Run(c.name, func(t *testing.T) { p.compare(t, c) })
			}
		})
	}
}

func TestServerDiffErrors(t *testing.T) {
	date := "Date: " + backendDate
	get := rq("GET /x HTTP/1.1", hostField)
	closing := func(*bufio.Writer, net.Conn, *rawMessage) bool { return false }
	failing := func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
		answer(w, req, "503 Service Unavailable", "down", date)
		return true
	}
	// hanging waits until the proxy gives up on the request and closes the
	// connection (bounded by the backend's deadline).
	hanging := func(_ *bufio.Writer, c net.Conn, _ *rawMessage) bool {
		_, _ = io.Copy(io.Discard, c)
		return false
	}
	for _, tc := range []struct {
		name string
		mk   func(t *testing.T, log *requestLog) routeMaker
		reqs []diffCase
	}{
		{name: "backend closes without answering", mk: func(t *testing.T, log *requestLog) routeMaker {
			return oneRoute(t, "round_robin", nil, newScriptedBackend(t, "closing", log, closing).addr())
		}},
		{name: "no endpoint", mk: func(t *testing.T, log *requestLog) routeMaker {
			return oneRoute(t, "round_robin", nil)
		}},
		{name: "connection refused", mk: func(t *testing.T, log *requestLog) routeMaker {
			return oneRoute(t, "round_robin", nil, deadAddr(t))
		}},
		{name: "route timeout", mk: func(t *testing.T, log *requestLog) routeMaker {
			addr := newScriptedBackend(t, "hanging", log, hanging).addr()
			return oneRoute(t, "round_robin", func(r *Route) { r.Timeout = 50 * time.Millisecond }, addr)
		}},
		{name: "retry after refused connection", mk: func(t *testing.T, log *requestLog) routeMaker {
			ok := newScriptedBackend(t, "ok", log, okResponder("ok")).addr()
			return oneRoute(t, "round_robin", func(r *Route) { r.Upstream.Retry = RetryPolicy{Attempts: 2} }, deadAddr(t), ok)
		}, reqs: []diffCase{
			{name: "first", raw: get}, {name: "second", raw: get}, {name: "third", raw: get},
		}},
		{name: "retry after broken connection", mk: func(t *testing.T, log *requestLog) routeMaker {
			bad := newScriptedBackend(t, "closing", log, closing).addr()
			ok := newScriptedBackend(t, "ok", log, okResponder("ok")).addr()
			return oneRoute(t, "round_robin", func(r *Route) {
				r.Upstream.Retry = RetryPolicy{Attempts: 3, OnBrokenConnection: true}
			}, bad, ok)
		}, reqs: []diffCase{
			{name: "first", raw: get}, {name: "second", raw: get},
			{name: "DELETE", raw: rq("DELETE /x HTTP/1.1", hostField)},
			// A body the policy keeps no replay buffer for is not sent
			// twice, keyed or not; a bodiless POST without a key is not
			// idempotent, one with a key is.
			{name: "POST with body", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: 3") + "abc"},
			{name: "POST with body and key", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: 3", "Idempotency-Key: k") + "abc"},
			{name: "POST without body", raw: rq("POST /x HTTP/1.1", hostField)},
			{name: "POST without body, with key", raw: rq("POST /x HTTP/1.1", hostField, "X-Idempotency-Key: k")},
		}},
		{name: "retry after broken connection with a replay buffer", mk: func(t *testing.T, log *requestLog) routeMaker {
			bad := newScriptedBackend(t, "closing", log, closing).addr()
			ok := newScriptedBackend(t, "ok", log, okResponder("ok")).addr()
			return oneRoute(t, "round_robin", func(r *Route) {
				r.Upstream.Retry = RetryPolicy{Attempts: 3, OnBrokenConnection: true, BufferBodyBytes: 4}
			}, bad, ok)
		}, reqs: []diffCase{
			{name: "PUT within the buffer", raw: rq("PUT /x HTTP/1.1", hostField, "Content-Length: 3") + "abc"},
			{name: "PUT past the buffer", raw: rq("PUT /x HTTP/1.1", hostField, "Content-Length: 5") + "abcde"},
			{name: "POST with key", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: 3", "Idempotency-Key: k") + "abc"},
			{name: "POST without key", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: 3") + "abc"},
		}},
		{name: "retry after broken connection with a large replay buffer", mk: func(t *testing.T, log *requestLog) routeMaker {
			bad := newScriptedBackend(t, "closing", log, closing).addr()
			ok := newScriptedBackend(t, "ok", log, okResponder("ok")).addr()
			return oneRoute(t, "round_robin", func(r *Route) {
				r.Upstream.Retry = RetryPolicy{Attempts: 3, OnBrokenConnection: true, BufferBodyBytes: 32 << 10}
			}, bad, ok)
		}, reqs: []diffCase{
			{name: "PUT of 20 KiB", raw: rq("PUT /x HTTP/1.1", hostField, "Content-Length: 20000") + patterned(20000, 2)},
			{name: "PUT of 40 KiB", raw: rq("PUT /x HTTP/1.1", hostField, "Content-Length: 40000") + patterned(40000, 3)},
			{name: "POST of 20 KiB with key", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: 20000", "Idempotency-Key: k") + patterned(20000, 4)},
		}},
		{name: "retry after server error", mk: func(t *testing.T, log *requestLog) routeMaker {
			bad := newScriptedBackend(t, "failing", log, failing).addr()
			ok := newScriptedBackend(t, "ok", log, okResponder("ok")).addr()
			return oneRoute(t, "round_robin", func(r *Route) {
				r.Upstream.Retry = RetryPolicy{Attempts: 2, OnServerError: true}
			}, bad, ok)
		}, reqs: []diffCase{
			{name: "first", raw: get}, {name: "second", raw: get},
		}},
		// The backend closes each connection after one answer, without
		// saying so: the proxy's next request finds its pooled connection
		// dead. A request that may be sent twice, or that nothing was
		// written of, goes again on a fresh connection; a POST without a
		// key is not sent twice (net/http's rule).
		{name: "stale keep-alive connection", mk: func(t *testing.T, log *requestLog) routeMaker {
			oneShot := func(w *bufio.Writer, _ net.Conn, req *rawMessage) bool {
				answer(w, req, "200 OK", "once", date)
				return false
			}
			return oneRoute(t, "round_robin", nil, newScriptedBackend(t, "oneshot", log, oneShot).addr())
		}, reqs: []diffCase{
			{name: "first", raw: get},
			{name: "GET on a dead connection", raw: get},
			{name: "POST on a dead connection", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: 3") + "abc"},
			{name: "keyed POST on a dead connection", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: 3", "Idempotency-Key: k") + "abc"},
			{name: "large POST on a dead connection", raw: rq("POST /x HTTP/1.1", hostField, "Content-Length: 30000") + patterned(30000, 5)},
			{name: "large PUT on a dead connection", raw: rq("PUT /x HTTP/1.1", hostField, "Content-Length: 30000") + patterned(30000, 6)},
		}},
		{name: "server error without retry", mk: func(t *testing.T, log *requestLog) routeMaker {
			return oneRoute(t, "round_robin", nil, newScriptedBackend(t, "failing", log, failing).addr())
		}},
		{name: "every endpoint fails", mk: func(t *testing.T, log *requestLog) routeMaker {
			bad := newScriptedBackend(t, "closing", log, closing).addr()
			return oneRoute(t, "round_robin", func(r *Route) {
				r.Upstream.Retry = RetryPolicy{Attempts: 3, OnBrokenConnection: true, OnServerError: true}
			}, bad, deadAddr(t), newScriptedBackend(t, "failing", log, failing).addr())
		}},
		{name: "least_request", mk: func(t *testing.T, log *requestLog) routeMaker {
			return oneRoute(t, "least_request", nil, newScriptedBackend(t, "ok", log, okResponder("ok")).addr())
		}},
		{name: "no route", mk: func(t *testing.T, log *requestLog) routeMaker {
			return oneRoute(t, "round_robin", func(r *Route) { r.PathPrefix = "/elsewhere" },
				newScriptedBackend(t, "ok", log, okResponder("ok")).addr())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &requestLog{}
			p := newDiffPair(t, Options{}, log, tc.mk(t, log))
			reqs := tc.reqs
			if reqs == nil {
				reqs = []diffCase{
					{name: "GET", raw: get},
					{name: "HEAD", raw: rq("HEAD /x HTTP/1.1", hostField)},
					{name: "GET HTTP/1.0", raw: rq("GET /x HTTP/1.0", hostField)},
					{name: "GET HTTP/1.0 keep-alive", raw: rq("GET /x HTTP/1.0", hostField, "Connection: keep-alive")},
					{name: "GET close", raw: rq("GET /x HTTP/1.1", hostField, "Connection: close")},
				}
			}
			for _, c := range reqs {
				t.Run(c.name, func(t *testing.T) { p.compare(t, c) })
			}
		})
	}
}

// TestServerDiffStreams checks that both frontends pass a stream's first
// event on before the backend sends the rest, and the same bytes overall.
func TestServerDiffStreams(t *testing.T) {
	chunk := func(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }
	for _, tc := range []struct {
		name         string
		head, second string
		first, last  string
	}{
		{
			name:  "event stream, chunked",
			head:  "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
			first: chunk("data: first\n\n"), last: chunk("data: second\n\n") + "0\r\n\r\n",
		},
		{
			name:  "event stream, close-delimited",
			head:  "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n",
			first: "data: first\n\n", last: "data: second\n\n",
		},
		{
			name:  "event stream with Content-Length",
			head:  "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 27\r\n\r\n",
			first: "data: first\n\n", last: "data: second\n\n",
		},
		{
			name:  "chunked stream",
			head:  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
			first: chunk("first\n"), last: chunk("second\n") + "0\r\n\r\n",
		},
		{
			name:  "close-delimited stream",
			head:  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
			first: "first\n", last: "second\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var results [2]string
			for i, fast := range []bool{false, true} {
				release := make(chan struct{})
				var once sync.Once
				unblock := func() { once.Do(func() { close(release) }) }
				log := &requestLog{}
				be := newScriptedBackend(t, "sse", log, func(w *bufio.Writer, c net.Conn, req *rawMessage) bool {
					w.WriteString(tc.head + tc.first)
					w.Flush()
					select {
					case <-release:
					case <-time.After(diffDeadline):
					}
					w.WriteString(tc.last)
					return false
				})
				t.Cleanup(unblock) // before the backend's cleanup, which waits for its handlers
				side := newDiffSide(t, map[bool]string{false: "net/http", true: "fast"}[fast], fast, Options{},
					oneRoute(t, "round_robin", nil, be.addr()))
				conn, err := net.DialTimeout("tcp", side.addr, diffDeadline)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(diffDeadline))
				if _, err := io.WriteString(conn, rq("GET /events HTTP/1.1", hostField)); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(conn)
				// The first event must arrive while the backend holds the
				// rest back (the read is bounded by the deadline).
				var seen bytes.Buffer
				for !strings.Contains(seen.String(), "first\n") {
					b, err := br.ReadByte()
					if err != nil {
						t.Fatalf("%s: the first event did not arrive before the end of the stream: %v (got %q)",
							side.name, connErr(err), seen.String())
					}
					seen.WriteByte(b)
				}
				unblock()
				m, err := readMessage(bufio.NewReader(io.MultiReader(&seen, br)), true, http.MethodGet)
				if err != nil {
					t.Fatalf("%s: %v", side.name, err)
				}
				var b strings.Builder
				formatResponse(&b, m)
				results[i] = b.String()
			}
			if results[0] != results[1] {
				t.Errorf("the client received different streams (- net/http, + fast):\n%s", lineDiff(results[0], results[1]))
			}
		})
	}
}

// TestServerFastPathServesPlainRequests checks that the comparison is not
// net/http against net/http: the fast frontend serves plain requests
// without the Handler (whose ReverseProxy serves them on the reference),
// and hands the others to net/http.
func TestServerFastPathServesPlainRequests(t *testing.T) {
	log := &requestLog{}
	be := newScriptedBackend(t, "b", log, okResponder("b"))
	p := newDiffPair(t, Options{}, log, oneRoute(t, "round_robin", nil, be.addr()))
	plain := rq("GET /x HTTP/1.1", hostField)
	ref := p.ref.run(t, log, diffCase{raw: plain, noFollowUp: true})
	fast := p.fast.run(t, log, diffCase{raw: plain, noFollowUp: true})
	if ref.forwarded != 1 {
		t.Errorf("the reference's ReverseProxy served %d requests, want 1", ref.forwarded)
	}
	if fast.forwarded != 0 {
		t.Errorf("the fast frontend passed a plain GET to the Handler (%d forwarded), want the fast path", fast.forwarded)
	}
	if ref.client != fast.client || ref.backend != fast.backend {
		t.Errorf("answers differ:\n%s\n%s", lineDiff(ref.client, fast.client), lineDiff(ref.backend, fast.backend))
	}
	if !strings.Contains(fast.client, "HTTP/1.1 200") || strings.Count(fast.backend, "[b] GET /x HTTP/1.1") != 1 {
		t.Errorf("the fast path did not proxy the request:\n%s%s", fast.client, fast.backend)
	}

	// A request naming a field in Connection is the Handler's: the fast
	// frontend hands its connection to net/http, whose ReverseProxy serves
	// it; the connection closes after it, and the plain request pipelined
	// after it is never read.
	other := rq("GET /x HTTP/1.1", hostField, "Connection: X-Foo", "X-Foo: 1") + plain
	c := diffCase{raw: other, methods: []string{"GET", "GET"}, noFollowUp: true}
	r := p.fast.run(t, log, c)
	if r.forwarded != 1 || !strings.Contains(r.client, "Connection: \"close\"") || !strings.HasSuffix(r.client, "read: closed\n") {
		t.Errorf("after a hand-off ReverseProxy served %d requests, want 1 and the connection closed:\n%s", r.forwarded, r.client)
	}
	// With DisableFastPath, everything is net/http's.
	if r := p.ref.run(t, log, diffCase{raw: plain + plain, methods: []string{"GET", "GET"}, noFollowUp: true}); r.forwarded != 2 {
		t.Errorf("with DisableFastPath ReverseProxy served %d requests, want 2", r.forwarded)
	}
}
