package proxy

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// Review 22: zkgate's own HTTP/2 server (h2server.go, h2stream.go) and
// forward.lean. Each TestReview22* test fails on the reviewed code.

// ---- harness ----

// r22Handler is a gateway Handler routing everything to the backend h.
func r22Handler(t *testing.T, h http.HandlerFunc) *Handler {
	t.Helper()
	be := newTestServer(t, h)
	rt, err := NewRouter([]*Route{testRoute(t, "r", "round_robin", testUpstream(t, "svc"), strings.TrimPrefix(be.URL, "http://"))})
	if err != nil {
		t.Fatal(err)
	}
	return NewHandler(rt, Options{})
}

// r22Held is a gateway Handler in front of a backend that answers "hello"
// once release is closed.
func r22Held(t *testing.T) (*Handler, chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	return r22Handler(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte("hello"))
	}), release
}

// r22Conn returns the native server's only connection on s.
func r22Conn(t *testing.T, s *Server) *h2conn {
	t.Helper()
	var c *h2conn
	waitFor(t, "the native HTTP/2 connection", func() bool {
		l := s.h2List()
		if len(l) == 1 {
			c = l[0]
		}
		return c != nil
	})
	return c
}

// r22Locked runs f under c.mu and returns its result.
func r22Locked[T any](c *h2conn, f func() T) T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return f()
}

// r22Gate is the server side of a connection whose writes can be held,
// as a client that stops reading (a full socket buffer) holds them.
type r22Gate struct {
	net.Conn
	mu        sync.Mutex
	armed     bool
	open      chan struct{}
	blocked   chan struct{} // a value when a write is held
	closed    chan struct{}
	closeOnce sync.Once
}

func (g *r22Gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	armed, open := g.armed, g.open
	g.mu.Unlock()
	if armed {
		select {
		case g.blocked <- struct{}{}:
		default:
		}
		select {
		case <-open:
		case <-g.closed:
		}
	}
	return g.Conn.Write(p)
}

func (g *r22Gate) Close() error {
	g.closeOnce.Do(func() { close(g.closed) })
	return g.Conn.Close()
}

// arm holds every write from now on until release.
func (g *r22Gate) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.armed {
		g.armed, g.open = true, make(chan struct{})
	}
}

func (g *r22Gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.armed {
		g.armed = false
		close(g.open)
	}
}

// awaitBlocked waits until a write is held.
func (g *r22Gate) awaitBlocked(t *testing.T) {
	t.Helper()
	select {
	case <-g.blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("no write of the server was held")
	}
}

// gatedH2 serves one h2c connection with h on the native server, the
// server's side wrapped in a r22Gate, and returns the client's side.
func gatedH2(t *testing.T, h *Handler) (*h2Raw, *r22Gate, *Server) {
	t.Helper()
	cl, nc := dialAccepted(t, func(addr string) *h2Raw { return dialH2Raw(t, addr) })
	g := &r22Gate{Conn: nc, blocked: make(chan struct{}, 1), closed: make(chan struct{})}
	s := NewServer(h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serveH2(g, nil, nil)
	}()
	t.Cleanup(func() {
		g.release()
		_ = s.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the connection's serve loop did not end")
		}
	})
	return cl, g, s
}

// r22Ping sends a PING and reads frames until its ACK (the server's serve
// loop has processed everything sent before), calling seen on each other
// frame.
func r22Ping(t *testing.T, c *h2Raw, tag byte, seen func(http2.Frame)) {
	t.Helper()
	data := [8]byte{tag}
	if err := c.fr.WritePing(false, data); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for PING ACK: %v", err)
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() && p.Data == data {
			return
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			t.Fatalf("GOAWAY %v while waiting for PING ACK", ga.ErrCode)
		}
		if seen != nil {
			seen(f)
		}
	}
}

// ---- defects ----

// A client downloading faster than its link carries (its socket buffer
// full, its windows large, as browsers' are) makes the server queue more
// than h2MaxOut bytes of DATA. A PING it sends then (a keepalive, gRPC's
// BDP ping) is answered with GOAWAY ENHANCE_YOUR_CALM: controlRoom
// compares len(c.out), DATA included, with the control-frame bound.
func TestReview22PingDuringBackedUpDownloadKillsConnection(t *testing.T) {
	fe := r22BigDownloads(t)
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	r22StartDownloads(t, c, fe.srv)
	var data [8]byte
	data[0] = 7
	if err := c.fr.WritePing(false, data); err != nil {
		t.Fatal(err)
	}
	// Read on: the PING's ACK must come, not a GOAWAY.
	_ = c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended before the PING's ACK: %v", err)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			t.Fatalf("the server answered a PING on a busy connection with GOAWAY %v (len(c.out) counted DATA against the control-frame bound)", f.ErrCode)
		case *http2.PingFrame:
			if f.IsAck() && f.Data == data {
				return
			}
		}
	}
}

