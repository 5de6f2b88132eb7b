package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"

	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zkgate/zkgate/balancer"
)

// The states of a client connection (cconn, idleconn.go), for Shutdown,
// the poller and the sweep of hot waits: only a connection between
// requests may be closed by another goroutine than its own.
const (
	connIdle    int32 = iota // parked in the poller, or (not parkable) waiting in a read
	connActive               // a goroutine serves it
	connClosed               //
	connWaiting              // its goroutine waits for bytes without buffers (hot)
	connKicked               // the hot wait was interrupted to park it
	connTunnel               // a tunnel after a protocol switch (tunnel.go)
	// connInWait: a request is served inside the hot wait (waitserve.go),
	// which holds the socket's read lock: closing the socket waits for
	// the request to end.
	connInWait
	// connLooped: between requests in a loop (loop_linux.go), with no
	// goroutine and no buffer; only the loop closes it.
	connLooped
)

// clientBufferSize is the size of a fast connection's write buffer.
const clientBufferSize = 4 << 10

// unixNanos is t in Unix nanoseconds, 0 for the zero time: a cconn keeps
// its read deadline so (fromUnixNanos turns it back).
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// deadlineSlack is how far past the exact one a refreshed read deadline
// may lie (at most a sixteenth of the timeout): an idle connection's
// deadline is moved only when it falls outside that window, so that a busy
// connection sets it about once per second instead of once per request
// (each costs a timer update).
const deadlineSlack = time.Second

// fconn is the serving state of a client connection (cc) while the fast
// path serves it; nc, remoteAddr and peer are cc's.
type fconn struct {
	// polAnswer is the answer of a request the route's policies refuse
	// (or a preflight), reused by the connection's requests.
	polAnswer bufferedResponse
	s         *Server
	cc        *cconn
	nc        net.Conn
	in        inBuf // what the client sent and the fast path has not consumed
	bw        *clientWriter
	// sock reads and writes a plain TCP connection (*net.TCPConn, not a
	// wrapper) once it has waited between requests, with raw system calls
	// (sockio_linux.go); else (not ok) nc does. It is allocated with c:
	// its functions are bound to it.
	sock       *sockIO
	remoteAddr string
	peer       string // the peer's IP

	readDeadline time.Time // the read deadline last set (zero: none)
	// now is the time last read from the clock: the connection's start,
	// then each request's start (or attempt's) and end. The deadlines the
	// fast path sets are counted from it rather than from a fresh clock
	// read. nowStale: bytes were read from the client since (fill), or an
	// answer was flushed (end), either of which may have waited, so a
	// request parsed now does not start at now: serveRequest reads the
	// clock again. A request the hot wait read, bound just after, is
	// served without a second reading.
	now      time.Time
	nowStale bool

	// The client watch (watch.go): a request whose answer takes longer
	// than watchDelay gets a goroutine reading the client connection, so
	// that a client going away aborts the upstream exchange.
	w        *clientWatch // made by the first watched request, kept with c
	watchBuf [1]byte
	watchN   int  // 1 when the watch read a byte of the next request
	watching bool // armWatch armed the watch of the current request
	// inWait: the request is served inside the hot wait (waitserve.go),
	// which holds the client socket's read lock; drainLater: lingerClose
	// left the drain to be done once that wait has returned; inLoop: the
	// request was read and begun by a loop (loop_linux.go).
	inWait, drainLater, inLoop bool
	gone                       atomic.Bool
	cur                        atomic.Pointer[upConn]

	req fastRequest
	why string // what is wrong with a refused request head (reject)
	res fastResponse
	// z encodes the body of the answer being relayed when the route
	// compresses it (compress.go), else nil.
	z *encoder
	// body is the request body as received (a chunked body with its
	// framing), in the input buffer right after the head.
	body []byte
	// out is the outbound request head; when its Host value may differ
	// per attempt (the endpoint's address), without it, which goes at
	// hostAt; hostAt is -1 when out is whole (the client's Host passed).
	out    []byte
	hostAt int
	ex     exchange
	// tunnelUp is the endpoint connection of a protocol switch the
	// endpoint accepted: serve starts the tunnel.
	tunnelUp    *upConn
	tunnelEntry *entry
	tunnelEp    balancer.Endpoint
}

// fconnPool keeps the serving state of connections gone idle or closed,
// buffers included, for the connections that have bytes to serve: the
// serving state and its 8 KiB of buffers are the busy connections', not
// every open one's.
var fconnPool sync.Pool

