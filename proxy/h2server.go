package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// zkgate's own HTTP/2 server (entry point http2_server: zkgate), beside
// net/http's. Go's server costs two to three times nginx's CPU per request
// under h2load: a request passes through five goroutines (the frame
// reader, the serve loop, the handler, the serve loop again for each
// HEADERS and DATA the handler writes, and a goroutine per flush), each
// handoff a wake-up of another processor. Here a connection has one
// goroutine that reads and answers frames, and each request a goroutine
// that runs the handler and writes its answer's frames itself: into the
// connection's buffer under its lock, and to the socket when no other
// stream is writing (whoever writes takes what the others queued).
//
// Frames are parsed, HPACK-decoded and checked by golang.org/x/net/http2's
// Framer (the code net/http's server bundles): frame sizes and order,
// CONTINUATION sequences and their flood (CVE-2023-45288), the header
// list's size, field names and values, and pseudo-header rules. This file
// applies the rest of RFC 9113: stream states and identifiers, flow
// control both ways, SETTINGS, PING, GOAWAY and RST_STREAM, the request's
// pseudo-headers and connection-specific fields (h2request.go), and the
// limits against a peer that makes the server work for nothing:
//
//   - streams open at once: MAX_CONCURRENT_STREAMS (h2MaxConcurrentStreams);
//     one more is refused with REFUSED_STREAM;
//   - rapid reset (CVE-2023-44487) and its variant through the server's
//     own resets (CVE-2025-8671, "MadeYouReset"): handlers still running
//     after their streams were reset are bounded by h2MaxHandlers, and a
//     client that has more than h2MaxGlitches streams end early — reset
//     by it before their answers, or reset by the server for its errors,
//     or refused — and more than half of those it opened, is cut off
//     (GOAWAY ENHANCE_YOUR_CALM), as HAProxy counts such "glitches";
//   - frames the peer makes the server queue (PING and SETTINGS answers,
//     RST_STREAMs, WINDOW_UPDATEs) while it does not read: beyond
//     h2MaxControl of them waiting the connection is closed (net/http's
//     bound); DATA waits for room instead (h2MaxOut);
//   - a request body buffered is bounded by the windows advertised
//     (h2StreamWindow per stream, h2ConnWindow per connection); a peer
//     that sends more is a FLOW_CONTROL_ERROR;
//   - waits: the preface and first SETTINGS within the head timeout, an
//     idle connection within the idle timeout, each write within
//     h2WriteByteTimeout, and a stream's wait for send window as long.
const (
	h2StreamWindow = 1 << 20
	h2ConnWindow   = 1 << 20
	h2MaxHandlers  = 4 * h2MaxConcurrentStreams
	h2MaxGlitches  = 1000
	h2MaxControl   = 10000
	h2MaxOut       = 1 << 20
	h2BodyChunk    = 16 << 10 // answer body gathered before a DATA frame goes out
	h2DefaultIdle  = 3 * time.Minute
	h2InitialWin   = 65535 // RFC 9113 §6.9.2
)

// h2conn is one HTTP/2 connection of the native server.
type h2conn struct {
	s      *Server
	nc     net.Conn
	wc     *coalescingConn // beneath TLS, in gather mode; nil for h2c
	tls    *tls.ConnectionState
	remote string
	br     *bufio.Reader
	fr     *http2.Framer
	ctx    context.Context
	cancel context.CancelFunc
	idle   time.Duration

	mu       sync.Mutex
	out      []byte // frames waiting to be written
	spare    []byte
	flushing bool           // a goroutine writes; the others queue
	roomWait int            // goroutines waiting for out to drain
	room     sync.Cond      // signalled when a write ended
	dead     error          // the connection ended: writes fail with it
	enc      *hpack.Encoder // writes into hbuf; used under mu, in frame order
	hbuf     bytes.Buffer
	streams  map[uint32]*h2stream
	handlers int        // handler goroutines running
	sendWin  int64      // what the connection may still send
	peerWin  int64      // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	peerMax  uint32     // the peer's SETTINGS_MAX_FRAME_SIZE
	lastID   uint32     // the highest stream the client opened
	goAway   bool       // GOAWAY sent: new streams are ignored
	recvWin  int64      // what the peer may still send on the connection
	unacked  int64      // bytes consumed, not yet given back in a WINDOW_UPDATE
	closing  bool       // graceful close: end once no stream is left
	resets   [32]uint32 // the streams the server reset last (closedByReset)
	resetN   int
	// opened counts the streams the client opened, glitches those that
	// ended early by the client's doing (controlRoom).
	opened, glitches int
	// control counts the frames queued in out in answer to the client's
	// (ACKs, RST_STREAMs, WINDOW_UPDATEs) since a write last took out.
	control int
}