// While one goroutine's write to a client that does not read is blocked,
// the serve loop goes on reading: RST_STREAMs it answers frames with are
// queued without bound (controlRoom is checked for PING and SETTINGS
// only). Here PRIORITY frames that depend on themselves, 14 bytes each,
// each answered by a 13-byte RST_STREAM.
func TestReview22ResetQueueUnbounded(t *testing.T) {
	fe := r22BigDownloads(t)
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	conn := r22StartDownloads(t, c, fe.srv)
	base := r22Locked(conn, func() int { return len(conn.out) })
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		_ = c.nc.SetWriteDeadline(time.Now().Add(15 * time.Second))
		buf := make([]byte, 0, 14*4096)
		for id := uint32(1001); ; {
			buf = buf[:0]
			for range 4096 {
				// PRIORITY (type 2) on stream id, depending on id.
				buf = append(buf, 0, 0, 5, 2, 0, byte(id>>24), byte(id>>16), byte(id>>8), byte(id),
					byte(id>>24), byte(id>>16), byte(id>>8), byte(id), 15)
				id += 2
			}
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.nc.Write(buf); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, dead := r22Locked(conn, func() int { return len(conn.out) }), r22Locked(conn, func() bool { return conn.dead != nil })
		if dead {
			return // cut off: fine
		}
		if n > base+8*h2MaxOut {
			t.Fatalf("the server queued %d MiB of frames for a client that reads nothing (h2MaxOut is %d MiB)", n>>20, h2MaxOut>>20)
		}
		time.Sleep(10 * time.Millisecond) // polling a bound, not synchronising
	}
}

// r22BigDownloads is an h2c entry point on the native server in front of a
// backend answering /big with an endless body (until the request ends).
func r22BigDownloads(t *testing.T) *frontend {
	t.Helper()
	chunk := make([]byte, 32<<10)
	h := r22Handler(t, func(w http.ResponseWriter, r *http.Request) {
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	return startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate})
}

// r22StartDownloads opens two endless downloads with the largest windows
// on c and, reading nothing, waits until the server has more than
// h2MaxOut bytes queued (one stream's write blocked, the other's DATA
// waiting behind it).
func r22StartDownloads(t *testing.T, c *h2Raw, s *Server) *h2conn {
	t.Helper()
	if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteWindowUpdate(0, 1<<31-1-65535); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{1, 3} {
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.headers("/big"), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	conn := r22Conn(t, s)
	waitFor(t, "the server's queue to fill", func() bool {
		return r22Locked(conn, func() int { return len(conn.out) }) > h2MaxOut
	})
	return conn
}

// A stream out of send window waits in waitLocked, which first flushes
// what is queued and so releases c.mu during the write; a WINDOW_UPDATE
// processed meanwhile broadcasts to nobody, and the stream then waits in
// st.wake.Wait() for a wake-up that never comes: the answer stalls for
// h2WriteByteTimeout (60 s) and is then reset, although the client gave
// the window.
func TestReview22WindowUpdateLostDuringFlush(t *testing.T) {
	h, release := r22Held(t)
	c, g, s := gatedH2(t, h)
	// No stream window until the client gives it.
	if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.headers("/"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	r22Ping(t, c, 1, nil) // the serve loop is idle
	conn := r22Conn(t, s)
	// The serve loop's write of the PING's ACK has ended: the next write
	// is the stream's.
	waitFor(t, "the serve loop's write to end", func() bool {
		return r22Locked(conn, func() bool { return !conn.flushing && len(conn.out) == 0 })
	})
	g.arm()
	close(release)
	// The stream's goroutine, out of window, flushes its HEADERS in
	// waitLocked: the write is held.
	g.awaitBlocked(t)
	if err := c.fr.WriteWindowUpdate(1, 1000); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the WINDOW_UPDATE processed", func() bool {
		return r22Locked(conn, func() bool {
			st := conn.streams[1]
			return st != nil && st.sendWin > 0
		})
	})
	g.release()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no DATA within 5s although the stream has 1000 bytes of window: %v (the stream waits for a wake-up that was broadcast while it wrote)", err)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 {
			if string(d.Data()) != "hello" || !d.StreamEnded() {
				t.Fatalf("DATA %q end=%v", d.Data(), d.StreamEnded())
			}
			return
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			t.Fatalf("RST_STREAM %v", rst.ErrCode)
		}
	}
}

