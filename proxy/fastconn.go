package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The states of a fast connection, for Shutdown: only an idle connection
// (waiting for a request) may be closed under its goroutine.
const (
	connIdle int32 = iota
	connActive
	connClosed
)

// clientBufferSize is the size of a fast connection's read and write
// buffers. A request head that does not fit is handed to net/http, which
// applies MaxHeaderBytes.
const clientBufferSize = 4 << 10

// maxBufferedBody is the largest request body the fast path takes when
// it does not fit the read buffer with its head: such a body is read
// whole into a pooled buffer before the endpoint is contacted, as nginx
// buffers request bodies. A larger body goes to net/http, which streams it.
const maxBufferedBody = 64 << 10

// deadlineSlack is how far a refreshed read deadline may lag behind the
// exact one: an idle connection's deadline is moved only when it is more
// than this behind, so that a busy connection sets it about once per
// second instead of once per request (each costs a timer update).
const deadlineSlack = time.Second

// fconn is one client connection served by the fast path.
type fconn struct {
	s          *Server
	nc         net.Conn
	br         *bufio.Reader
	bw         *clientWriter
	remoteAddr string
	peer       string // the peer's IP
	state      atomic.Int32

	readDeadline time.Time // the read deadline last set (zero: none)
	// now is the time last read from the clock: the connection's start,
	// then each request's start (or attempt's) and end. The deadlines the
	// fast path sets are counted from it rather than from a fresh clock
	// read.
	now time.Time

	// The client watch (watch.go): a request whose answer takes longer
	// than watchDelay gets a goroutine reading the client connection, so
	// that a client going away aborts the upstream exchange.
	watchTimer *time.Timer
	watchDone  chan struct{}
	watchBuf   [1]byte
	watchN     int // 1 when the watch read a byte of the next request
	gone       atomic.Bool
	cur        atomic.Pointer[upConn]

	req  fastRequest
	res  fastResponse
	slow *http.Response // a response head too large for res (readSlowHead)
	body []byte         // the request body, in the read buffer or in bigBody
	// bigBody is the pooled buffer holding a body too large for the read
	// buffer (nil otherwise); bodyInBuf of its bytes came from the read
	// buffer, which still holds them.
	bigBody   *[]byte
	bodyInBuf int
	// unread are bytes read from the connection past the read buffer
	// (part of a body) that a hand-off must give net/http after the
	// buffered ones.
	unread []byte
	// pending are bytes read past the end of a chunked body: the start of
	// the next request, which Read returns before reading the connection.
	pending []byte
	pendBuf []byte
	out     []byte // the outbound request head without its Host value
	hostAt  int    // where in out the Host value goes
	ex      exchange
}

// fconnPool keeps the state of closed fast connections, buffers included,
// for new ones: a client that opens a connection per request (HTTP/1.0,
// as nginx talks to upstreams by default) then costs no 8 KiB of buffers
// each time.
var fconnPool sync.Pool

func newFconn(s *Server, nc net.Conn) *fconn {
	c, _ := fconnPool.Get().(*fconn)
	if c == nil {
		c = &fconn{}
		c.br = bufio.NewReaderSize(c, clientBufferSize)
		c.bw = newClientWriter(nil)
		c.req.hdrs = make([]hdrLine, 0, 16)
	}
	c.s, c.nc, c.now = s, nc, time.Now()
	c.remoteAddr = nc.RemoteAddr().String()
	c.peer = peerHost(c.remoteAddr)
	c.bw.reset(nc)
	return c
}

// recycle returns c, whose connection is closed and whose goroutine ends,
// to fconnPool: everything is zeroed but the buffers, which are emptied.
// No one else refers to c any more: the Server dropped it from its set,
// the client watch is disarmed, and a connection handed to net/http (whose
// bufferedConn reads c.br) is never recycled.
func (c *fconn) recycle() {
	br, bw, out, dec, pend := c.br, c.bw, c.out[:0], c.req.pathBuf[:0], c.pendBuf[:0]
	reqHdrs, resHdrs, conn := c.req.hdrs[:0], c.res.hdrs[:0], c.res.conn[:0]
	watchTimer, watchDone := c.watchTimer, c.watchDone
	*c = fconn{}
	br.Reset(c)
	bw.reset(nil)
	c.br, c.bw, c.out, c.req.pathBuf, c.pendBuf = br, bw, out, dec, pend
	c.req.hdrs, c.res.hdrs, c.res.conn = reqHdrs, resHdrs, conn
	// The timer is stopped (disarmWatch) and bound to c, which it keeps.
	c.watchTimer, c.watchDone = watchTimer, watchDone
	fconnPool.Put(c)
}