// bindFconn returns serving state for cc.
func bindFconn(cc *cconn) *fconn {
	c, _ := fconnPool.Get().(*fconn)
	if c == nil {
		c = &fconn{}
		c.bw = newClientWriter(nil)
		c.sock = new(sockIO)
		c.req.hdrs = make([]hdrLine, 0, 16)
	}
	c.s, c.cc, c.nc, c.now = cc.s, cc, cc.nc, time.Now()
	c.remoteAddr, c.peer = cc.addr(), cc.peer()
	c.readDeadline = fromUnixNanos(cc.readDeadline)
	if cc.got != nil {
		// The start of a request the hot wait read.
		c.in.bp, c.in.w = cc.got, int(cc.gotN)
		cc.got = nil
	} else {
		c.in.bp = getInBuf(0)
	}
	var sock *sockIO
	if plainTCP(cc.nc) && cc.raw != nil {
		// Made by the first wait between requests (cconn.makeRaw): a
		// connection that closes after its first request is served
		// through nc, and allocates no RawConn. A connection a listener
		// wrapped is read and written through its wrapper, which may
		// count or shape what passes.
		c.sock.init(cc.raw)
		sock = c.sock
	}
	c.bw.reset(cc.nc, sock)
	return c
}

// recycle returns c, whose connection is parked or closed, to fconnPool:
// everything is zeroed but the reusable slices, which are emptied; the
// input buffer goes back to its pool. No one else refers to c any more:
// the client watch is disarmed, and a connection handed to net/http (whose
// bufferedConn reads the input buffer) is never recycled.
func (c *fconn) recycle() {
	c.in.release()
	bw, out, dec := c.bw, c.out[:0], c.req.pathBuf[:0]
	reqHdrs, resHdrs, conn := c.req.hdrs[:0], c.res.hdrs[:0], c.res.conn[:0]
	w := c.w
	sock := c.sock
	sock.init(nil)
	*c = fconn{}
	c.sock = sock
	bw.reset(nil, nil)
	c.bw, c.out, c.req.pathBuf = bw, out, dec
	c.req.hdrs, c.res.hdrs, c.res.conn = reqHdrs, resHdrs, conn
	// The watch is idle (disarmWatch), its timer maybe still set: it
	// finds no request in flight when it fires.
	c.w = w
	fconnPool.Put(c)
}

// The verdicts on a request besides an HTTP status to reject it with:
// serve it on the fast path, or hand the connection to net/http.
const (
	serveFast = 0
	handOff   = -1
	// clientGone: the client closed the connection before its request
	// was whole; nothing is answered.
	clientGone = -2
)

// errInputFull is a client input buffer at its limit.
var errInputFull = errors.New("proxy: request larger than the buffer limit")

// serve runs the connection: it reads requests and serves those the fast
// path takes, until the connection closes or is handed to net/http, or,
// when it can be parked, until it has served a request and has no byte
// left to serve, or has waited for its first request for hotIdle. It
// reports true in the last two cases: the caller makes the connection wait
// without its buffers (idleconn.go). ready is whether bytes are waiting to
// be read.
func (c *fconn) serve(ready bool) (park bool) {
	cc := c.cc
	handedOff := false
	defer func() {
		if !park && !handedOff { // handoff has untracked it
			cc.close()
			c.recycle()
		}
	}()
	for {
		if len(c.in.unread()) == 0 && c.watchN == 0 {
			if !ready && cc.parkable && cc.served {
				return !c.s.closing.Load()
			}
			switch c.waitRequest() {
			case waitCold:
				return !c.s.closing.Load()
			case waitClosed:
				return false
			}
		}
		ready = false
		c.req.reset()
		c.why = ""
		n, verdict, err := c.readHead()
		if err != nil {
			return false
		}
		if verdict == serveFast && !cc.served && c.s.cfg.HTTP2 == HTTP2H2C && bytes.HasPrefix(c.in.unread(), h2Preface) {
			c.handoff(true) // an h2c connection: net/http's for good
			handedOff = true
			return false
		}
		if verdict == serveFast {
			verdict = c.parseRequest(c.in.unread()[:n])
		}
		keep := false
		if verdict == serveFast {
			keep, verdict = c.serveRequest(n)
		}
		cc.served = true
		if c.tunnelUp != nil {
			c.startTunnel()
			handedOff = true // the tunnel's now
			c.recycle()
			return false
		}
		switch {
		case verdict == handOff:
			c.handoff(false)
			handedOff = true
			return false
		case verdict > 0:
			c.reject(verdict)
			return false
		case verdict != serveFast || !keep:
			return false
		}
		if c.s.closing.Load() {
			return false
		}
	}
}