// h2sink is the Framer's writer: frames go into the connection's buffer
// (the Framer writes only under c.mu).
type h2sink struct{ c *h2conn }

func (w h2sink) Write(p []byte) (int, error) {
	w.c.out = append(w.c.out, p...)
	return len(p), nil
}

// serveH2 serves nc, whose client chose HTTP/2 (ALPN h2, or the h2c
// preface with prior knowledge), with the native server until it ends.
func (s *Server) serveH2(nc net.Conn, st *tls.ConnectionState, wc *coalescingConn) {
	c := &h2conn{
		s: s, nc: nc, wc: wc, tls: st, remote: nc.RemoteAddr().String(),
		streams: make(map[uint32]*h2stream),
		sendWin: h2InitialWin, peerWin: h2InitialWin, peerMax: 16 << 10,
		recvWin: h2ConnWindow,
		idle:    s.cfg.IdleTimeout,
	}
	if c.idle <= 0 {
		c.idle = h2DefaultIdle
	}
	c.room.L = &c.mu
	// The keys net/http's server puts in a request's context: ReverseProxy
	// aborts an answer whose body broke off (panics ErrAbortHandler) only
	// under a server, which it recognises by ServerContextKey.
	ctx := context.WithValue(s.base, http.ServerContextKey, s.hs)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, nc.LocalAddr())
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.br = bufio.NewReaderSize(nc, 8<<10)
	c.fr = http2.NewFramer(h2sink{c}, c.br)
	c.fr.SetMaxReadFrameSize(h2MaxReadFrameSize)
	c.fr.MaxHeaderListSize = uint32(s.cfg.MaxHeaderBytes)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(h2HPACKTableSize, nil)
	c.fr.SetReuseFrames()
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.enc.SetMaxDynamicTableSizeLimit(h2HPACKTableSize)
	if !s.trackH2(c, true) {
		_ = nc.Close()
		return
	}
	s.netHTTPConns.Add(1)
	defer s.netHTTPConns.Add(-1)
	defer s.trackH2(c, false)
	// The server's base context ending ends the requests' contexts, and
	// with them the exchanges forward.direct makes without one.
	defer context.AfterFunc(c.ctx, c.abortUpstreams)()
	c.serve()
}

// abortUpstreams interrupts the upstream exchanges of forward.direct on
// the connection's streams.
func (c *h2conn) abortUpstreams() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.streams {
		if st.up != nil {
			st.up.abort()
		}
	}
}

func (c *h2conn) serve() {
	defer c.shut(net.ErrClosed)
	t := c.s.cfg.ReadHeaderTimeout
	if t <= 0 {
		t = defaultHandshakeTimeout
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(t))
	c.mu.Lock()
	_ = c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: h2MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(c.s.cfg.MaxHeaderBytes)},
	)
	_ = c.fr.WriteWindowUpdate(0, h2ConnWindow-h2InitialWin)
	c.flushLocked()
	c.mu.Unlock()

	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		return
	}
	first := true
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if !c.readError(err) {
				return
			}
			continue
		}
		if first {
			// The client's preface ends with a SETTINGS frame (§3.4).
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				c.goAwayAndClose(http2.ErrCodeProtocol)
				return
			}
			first = false
			c.mu.Lock()
			c.setIdleDeadline()
			c.mu.Unlock()
		}
		err = c.process(f)
		if err == nil {
			err = c.controlRoom()
		}
		if err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				c.goAwayAndClose(http2.ErrCode(ce))
			}
			return
		}
		if c.br.Buffered() == 0 {
			c.mu.Lock()
			c.flushLocked()
			c.mu.Unlock()
		}
	}
}

// readError handles an error of ReadFrame and reports whether the
// connection goes on.
func (c *h2conn) readError(err error) bool {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &se):
		if c.controlRoom() != nil {
			c.goAwayAndClose(http2.ErrCodeEnhanceYourCalm)
			return false
		}
		c.mu.Lock()
		c.glitches++
		if se.StreamID > c.lastID && se.StreamID%2 == 1 {
			c.lastID = se.StreamID // a stream the client opened badly is closed
		}
		if st := c.streams[se.StreamID]; st != nil {
			st.resetLocked(se.Code, errStreamProtocol)
		} else {
			c.writeRSTLocked(se.StreamID, se.Code)
		}
		c.flushLocked()
		c.mu.Unlock()
		return true
	case errors.As(err, &ce):
		c.goAwayAndClose(http2.ErrCode(ce))
	case errors.Is(err, http2.ErrFrameTooLarge):
		c.goAwayAndClose(http2.ErrCodeFrameSize)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.mu.Lock()
		gone := c.goAway
		c.mu.Unlock()
		if !gone {
			c.goAwayAndClose(http2.ErrCodeNo) // the idle (or preface) timeout
		}
		// After a GOAWAY: the linger after the client's ended.
	}
	return false
}