// closeIfIdle closes c if it waits for a request (Shutdown).
func (c *fconn) closeIfIdle() {
	if c.state.CompareAndSwap(connIdle, connClosed) {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// serve runs the connection: it reads requests and serves those the fast
// path takes, until the connection closes or is handed to net/http.
func (c *fconn) serve() {
	handedOff := false
	defer func() {
		if !handedOff { // handoff has untracked it
			c.s.trackConn(c, false)
			_ = c.nc.Close()
			c.recycle()
		}
	}()
	for first := true; ; first = false {
		c.waitDeadline(first)
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		if !c.state.CompareAndSwap(connIdle, connActive) {
			return // Shutdown closed it while idle
		}
		n, err := c.readHead()
		if err != nil {
			return
		}
		keep, handoff := false, n == 0 || !c.parseRequest(c.peekHead(n)) || !c.readBody(n)
		if !handoff {
			keep, handoff = c.serveRequest(n)
		}
		if handoff {
			c.handoff()
			handedOff = true
			return
		}
		if !keep {
			return
		}
		if !c.state.CompareAndSwap(connActive, connIdle) || c.s.closing.Load() {
			return
		}
	}
}

// peekHead returns the first n buffered bytes, the request head.
func (c *fconn) peekHead(n int) []byte {
	b, _ := c.br.Peek(n)
	return b
}

// handoff gives the connection, with its unread bytes, to net/http.
func (c *fconn) handoff() {
	c.s.trackConn(c, false)
	_ = c.nc.SetDeadline(time.Time{}) // net/http sets its own
	// After br's bytes come, in Read's order, those read past a chunked
	// body and the watch's byte; or, instead, those of a body read in part.
	unread := c.unread
	if len(c.pending) > 0 || c.watchN > 0 {
		unread = append(append([]byte(nil), c.pending...), c.watchBuf[:c.watchN]...)
	}
	c.unread, c.pending, c.watchN = nil, nil, 0
	var nc net.Conn = c.nc
	if c.br.Buffered() > 0 || len(unread) > 0 {
		nc = &bufferedConn{Conn: c.nc, br: c.br, unread: unread}
	}
	c.s.handoff(nc)
}

// waitDeadline sets the read deadline for waiting for a request, as
// net/http does: the first from the connection's start bounded by
// ReadHeaderTimeout, the next ones by IdleTimeout (each else ReadTimeout),
// give or take deadlineSlack.
func (c *fconn) waitDeadline(first bool) {
	d := c.s.cfg.IdleTimeout
	if first {
		d = c.s.cfg.ReadHeaderTimeout
	}
	if d <= 0 {
		d = c.s.cfg.ReadTimeout
	}
	if d <= 0 {
		if !c.readDeadline.IsZero() {
			c.readDeadline = time.Time{}
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		return
	}
	c.setReadDeadline(c.now.Add(d))
}

// setReadDeadline moves the read deadline to t unless it is already within
// deadlineSlack before t.
func (c *fconn) setReadDeadline(t time.Time) {
	if !c.readDeadline.IsZero() && c.readDeadline.Before(t) && t.Sub(c.readDeadline) < deadlineSlack {
		return
	}
	c.readDeadline = t
	_ = c.nc.SetReadDeadline(t)
}

// readHead reads until the buffer holds a whole request head and returns
// its length, or 0 when the request must go to net/http (a head larger
// than the buffer, bare LF line ends, a leading empty line). Reading past
// the first segment is bounded by ReadHeaderTimeout.
func (c *fconn) readHead() (int, error) {
	timed := false
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		switch n := headEnd(buf); {
		case n > 0:
			return n, nil
		case n < 0:
			return 0, nil
		}
		if len(buf) == c.br.Size() {
			return 0, nil
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
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && bytes.IndexByte(buf, '\n') < 0 {
				// A request line cut short: net/http answers 400 then.
				_, _ = c.bw.WriteString("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request")
				_ = c.bw.Flush()
			}
			return 0, err
		}
	}
}

// readBody makes sure the request body (c.req.clen bytes after the head of
// n bytes) is in the buffer too, reading until it is. A body that cannot
// fit is read later by readBigBody when it is at most maxBufferedBody, and
// left to net/http, which streams it, when larger. A body that does not
// arrive within ReadHeaderTimeout (else ReadTimeout) is left to net/http
// too.
func (c *fconn) readBody(n int) bool {
	if c.req.chunked {
		return true // readChunkedBody reads it once the route is known
	}
	need := n + int(c.req.clen)
	if c.req.clen == 0 || c.br.Buffered() >= need {
		return true
	}
	if c.req.clen > int64(c.br.Size()-n) {
		return c.req.clen <= maxBufferedBody
	}
	c.setBodyDeadline()
	_, err := c.br.Peek(need)
	return err == nil
}

// setBodyDeadline bounds the wait for a request body.
func (c *fconn) setBodyDeadline() {
	if t := max(c.s.cfg.ReadHeaderTimeout, c.s.cfg.ReadTimeout); t > 0 {
		c.readDeadline = time.Now().Add(t)
		_ = c.nc.SetReadDeadline(c.readDeadline)
	}
}

// bigBodyFor reports whether the body of the request whose head is n bytes
// long does not fit the read buffer with it.
func (c *fconn) bigBodyFor(n int) bool { return n+int(c.req.clen) > c.br.Size() }

// readBigBody reads the body of the request whose head is the first n
// buffered bytes into a pooled buffer: the part already buffered is
// copied, the rest read from the connection past the read buffer, which
// keeps the head the parsed request points into. When the body does not
// come whole within the body deadline, or the client closes or resets the
// connection before, it returns false with what it read in c.unread: the
// connection goes to net/http, which waits for the rest under its own
// rules or answers the request cut short, as it does when the fast path
// hands it a smaller body.
func (c *fconn) readBigBody(n int) bool {
	clen := int(c.req.clen)
	bp := getBodyBuffer(min(clen, firstBodyBuffer))
	have, _ := c.br.Peek(c.br.Buffered())
	k := copy(*bp, have[n:])
	got := k
	c.setBodyDeadline()
	for got < clen {
		if got == len(*bp) {
			bp = growBodyBuffer(bp, got, clen)
		}
		m, err := c.Read((*bp)[got:min(clen, len(*bp))])
		got += m
		if err != nil && got < clen {
			c.unread = (*bp)[k:got] // no longer pooled: net/http reads it
			return false
		}
	}
	c.bigBody, c.bodyInBuf = bp, k
	c.body = (*bp)[:clen]
	return true
}

// firstBodyBuffer is the size of the buffer a body larger than the read
// buffer is read into first; it grows by size classes as the body comes,
// so that a client holds only as much memory as it has sent (a slow client
// announcing 64 KiB holds 8 KiB until it sends more).
const firstBodyBuffer = 8 << 10

// growBodyBuffer returns a pooled buffer of the next size class, at most
// one holding want bytes, with the got bytes of bp, which goes back to its
// pool.
func growBodyBuffer(bp *[]byte, got, want int) *[]byte {
	nb := getBodyBuffer(min(want, 2*len(*bp)))
	copy(*nb, (*bp)[:got])
	putBodyBuffer(bp)
	return nb
}

// readChunkedBody reads the chunked body of the request whose head is the
// first n buffered bytes into a pooled buffer, as readBigBody does, and
// checks its framing: c.body is then the body as received, framing
// included (it is forwarded so), and c.req.clen its decoded length. Bytes
// read past its end are kept in c.pending for the next request. A body
// that is malformed, has trailer fields, does not fit maxBufferedBody with
// its framing, is longer than limit (when positive) or does not come whole
// within the body deadline goes to net/http with the bytes read so far:
// readChunkedBody returns false with them in c.unread.
func (c *fconn) readChunkedBody(n int, limit int64) bool {
	bp := getBodyBuffer(firstBodyBuffer)
	have, _ := c.br.Peek(c.br.Buffered())
	k := copy(*bp, have[n:])
	got := k
	deadline := false
	for {
		end, size, st := scanChunked((*bp)[:got])
		if st == chunkedDone && (limit <= 0 || size <= limit) {
			if got > end {
				c.pendBuf = append(c.pendBuf[:0], (*bp)[end:got]...)
				c.pending = c.pendBuf
			}
			c.bigBody, c.bodyInBuf = bp, k
			c.body = (*bp)[:end]
			c.req.clen = size
			return true
		}
		if st == chunkedMore && got < maxBufferedBody {
			if got == len(*bp) {
				bp = growBodyBuffer(bp, got, maxBufferedBody)
			}
			if !deadline {
				c.setBodyDeadline()
				deadline = true
			}
			m, err := c.Read((*bp)[got:])
			got += m
			if err == nil {
				continue
			}
		}
		// Malformed, too large, or cut short: net/http's.
		c.unread = (*bp)[k:got] // no longer pooled: net/http reads it
		return false
	}
}

// The outcomes of scanChunked.
const (
	chunkedMore = iota // well formed so far, not complete
	chunkedDone
	chunkedBad // malformed, or with what the fast path leaves to net/http
)

// scanChunked checks the chunked body at the start of b and returns its end
// (through the empty line ending the trailer section) and decoded size. It
// accepts a strict subset of what net/http reads: sizes of 1 to 15
// hexadecimal digits, short extensions of visible ASCII, CRLF line ends and
// no trailer fields.
func scanChunked(b []byte) (end int, size int64, st int) {
	i := 0
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			if len(b)-i > 64 {
				return 0, 0, chunkedBad // no size line is that long
			}
			return 0, 0, chunkedMore
		}
		n, ok := chunkLineSize(b[i : i+j+1])
		if !ok {
			return 0, 0, chunkedBad
		}
		i += j + 1
		if n == 0 {
			switch {
			case len(b)-i < 2:
				return 0, 0, chunkedMore
			case b[i] == '\r' && b[i+1] == '\n':
				return i + 2, size, chunkedDone
			}
			return 0, 0, chunkedBad // trailer fields: net/http's
		}
		if int64(len(b)-i) < n+2 {
			return 0, 0, chunkedMore
		}
		i += int(n)
		if b[i] != '\r' || b[i+1] != '\n' {
			return 0, 0, chunkedBad
		}
		i += 2
		size += n
	}
}