// waitRequest reads the start of the next request into the empty input
// buffer, bounded by the idle timeout: for a connection's first request
// (which mostly comes with the connection), and for every request of one
// that cannot be parked. Meanwhile the connection is idle: Shutdown may
// close it, and kickCold may interrupt the read of a parkable one that
// stays silent for hotIdle (waitCold: it is to be parked).
func (c *fconn) waitRequest() int {
	c.waitDeadline()
	cc := c.cc
	st := connIdle
	if cc.parkable {
		st = connWaiting
		cc.since.Store(c.now.UnixNano())
	}
	cc.state.Store(st)
	if c.s.closing.Load() {
		return waitClosed
	}
	err := c.fill(c.s.cfg.MaxHeaderBytes, true)
	switch cc.endWait(st, connActive) {
	case st:
		if err != nil {
			return waitClosed
		}
		return waitReady
	case connKicked:
		c.readDeadline = aLongTimeAgo // kickCold's
		if err == nil {
			c.waitDeadline()
			return waitReady
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return waitCold
		}
	}
	return waitClosed
}

// fill reads what one read of the client connection returns into the
// input buffer. limit bounds the unread bytes the buffer grows to hold
// (errInputFull past it); move allows moving them to the buffer's start,
// when nothing points into the buffer.
func (c *fconn) fill(limit int, move bool) error {
	room := c.in.room(limit, move)
	if len(room) == 0 {
		return errInputFull
	}
	n, err := c.Read(room)
	c.in.w += n
	c.nowStale = true
	switch {
	case n > 0:
		return nil // an error comes again with the next read
	case err == nil:
		return io.ErrNoProgress
	}
	return err
}

// h2Preface is the start of the HTTP/2 connection preface (RFC 9113 §3.4)
// up to its empty line: a request head to an HTTP/1.1 parser.
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\n")

// handoff gives the connection, with its unread bytes, to net/http: for one
// request, or for its whole life (an h2c connection).
func (c *fconn) handoff(whole bool) {
	c.s.trackConn(c.cc, false)
	_ = c.nc.SetDeadline(time.Time{}) // net/http sets its own
	// The input buffer's bytes come first, then the watch's byte, which
	// was read from the connection after them. The buffer is not pooled
	// again: net/http reads it.
	unread := c.in.unread()
	if c.watchN > 0 {
		unread = append(unread[:len(unread):len(unread)], c.watchBuf[0])
		c.watchN = 0
	}
	var nc net.Conn = c.nc
	if len(unread) > 0 || whole {
		under := c.nc
		if _, isTLS := under.(*tls.Conn); whole && !isTLS && !c.s.nativeH2() {
			// h2c on net/http's HTTP/2 server: it writes through a
			// coalescingConn. zkgate's own gathers its frames itself.
			wc := newCoalescingConn(under)
			wc.start()
			under = wc
		}
		nc = &bufferedConn{Conn: under, unread: unread, whole: whole}
	}
	if whole && c.s.nativeH2() {
		if _, isTLS := c.nc.(*tls.Conn); !isTLS {
			c.s.serveH2(nc, nil, nil)
			return
		}
	}
	c.s.handoff(nc)
}

// refuseHead records why a request head is refused, for reject, and
// returns status.
func (c *fconn) refuseHead(status int, why string) int {
	c.why = why
	return status
}

// reject answers a request the fast path refuses (the table at
// parseRequest) with status, in net/http's words for the rejections it
// makes itself plus what is wrong, and closes the connection: what follows
// the refused head cannot be told apart from a request, so nothing more
// is read as one. No endpoint was contacted. The request is counted and
// logged without a route, with as much of its head as was parsed.
func (c *fconn) reject(status int) {
	c.req.close = true
	c.now = time.Now()
	c.begin(nil, c.now)
	text := strconv.Itoa(status) + " " + http.StatusText(status)
	w := c.bw
	_, _ = w.WriteString("HTTP/1.1 ")
	_, _ = w.WriteString(text)
	_, _ = w.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
	_, _ = w.WriteString(text)
	if c.why != "" {
		_, _ = w.WriteString(": ")
		_, _ = w.WriteString(c.why)
	}
	c.ex.sw.status = status
	c.finish(&c.ex)
	if w.Flush() == nil {
		c.lingerClose()
	}
}

// Lingering close: after a rejection the client may still be sending (a
// body, a huge head); closing with unread bytes would reset the
// connection and could destroy the answer before the client reads it. So
// the write side is closed first and what comes is read and dropped for a
// while, as net/http and nginx (lingering_close) do, within bounds.
const (
	lingerTimeout = 500 * time.Millisecond
	lingerBytes   = 256 << 10
)