var (
	errStreamProtocol = errors.New("http2: stream error")
	errClientReset    = errors.New("http2: client reset the stream")
	errConnClosed     = errors.New("http2: connection closed")
)

// process handles one frame; an error ends the connection (a
// http2.ConnectionError with a GOAWAY first).
func (c *h2conn) process(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return nil // the server sends no PINGs
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.control++
		return c.fr.WritePing(true, f.Data)
	case *http2.RSTStreamFrame:
		c.mu.Lock()
		defer c.mu.Unlock()
		if f.StreamID > c.lastID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream (§5.1)
		}
		if st := c.streams[f.StreamID]; st != nil {
			if !st.sentEnd {
				// Reset before its answer: rapid reset opens and resets
				// streams to make the server start work it never sends.
				c.glitches++
			}
			st.closeLocked(errClientReset)
		}
		return nil
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			// A stream depending on itself (§5.3.1): a stream error, but
			// RST_STREAM is never sent for an idle stream (§6.4).
			c.mu.Lock()
			defer c.mu.Unlock()
			if f.StreamID > c.lastID {
				return http2.ConnectionError(http2.ErrCodeProtocol)
			}
			if st := c.streams[f.StreamID]; st != nil {
				st.refuseLocked(http2.ErrCodeProtocol)
				return nil
			}
			c.glitches++
			c.writeRSTLocked(f.StreamID, http2.ErrCodeProtocol)
		}
		return nil
	case *http2.GoAwayFrame:
		// The client takes no more streams from the server and may still
		// open its own: answered with the server's GOAWAY, which tells it
		// the last stream served; the connection ends once those have.
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.goAway && c.dead == nil {
			_ = c.fr.WriteGoAway(c.lastID, http2.ErrCodeNo, nil)
			c.goAway = true
		}
		c.closing = true
		if len(c.streams) == 0 && c.handlers == 0 {
			// Frames still coming (a PING) are answered until the
			// client closes, for h2Linger at most.
			_ = c.nc.SetReadDeadline(time.Now().Add(h2Linger))
		}
		return nil
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol) // a client never pushes
	default:
		return nil // unknown frame types are ignored (§5.5)
	}
}

