package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zkgate/zkgate/balancer"
)

// A protocol switch on the fast path (a WebSocket handshake; judgeHead
// says which requests): the request goes to the endpoint with
// "Connection: Upgrade" and its Upgrade field, as ReverseProxy sends it.
// An answer other than 101 is relayed as any answer. A 101 naming the
// protocol asked for is passed on (switchProtocols) and the two
// connections become a tunnel: bytes are relayed both ways as they come,
// each side's end of stream half-closes the other, and an error on either
// closes both.
//
// A tunnel holds no goroutine and no buffer while nothing flows: each side
// is parked in a poller (poller_linux.go) and, when it becomes readable, a
// goroutine takes a pooled buffer, relays what has arrived until the socket
// has nothing more, parks the side again and ends. A tunnel then costs its
// two sockets and a few hundred bytes, where ReverseProxy's holds three
// goroutines and two 32 KiB copy buffers for its whole life. A write that
// makes no progress for tunnelWriteTimeout (a peer that stopped reading)
// closes the tunnel, as nginx's proxy_send_timeout does.

// tunnelWriteTimeout bounds each relay of bytes to a tunnel side.
const tunnelWriteTimeout = 60 * time.Second

// tunnelBufSize is the size of the pooled buffer a tunnel side reads into
// while bytes flow.
const tunnelBufSize = 16 << 10

var tunnelBufs = sync.Pool{New: func() any { b := make([]byte, tunnelBufSize); return &b }}

// switchProtocols completes the protocol switch the endpoint answered with
// 101 (its head parsed in c.res, still in uc's buffer): the 101 is written
// to the client and uc kept in c.tunnelUp for serve, which starts the
// tunnel once the request is accounted for. A 101 to another protocol than
// the one asked for, or whose Connection does not name upgrade, is a bad
// answer: 502, as ReverseProxy answers it. It
// reports false: the connection serves no more requests.
func (c *fconn) switchProtocols(uc *upConn, ex *exchange) bool {
	res := &c.res
	up, n := res.fieldValue("Upgrade")
	if n != 1 || !bytes.EqualFold(up, c.req.upgrade) || !res.namedByConnection([]byte("upgrade")) {
		uc.close()
		c.req.close = true
		return c.fail(ex, failBackend, fmt.Errorf("proxy: the endpoint switched to protocol %q when %q was asked", up, c.req.upgrade))
	}
	ex.sw.status = http.StatusSwitchingProtocols
	w := c.bw
	_, _ = w.WriteString("HTTP/1.1 ")
	_, _ = w.Write(res.code)
	_ = w.WriteByte(' ')
	_, _ = w.Write(res.reason)
	_, _ = w.WriteString("\r\n")
	for i := range res.hdrs {
		if l := &res.hdrs[i]; res.forwardable(l) {
			w.line(l)
		}
	}
	_, _ = w.WriteString("Connection: Upgrade\r\nUpgrade: ")
	_, _ = w.Write(up)
	_, _ = w.WriteString("\r\n\r\n")
	_, _ = uc.br.Discard(res.n)
	c.tunnelUp = uc
	return false
}

// fieldValue returns the value of the response header field name and how
// many such fields there are.
func (res *fastResponse) fieldValue(name string) ([]byte, int) {
	var v []byte
	n := 0
	for i := range res.hdrs {
		if bytes.EqualFold(res.hdrs[i].name, []byte(name)) {
			v = res.hdrs[i].value
			n++
		}
	}
	return v, n
}

// tunnel is a client connection and an endpoint connection relayed to each
// other after a protocol switch.
type tunnel struct {
	s      *Server
	cc     *cconn
	e      *entry // its endpoint's request is done when it closes
	ep     balancer.Endpoint
	sides  [2]tunnelSide // the client's, the endpoint's
	closed atomic.Bool
}

// tunnelSide is one connection of a tunnel, read by the side's goroutine
// while bytes flow and written by the other side's.
type tunnelSide struct {
	t    *tunnel
	peer *tunnelSide
	nc   net.Conn
	reg  *pollReg // the client's is its cconn's
	own  pollReg  // the endpoint's
	eof  atomic.Bool

	sock sockIO // the side's goroutine reads through it
}