func (c *fconn) lingerClose() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	if c.inWait {
		// The hot wait holds the read lock: drained once it has
		// returned (serveInWait, cconn.wait).
		c.drainLater = true
		return
	}
	c.drain()
}

// drain reads and drops what the client still sends, for lingerClose.
func (c *fconn) drain() {
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	c.in.r, c.in.w = 0, 0
	buf := *c.in.bp
	for n := 0; n < lingerBytes; {
		k, err := c.nc.Read(buf)
		n += k
		if err != nil {
			return
		}
	}
}

// waitDeadline sets the read deadline for waiting for a request, as
// net/http does (cconn.idleTimeout), or up to a sixteenth of it (at most
// deadlineSlack) later.
func (c *fconn) waitDeadline() {
	d := c.cc.idleTimeout()
	if d <= 0 {
		if !c.readDeadline.IsZero() {
			c.readDeadline = time.Time{}
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		return
	}
	c.setReadDeadline(c.now.Add(d), min(d/16, deadlineSlack))
}

// setReadDeadline makes the read deadline t, or up to slack later: a
// deadline already in [t, t+slack] stays, else it is moved to t+slack, so
// that a busy connection moves it about once per slack and a timeout never
// fires early (an earlier deadline cut off clients that were never idle
// that long).
func (c *fconn) setReadDeadline(t time.Time, slack time.Duration) {
	if !c.readDeadline.IsZero() && !c.readDeadline.Before(t) && c.readDeadline.Sub(t) <= slack {
		return
	}
	c.readDeadline = t.Add(slack)
	_ = c.nc.SetReadDeadline(c.readDeadline)
}

// readHead reads until the input holds a whole request head and returns
// its length, or a status to reject the request with: 400 for a line not
// ending in CRLF or a leading empty line, 431 or 414 for a head past
// MaxHeaderBytes (414 when its request line alone is that long), 400 for a
// request line cut short by ReadHeaderTimeout (as net/http answers).
// Reading past the first segment is bounded by ReadHeaderTimeout. The scan
// resumes where the last one stopped, so a head sent a byte at a time
// costs its length, not its square.
func (c *fconn) readHead() (n, verdict int, err error) {
	timed := false
	from := 0
	for {
		b := c.in.unread()
		switch n := headEnd(b, &from); {
		case n < 0:
			return 0, c.refuseHead(http.StatusBadRequest, "line not ending in CRLF, or a leading empty line"), nil
		case n > c.s.cfg.MaxHeaderBytes:
			return 0, c.headTooLarge(b), nil
		case n > 0:
			return n, serveFast, nil
		}
		if !timed {
			timed = true
			t := c.s.cfg.ReadHeaderTimeout
			if t <= 0 {
				t = c.s.cfg.ReadTimeout
			}
			if t > 0 {
				c.readDeadline = time.Now().Add(t)
				_ = c.nc.SetReadDeadline(c.readDeadline)
			}
		}
		if err := c.fill(c.s.cfg.MaxHeaderBytes, true); err != nil {
			if err == errInputFull {
				return 0, c.headTooLarge(c.in.unread()), nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && bytes.IndexByte(c.in.unread(), '\n') < 0 {
				return 0, c.refuseHead(http.StatusBadRequest, "request line cut short"), nil
			}
			return 0, 0, err
		}
	}
}

// headTooLarge is the status of a head larger than MaxHeaderBytes: 414
// when its request line passes MaxTargetBytes, 431 otherwise.
func (c *fconn) headTooLarge(b []byte) int {
	line := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line = b[:i]
	}
	if len(line) > c.s.cfg.MaxTargetBytes {
		return c.refuseHead(http.StatusRequestURITooLong, "request line too long")
	}
	return c.refuseHead(http.StatusRequestHeaderFieldsTooLarge, "request head too large")
}

// headEnd returns the length of the head at the start of b (through its
// empty line), 0 when b holds no whole head yet, or -1 when a line ends in
// a bare LF or the head starts with an empty line. The scan starts at
// *from, the start of a line no earlier call on the same head found the
// end of, and advances it.
func headEnd(b []byte, from *int) int {
	i := *from
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			*from = i
			return 0
		}
		j += i
		if j == 0 || b[j-1] != '\r' {
			return -1
		}
		if j == i+1 {
			if i == 0 {
				return -1
			}
			return j + 1
		}
		i = j + 1
	}
}