// controlRoom reports ENHANCE_YOUR_CALM for a client that makes the
// server work for nothing: more than h2MaxControl frames queued in answer
// to its own while it does not read them, or more than h2MaxGlitches
// streams ended early by its doing, and more than half of those it opened.
func (c *h2conn) controlRoom() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.control > h2MaxControl || (c.glitches > h2MaxGlitches && 2*c.glitches > c.opened) {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

func (c *h2conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			// §6.9.2: the change applies to every stream's window.
			delta := int64(s.Val) - c.peerWin
			c.peerWin = int64(s.Val)
			for _, st := range c.streams {
				st.sendWin += delta
				if st.sendWin > 1<<31-1 {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
				st.wake.Broadcast()
			}
		case http2.SettingMaxFrameSize:
			c.peerMax = s.Val
		case http2.SettingHeaderTableSize:
			c.enc.SetMaxDynamicTableSize(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.control++
	return c.fr.WriteSettingsAck()
}

func (c *h2conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		if c.sendWin += inc; c.sendWin > 1<<31-1 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		for _, st := range c.streams {
			st.wake.Broadcast()
		}
		return nil
	}
	st := c.streams[f.StreamID]
	if st == nil {
		if f.StreamID > c.lastID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream (§5.1)
		}
		return nil // a closed stream: frames in flight are ignored
	}
	if st.sendWin += inc; st.sendWin > 1<<31-1 {
		st.refuseLocked(http2.ErrCodeFlowControl)
		return nil
	}
	st.wake.Broadcast()
	return nil
}

func (c *h2conn) onData(f *http2.DataFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := int64(f.Length)
	if n > c.recvWin {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recvWin -= n
	st := c.streams[f.StreamID]
	if st == nil || st.recvDone {
		// Counted against the connection's window, then given back.
		c.giveBackLocked(nil, n)
		if f.StreamID > c.lastID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream (§5.1)
		}
		if st != nil {
			st.refuseLocked(http2.ErrCodeStreamClosed)
		} else if !c.closedByReset(f.StreamID) {
			c.glitches++
			c.writeRSTLocked(f.StreamID, http2.ErrCodeStreamClosed)
		}
		return nil
	}
	if n > st.recvWin {
		c.giveBackLocked(nil, n)
		st.refuseLocked(http2.ErrCodeFlowControl)
		return nil
	}
	st.recvWin -= n
	data := f.Data()
	if pad := n - int64(len(data)); pad > 0 {
		c.giveBackLocked(st, pad) // padding is consumed at once
	}
	if len(data) > 0 {
		st.got += int64(len(data))
		if st.declared >= 0 && st.got > st.declared {
			c.giveBackLocked(nil, int64(len(data)))
			st.refuseLocked(http2.ErrCodeProtocol) // more than Content-Length (§8.1.1)
			return nil
		}
		if st.body != nil && !st.body.closed {
			st.body.buf = append(st.body.buf, data...)
		} else {
			c.giveBackLocked(nil, int64(len(data)))
		}
	}
	if f.StreamEnded() {
		if st.declared >= 0 && st.got != st.declared {
			st.refuseLocked(http2.ErrCodeProtocol) // less than Content-Length
			return nil
		}
		st.endRecvLocked()
	}
	st.wake.Broadcast()
	return nil
}

// closedByReset reports whether id is one of the last streams the server
// reset: frames the peer sent before it saw the RST_STREAM are ignored
// (§5.1), while a frame on another closed stream is a STREAM_CLOSED error.
func (c *h2conn) closedByReset(id uint32) bool {
	for _, r := range c.resets {
		if r == id {
			return true
		}
	}
	return false
}

// giveBackLocked returns n consumed bytes to the peer's windows: the
// connection's, and st's when it is not nil, with a WINDOW_UPDATE once an
// eighth of the window is owed.
func (c *h2conn) giveBackLocked(st *h2stream, n int64) {
	c.recvWin += n
	c.unacked += n
	if c.unacked >= h2ConnWindow/8 && c.dead == nil {
		_ = c.fr.WriteWindowUpdate(0, uint32(c.unacked))
		c.unacked = 0
		c.control++
	}
	if st == nil || st.recvDone || st.closed != nil {
		return
	}
	st.recvWin += n
	st.unacked += n
	if st.unacked >= h2StreamWindow/8 {
		_ = c.fr.WriteWindowUpdate(st.id, uint32(st.unacked))
		st.unacked = 0
		c.control++
	}
}

func (c *h2conn) writeRSTLocked(id uint32, code http2.ErrCode) {
	if c.dead == nil {
		_ = c.fr.WriteRSTStream(id, code)
		c.control++
	}
	c.resets[c.resetN%len(c.resets)] = id
	c.resetN++
}

// setIdleDeadline bounds the wait for the next frame: the idle timeout
// while no stream is open, none while one is (each request is bounded by
// its own timeouts).
func (c *h2conn) setIdleDeadline() {
	if len(c.streams) == 0 {
		d := c.idle
		if c.closing {
			d = h2Linger // after a GOAWAY: the client closes, or the reader does
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(d))
	} else {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}

// flushBatchedLocked writes what a handler queued. With batch (an
// answer's end, or a part a streaming handler flushes), when other
// handlers of the connection are running, it first lets the goroutines
// that are ready run (c.mu released): under load, answers whose upstream
// bytes arrived in the same poll are queued by then and go out in one
// write (and one TLS gather) rather than one each. With h2load -c4 -m16
// over TLS that takes the CPU per request from 53 to 46 µs; gRPC unary
// calls (a flush for the message, another for the trailers) from 118 to
// 112 µs. The wait is for goroutines already runnable only, not for a
// timer: a streaming answer's flush is delayed by no more than their run.
// With nothing queued (another goroutine's write took it) there is
// nothing to wait for.
func (c *h2conn) flushBatchedLocked(batch bool) {
	if batch && c.handlers > 1 && !c.flushing && len(c.out) > 0 {
		c.mu.Unlock()
		runtime.Gosched()
		c.mu.Lock()
	}
	c.flushLocked()
}

// flushLocked writes what is queued, unless another goroutine is writing
// (it takes what was queued meanwhile before it stops), and reports
// whether it wrote: c.mu is released during the write, and what it
// guards may have changed.
func (c *h2conn) flushLocked() bool {
	wrote := false
	for !c.flushing && len(c.out) > 0 && c.dead == nil {
		wrote = true
		c.flushing = true
		buf := c.out
		c.out = c.spare[:0]
		c.control = 0
		c.mu.Unlock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(h2WriteByteTimeout))
		if c.wc != nil {
			c.wc.hold() // the TLS records of buf go out in one write
		}
		_, err := c.nc.Write(buf)
		if c.wc != nil {
			if e := c.wc.release(); err == nil {
				err = e
			}
		}
		c.mu.Lock()
		c.flushing = false
		if cap(buf) <= 64<<10 {
			c.spare = buf[:0]
		} else {
			c.spare = nil
		}
		if err != nil {
			c.failLocked(err)
		}
		if c.roomWait > 0 {
			c.room.Broadcast()
		}
	}
	if !c.flushing && len(c.out) == 0 && len(c.streams) == 0 {
		// An idle connection holds no write buffer.
		c.out, c.spare = nil, nil
	}
	return wrote
}

// drainLocked writes everything queued before a clean close: it waits for
// the goroutine writing, then writes what is left (each write bounded by
// h2WriteByteTimeout).
func (c *h2conn) drainLocked() {
	for c.dead == nil && (c.flushing || len(c.out) > 0) {
		if c.flushing {
			c.roomWait++
			c.room.Wait()
			c.roomWait--
			continue
		}
		c.flushLocked()
	}
}

// waitRoomLocked waits while more than h2MaxOut bytes wait to be written
// and another goroutine writes them.
func (c *h2conn) waitRoomLocked() {
	for len(c.out) > h2MaxOut && c.flushing && c.dead == nil {
		c.roomWait++
		c.room.Wait()
		c.roomWait--
	}
}

// failLocked ends the connection: streams fail, the socket is closed.
func (c *h2conn) failLocked(err error) {
	if c.endLocked(err) {
		_ = c.nc.Close()
	}
}

// endLocked marks the connection ended with err, its streams failed, and
// reports whether it had not ended before.
func (c *h2conn) endLocked(err error) bool {
	if c.dead != nil {
		return false
	}
	c.dead = err
	c.cancel()
	for _, st := range c.streams {
		st.closeLocked(errConnClosed)
	}
	c.room.Broadcast()
	return true
}

// h2Linger is how long the reader of a connection ended with a GOAWAY
// still reads (and drops) what the client sends, before closing: closed
// with unread bytes, the socket would answer with a TCP reset, which can
// make the client lose the GOAWAY, as net/http's goAwayTimeout avoids.
const h2Linger = time.Second

// goAwayAndClose sends GOAWAY with code, after what was queued, and
// closes the connection once the client has read it (or h2Linger has
// passed). It is called by the connection's reader.
func (c *h2conn) goAwayAndClose(code http2.ErrCode) {
	c.mu.Lock()
	if c.dead != nil {
		c.mu.Unlock()
		return
	}
	_ = c.fr.WriteGoAway(c.lastID, code, nil)
	c.goAway = true
	c.drainLocked()
	ended := c.endLocked(errConnClosed)
	c.mu.Unlock()
	if !ended {
		return
	}
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite() // the client reads the end after the GOAWAY
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(h2Linger))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.br, 1<<20))
	_ = c.nc.Close()
}