// startTunnel relays the client connection and c.tunnelUp to each other,
// after the bytes each sent past its head, and lets go of c: the tunnel is
// the Server's. A failure closes both.
func (c *fconn) startTunnel() {
	uc, cc := c.tunnelUp, c.cc
	c.tunnelUp = nil
	_ = cc.nc.SetDeadline(time.Time{})
	_ = uc.nc.SetDeadline(time.Time{})
	t := &tunnel{s: c.s, cc: cc, e: c.tunnelEntry, ep: c.tunnelEp}
	c.tunnelEntry = nil
	client, up := &t.sides[0], &t.sides[1]
	*client = tunnelSide{t: t, peer: up, nc: cc.nc, reg: &cc.pollReg}
	*up = tunnelSide{t: t, peer: client, nc: uc.nc}
	up.reg = &up.own
	up.own.raw, up.own.fd, up.own.owner = uc.raw, -1, up
	cc.state.Store(connTunnel)
	c.s.trackConn(cc, false)
	if !c.s.trackTunnel(t, true) {
		t.close()
		return
	}
	// What the client sent past its request (it need not wait for the
	// 101), then the watch's byte, read after it, go to the endpoint; what
	// the endpoint sent past its 101 goes to the client.
	pending := c.in.unread()
	if c.watchN > 0 {
		pending = append(pending[:len(pending):len(pending)], c.watchBuf[0])
		c.watchN = 0
	}
	if !up.write(pending) {
		return
	}
	if n := uc.br.Buffered(); n > 0 {
		b, _ := uc.br.Peek(n)
		if !client.write(b) {
			return
		}
	}
	if !cc.makeRaw() || uc.raw == nil {
		t.close()
		return
	}
	client.sock.init(cc.raw)
	up.sock.init(uc.raw)
	cc.owner = client
	cc.until.Store(0)
	client.park()
	up.park()
}

// write writes b to the side, bounded by tunnelWriteTimeout; a failure
// closes the tunnel.
func (s *tunnelSide) write(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	_ = s.nc.SetWriteDeadline(time.Now().Add(tunnelWriteTimeout))
	if _, err := s.nc.Write(b); err != nil {
		s.t.close()
		return false
	}
	return true
}

// park waits for the side's next bytes in its poller.
func (s *tunnelSide) park() {
	a := getArmer()
	ok := a.fetchFd(s.reg) && pollerFor(s.reg).park(s.reg, 0, a)
	putArmer(a)
	if !ok {
		s.t.close()
	}
}

// woken relays what the side has sent on a goroutine of its own
// (pollOwner).
func (s *tunnelSide) woken() { go s.pump() }

// gone reports whether the tunnel is closed (pollOwner).
func (s *tunnelSide) gone() bool { return s.t.closed.Load() }

// expire does nothing: a tunnel side is parked without a timeout
// (pollOwner).
func (s *tunnelSide) expire() {}

// pump relays what the side has sent to its peer until the side has
// nothing more for now, then parks it again. The side's end of stream
// half-closes the peer, or closes the tunnel when the peer's came first.
func (s *tunnelSide) pump() {
	bp := tunnelBufs.Get().(*[]byte)
	defer tunnelBufs.Put(bp)
	for {
		n, err := s.sock.readNow(*bp)
		if n > 0 && !s.peer.write((*bp)[:n]) {
			return
		}
		switch {
		case err == nil:
		case err == errWouldBlock:
			if !s.t.closed.Load() {
				s.park()
			}
			return
		case err == io.EOF:
			s.eof.Store(true)
			if s.peer.eof.Load() {
				s.t.close()
				return
			}
			if cw, ok := s.peer.nc.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
				s.t.close()
			}
			return
		default:
			s.t.close()
			return
		}
	}
}

// close closes both connections of the tunnel, once.
func (t *tunnel) close() {
	if !t.closed.CompareAndSwap(false, true) {
		return
	}
	t.s.trackTunnel(t, false)
	t.e.done(t.ep)
	t.cc.state.Store(connClosed)
	_ = t.sides[0].nc.Close()
	_ = t.sides[1].nc.Close()
}

// trackTunnel adds t to, or removes it from, s's tunnels. Unlike a
// connection, a tunnel may open during a graceful shutdown (a handshake in
// flight gets its tunnel, which lasts until BaseContext ends, as on the
// net/http side); not once Close has closed the tunnels or BaseContext has
// ended.
func (s *Server) trackTunnel(t *tunnel, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.tunnels, t)
		return true
	}
	if s.tunnelsClosed || s.base.Err() != nil {
		return false
	}
	s.tunnels[t] = struct{}{}
	return true
}

// closeTunnels closes every tunnel and refuses new ones (Close, or the end
// of BaseContext, as upgraded connections on the net/http side end with
// it).
func (s *Server) closeTunnels() {
	s.mu.Lock()
	s.tunnelsClosed = true
	l := make([]*tunnel, 0, len(s.tunnels))
	for t := range s.tunnels {
		l = append(l, t)
	}
	s.mu.Unlock()
	for _, t := range l {
		t.close()
	}
}