// chunkLineSize parses a chunk-size line, CRLF included, more strictly
// than chunkSize: an extension is at most 32 visible ASCII bytes.
func chunkLineSize(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, false
	}
	line = line[:len(line)-2]
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		ext := line[i+1:]
		if len(ext) > 32 {
			return 0, false
		}
		for _, ch := range ext {
			if ch <= ' ' || ch >= 0x7f {
				return 0, false
			}
		}
		line = line[:i]
	}
	return parseHex(line)
}

// releaseBody consumes the request whose head is n bytes long from the read
// buffer and returns a pooled body buffer.
func (c *fconn) releaseBody(n int) {
	if c.bigBody != nil {
		_, _ = c.br.Discard(n + c.bodyInBuf)
		putBodyBuffer(c.bigBody)
		c.bigBody, c.bodyInBuf = nil, 0
	} else {
		_, _ = c.br.Discard(n + int(c.req.clen))
	}
	c.body = nil
}

// bodyPools hold the buffers of bodies larger than the read buffer, by size
// class: firstBodyBuffer (8 KiB), 16, 32 and 64 KiB (maxBufferedBody).
var bodyPools [4]sync.Pool

// bodyClass returns the index in bodyPools of the smallest class holding n
// bytes (n <= maxBufferedBody).
func bodyClass(n int) int {
	c := 0
	for size := firstBodyBuffer; size < n; size <<= 1 {
		c++
	}
	return c
}

func getBodyBuffer(n int) *[]byte {
	cl := bodyClass(n)
	if bp, ok := bodyPools[cl].Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, firstBodyBuffer<<cl)
	return &b
}

func putBodyBuffer(bp *[]byte) {
	bodyPools[bodyClass(cap(*bp))].Put(bp)
}

// headEnd returns the length of the head at the start of b (through its
// empty line), 0 when b holds no whole head yet, or -1 when the head is not
// for the fast path: a line ending in a bare LF, or an empty first line.
func headEnd(b []byte) int {
	i := 0
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
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