// shut ends the connection when its reader stops, after what was queued.
func (c *h2conn) shut(err error) {
	c.mu.Lock()
	c.drainLocked()
	c.failLocked(err)
	c.mu.Unlock()
}

// shutdown begins a graceful close (Server.Shutdown): GOAWAY with the last
// stream, then the connection ends once its streams have and the client
// has closed it, or h2Linger after that. It reports whether the
// connection is still open.
func (c *h2conn) shutdown() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead != nil {
		return false
	}
	if !c.goAway {
		_ = c.fr.WriteGoAway(c.lastID, http2.ErrCodeNo, nil)
		c.goAway = true
		c.flushLocked()
	}
	if !c.closing {
		c.closing = true
		if len(c.streams) == 0 {
			// Idle: the reader reads on for h2Linger, so that the client
			// reads the GOAWAY before the connection closes (closed with
			// a request of the client's unread, the socket would answer
			// with a reset, and the client could lose the GOAWAY and
			// with it the knowledge that its request can be retried);
			// the connection ends when the client closes it.
			c.setIdleDeadline()
		}
	}
	return true
}

// kill closes the connection at once.
func (c *h2conn) kill() {
	c.mu.Lock()
	c.failLocked(errConnClosed)
	c.mu.Unlock()
}

func (s *Server) trackH2(c *h2conn, add bool) bool { return track(s, s.h2conns, c, add) }

// h2List returns the native HTTP/2 connections.
func (s *Server) h2List() []*h2conn { return list(s, s.h2conns) }

// nativeH2 reports whether the entry point serves HTTP/2 with the native
// server.
func (s *Server) nativeH2() bool { return s.cfg.HTTP2Server == HTTP2ServerZkgate }

var _ http.ResponseWriter = (*h2writer)(nil)