// During a graceful shutdown the last stream's finish (and shutdown())
// closes the socket as soon as no stream is left: flushLocked returns at
// once when another goroutine is writing (here the serve loop, writing a
// PING's ACK to a slow client), and failLocked then closes the connection
// under that writer, so the frames the stream queued — its whole answer —
// are never sent. goAwayAndClose drops its GOAWAY the same way.
func TestReview22ShutdownDropsLastAnswer(t *testing.T) {
	h, release := r22Held(t)
	c, g, s := gatedH2(t, h)
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.headers("/"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	r22Ping(t, c, 1, nil)
	conn := r22Conn(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	// The GOAWAY of the graceful close arrives.
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if code := c.awaitGoAway(t); code != http2.ErrCodeNo {
		t.Fatalf("GOAWAY %v", code)
	}
	// A slow client: the serve loop's write of a PING ACK is held.
	g.arm()
	if err := c.fr.WritePing(false, [8]byte{2}); err != nil {
		t.Fatal(err)
	}
	g.awaitBlocked(t)
	close(release)
	waitFor(t, "the handler's end", func() bool {
		return r22Locked(conn, func() bool { return conn.handlers == 0 })
	})
	g.release()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []string
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("the connection ended without the answer of stream 1 (frames after GOAWAY: %v): %v", got, err)
		}
		got = append(got, f.Header().Type.String())
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 && d.StreamEnded() {
			break
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			t.Fatalf("RST_STREAM %v", rst.ErrCode)
		}
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

// Rapid reset through the server's own resets ("MadeYouReset",
// CVE-2025-8671): the client opens a stream and makes the server reset it
// at once — here with a PRIORITY frame making the stream depend on itself
// (st.resetLocked PROTOCOL_ERROR, h2server.go process) — so that each
// request starts a handler and a backend exchange whose answer is never
// sent. Only RST_STREAMs the client sends count as early resets
// (c.earlyResets), so, keeping under h2MaxHandlers, the client is never
// cut off, where the client-reset variant is cut off after
// h2MaxGlitches (TestNativeH2RapidResetCutOff).
func TestReview22ServerProvokedResetsNotCounted(t *testing.T) {
	var mu sync.Mutex
	hits := 0
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	h := r22Handler(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		select {
		case <-done:
		case <-r.Context().Done():
		}
	})
	fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate})
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	block := c.headers("/slow")
	conn := r22Conn(t, fe.srv)
	const total = 4 * h2MaxGlitches
	id := uint32(1)
	for batch := 0; batch < total/100; batch++ {
		for range 100 {
			if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
				t.Fatalf("after %d streams: %v", id/2, err)
			}
			if err := c.fr.WritePriority(id, http2.PriorityParam{StreamDep: id, Weight: 15}); err != nil {
				t.Fatalf("after %d streams: %v", id/2, err)
			}
			id += 2
		}
		// The server's resets and any GOAWAY come before the PING's ACK.
		var goAway *http2.ErrCode
		data := [8]byte{byte(batch), byte(batch >> 8), 1}
		if err := c.fr.WritePing(false, data); err != nil {
			t.Fatal(err)
		}
		for goAway == nil {
			f, err := c.fr.ReadFrame()
			if err != nil {
				t.Fatalf("connection ended without GOAWAY: %v", err)
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				code := ga.ErrCode
				goAway = &code
			}
			if p, ok := f.(*http2.PingFrame); ok && p.IsAck() && p.Data == data {
				break
			}
		}
		if goAway != nil {
			if *goAway != http2.ErrCodeEnhanceYourCalm {
				t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", *goAway)
			}
			return // cut off: the mitigation works
		}
		// Pace as an attacker would, below h2MaxHandlers.
		waitFor(t, "the reset streams' handlers to end", func() bool {
			return r22Locked(conn, func() int { return conn.handlers }) < 50
		})
	}
	mu.Lock()
	n := hits
	mu.Unlock()
	t.Fatalf("%d streams opened and reset by the server at the client's request (%d reached the backend), no answer sent, and the connection is still served (client resets are cut off after %d)", total, n, h2MaxGlitches)
}

// A client's GOAWAY says it takes no more streams from the server (RFC
// 9113 §6.8: its receiver must not open streams); the client may still
// open its own. process sets c.closing, and onHeaders then ignores the
// client's new streams without a word — no answer, no RST_STREAM, no
// GOAWAY of the server's telling which streams it processed — so the
// request hangs until the idle timeout (3 min). net/http's server answers
// a GOAWAY with its own (startGracefulShutdownInternal).
func TestReview22StreamAfterClientGoAwayHangs(t *testing.T) {
	h := r22Handler(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	fe := startFrontend(t, h, ServerConfig{HTTP2: HTTP2H2C, HTTP2Server: HTTP2ServerZkgate})
	c := dialH2Raw(t, strings.TrimPrefix(fe.URL, "http://"))
	if err := c.fr.WriteGoAway(0, http2.ErrCodeNo, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.headers("/"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("stream 1, opened after the client's GOAWAY, got no answer, reset or GOAWAY in 5s: %v", err)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame, *http2.RSTStreamFrame:
			return
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				return
			}
		}
	}
}
