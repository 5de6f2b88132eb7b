//go:build linux

package proxy

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// What a held client connection costs the gateway: these tests and the
// benchmark hold connections from raw sockets (file descriptors, no Go
// objects), so that the Go heap and stacks they measure are the server's.

// costServer is a fast-path Server on loopback with one route to an
// in-process backend answering "ok".
func costServer(tb testing.TB, cfg ServerConfig) (*Server, *net.TCPAddr) {
	tb.Helper()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	tb.Cleanup(be.Close)
	up := &Upstream{Name: "svc", Transport: NewTransport(TransportConfig{}), PassHostHeader: true}
	tb.Cleanup(up.Transport.(*Transport).CloseIdleConnections)
	rt, err := NewRouter([]*Route{testRoute(tb, "r", "round_robin", up, be.Listener.Addr().String())})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := NewServer(NewHandler(rt, Options{}), cfg)
	go func() { _ = s.Serve(ln) }()
	tb.Cleanup(func() { _ = s.Close() })
	return s, ln.Addr().(*net.TCPAddr)
}

// connCount returns the number of fast connections s holds.
func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// rawClient is a client connection as a bare socket.
type rawClient int

// dialRaw connects a blocking socket to addr (an IPv4 loopback address),
// with a receive timeout so that no read waits unbounded.
func dialRaw(tb testing.TB, addr *net.TCPAddr) rawClient {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tv := syscall.NsecToTimeval(int64(diffDeadline))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		tb.Fatal(err)
	}
	sa := &syscall.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	if err := syscall.Connect(fd, sa); err != nil {
		_ = syscall.Close(fd)
		tb.Fatal(err)
	}
	return rawClient(fd)
}

// readRaw is syscall.Read on a blocking socket, read again when a signal
// (the runtime's preemption) interrupts it: on a socket with SO_RCVTIMEO,
// Linux fails the call with EINTR rather than restarting it (signal(7)).
func readRaw(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, b)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// get sends a GET and reads its whole answer, "ok" with a Content-Length,
// into buf.
func (c rawClient) get(buf []byte) error {
	if _, err := syscall.Write(int(c), []byte("GET /x HTTP/1.1\r\nHost: example.net\r\n\r\n")); err != nil {
		return err
	}
	n := 0
	for {
		k, err := readRaw(int(c), buf[n:])
		if err != nil {
			return err
		}
		if k == 0 {
			return fmt.Errorf("connection closed after %q", buf[:n])
		}
		n += k
		if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 && bytes.HasSuffix(buf[:n], []byte("\r\n\r\nok")) {
			if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200 ")) {
				return fmt.Errorf("answer %q", buf[:n])
			}
			return nil
		}
		if n == len(buf) {
			return fmt.Errorf("answer too long: %q", buf[:n])
		}
	}
}

func (c rawClient) close() { _ = syscall.Close(int(c)) }

// waitGoroutines waits, bounded, until at most n goroutines run.
func waitGoroutines(t *testing.T, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(diffDeadline)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d goroutines, want at most %d", what, runtime.NumGoroutine(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, bounded
	}
}

// wantParked opens n connections to a fresh server, each through open,
// waits (bounded) until they hold no goroutine — at most n/10 more than
// before them, the server's upstream connection warmed first — and checks
// that each then serves a GET. held, when not nil, is awaited first: the
// condition that the server holds the connections at all.
func wantParked(t *testing.T, what string, open func(rawClient, []byte) error, held func(*Server, int) bool) {
	t.Helper()
	const n = 100
	s, addr := costServer(t, ServerConfig{})
	buf := make([]byte, 1024)
	warm := dialRaw(t, addr)
	if err := warm.get(buf); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	conns := make([]rawClient, 0, n)
	t.Cleanup(func() {
		for _, c := range append(conns, warm) {
			c.close()
		}
	})
	for range n {
		c := dialRaw(t, addr)
		conns = append(conns, c)
		if err := open(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	if held != nil {
		deadline := time.Now().Add(diffDeadline)
		for !held(s, n) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the server holds %d connections (%+v), want them %d and held as asked", what, s.connCount(), s.ConnStats(), n+1)
			}
			time.Sleep(time.Millisecond) // polling a condition, bounded
		}
	}
	waitGoroutines(t, base+n/10, fmt.Sprintf("%d %s", n, what))
	for i, c := range conns {
		if err := c.get(buf); err != nil {
			t.Fatalf("%s: connection %d after being parked: %v", what, i, err)
		}
	}
}

// TestIdleConnectionsHoldNoGoroutine: keep-alive connections that were
// served and went quiet are parked in the poller, not held by a goroutine
// each (issue 18); each still serves its next request.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	wantParked(t, "idle connections", rawClient.get, nil)
}

// TestSilentConnectionsParked: connections that send nothing after they
// open keep a goroutine (and buffers) only for hotIdle, then are parked;
// each is served when its request comes.
func TestSilentConnectionsParked(t *testing.T) {
	wantParked(t, "silent connections", func(rawClient, []byte) error { return nil },
		func(s *Server, n int) bool { return s.connCount() >= n+1 })
}

// TestQuickClientsParkedWhenQuiet: connections whose requests came in quick
// succession wait for the next one with their goroutine (hot), and are
// parked once quiet for hotIdle; each is served after.
func TestQuickClientsParkedWhenQuiet(t *testing.T) {
	if testLoops > 0 {
		t.Skip("hot waits: a Server with loops has none (TestLoopConnectionsHoldNoGoroutine)")
	}
	wantParked(t, "quiet quick clients", func(c rawClient, buf []byte) error {
		for range 3 {
			if err := c.get(buf); err != nil {
				return err
			}
		}
		return nil
	}, func(s *Server, _ int) bool {
		// The last one was served just now: it waits hot, with its
		// goroutine, for a second (the earlier ones may be parked by now
		// on a slow machine).
		return s.ConnStats().Waiting >= 1
	})
}

// TestParkedConnectionNumbersReused: a connection closed while parked frees
// its descriptor number for the next one, whose registration is new;
// each connection is served across several park and wake cycles.
func TestParkedConnectionNumbersReused(t *testing.T) {
	_, addr := costServer(t, ServerConfig{})
	buf := make([]byte, 1024)
	for i := range 50 {
		c := dialRaw(t, addr)
		for j := range 3 {
			if err := c.get(buf); err != nil {
				c.close()
				t.Fatalf("connection %d, request %d: %v", i, j, err)
			}
		}
		c.close()
	}
}

// BenchmarkHeldConnection measures what a held client connection costs the
// server: each operation opens a connection and either serves it one GET
// (idle: a keep-alive connection gone quiet) or switches it to a tunnel
// (upgraded: a WebSocket handshake answered 101 by a backend that holds its
// side as a bare socket, so that both of the server's sockets count and
// nothing else does), and the connections stay open (at most heldMax at a
// time; past that the oldest is closed). At the end, with the connections
// quiet, the Go heap and stacks in use are compared with before, per
// connection held. Kernel socket memory is not counted (it is not the
// process's); `make bench` measures the process's RSS.
func BenchmarkHeldConnection(b *testing.B) {
	b.Run("idle", func(b *testing.B) {
		_, addr := costServer(b, ServerConfig{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second})
		benchHeld(b, addr, rawClient.get)
	})
	b.Run("upgraded", func(b *testing.B) {
		backend := rawSwitchBackend(b)
		rt, err := NewRouter([]*Route{testRoute(b, "r", "round_robin", &Upstream{Name: "svc", Transport: NewTransport(TransportConfig{}), PassHostHeader: true}, backend)})
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := NewServer(NewHandler(rt, Options{}), ServerConfig{})
		go func() { _ = s.Serve(ln) }()
		b.Cleanup(func() { _ = s.Close() })
		benchHeld(b, ln.Addr().(*net.TCPAddr), rawClient.upgrade)
	})
}

func benchHeld(b *testing.B, addr *net.TCPAddr, open func(rawClient, []byte) error) {
	const heldMax = 4000
	buf := make([]byte, 1024)
	// Warm up the server's pools.
	warm := dialRaw(b, addr)
	if err := open(warm, buf); err != nil {
		b.Fatal(err)
	}
	warm.close()
	held := make([]rawClient, 0, heldMax)
	defer func() {
		for _, c := range held {
			c.close()
		}
	}()
	before := memInUse()
	goroutines := runtime.NumGoroutine()
	b.ReportAllocs()
	for b.Loop() {
		if len(held) == heldMax {
			held[0].close()
			held = held[1:]
		}
		c := dialRaw(b, addr)
		held = append(held, c)
		if err := open(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	after := memInUse()
	n := float64(len(held))
	b.ReportMetric(float64(after.heap-before.heap)/n, "heap-B/conn")
	b.ReportMetric(float64(after.stack-before.stack)/n, "stack-B/conn")
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/n, "goroutines/conn")
}

// upgrade sends a WebSocket handshake and reads the 101's head into buf.
func (c rawClient) upgrade(buf []byte) error {
	if _, err := syscall.Write(int(c), []byte(wsHandshake)); err != nil {
		return err
	}
	n := 0
	for !bytes.HasSuffix(buf[:n], []byte("\r\n\r\n")) {
		k, err := readRaw(int(c), buf[n:])
		if err != nil {
			return err
		}
		if k == 0 || n+k == len(buf) {
			return fmt.Errorf("answer %q", buf[:n+k])
		}
		n += k
	}
	if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 101 ")) {
		return fmt.Errorf("answer %q", buf[:n])
	}
	return nil
}

// rawSwitchBackend answers every request head with a 101 to websocket and
// holds the connection as a bare socket, with no Go object per connection.
func rawSwitchBackend(tb testing.TB) string {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Listen(fd, 1024); err != nil {
		tb.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	var held []int
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		answer := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		for {
			c, _, err := syscall.Accept4(fd, syscall.SOCK_CLOEXEC)
			if err != nil {
				return // the listener was shut down
			}
			if len(held) == 2*4096 {
				// The oldest tunnels' clients are closed (benchHeld holds
				// 4,000 at most): keep the descriptors bounded.
				_ = syscall.Close(held[0])
				held = held[1:]
			}
			held = append(held, c)
			n := 0
			for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) && n < len(buf) {
				k, err := syscall.Read(c, buf[n:])
				if err != nil || k == 0 {
					break
				}
				n += k
			}
			_, _ = syscall.Write(c, answer)
		}
	}()
	tb.Cleanup(func() {
		_ = syscall.Shutdown(fd, syscall.SHUT_RDWR) // ends the blocked accept
		<-done
		_ = syscall.Close(fd)
		for _, c := range held {
			_ = syscall.Close(c)
		}
	})
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

type memFigures struct{ heap, stack int64 }

// memInUse returns the heap and stack memory in use after two collections
// (the second empties sync.Pools of what the first left in their victim
// caches).
func memInUse() memFigures {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memFigures{heap: int64(m.HeapInuse), stack: int64(m.StackInuse)}
}

// TestFormatAddrAsNet: a connection's address is written as net.TCPAddr
// writes it.
func TestFormatAddrAsNet(t *testing.T) {
	for _, a := range []*net.TCPAddr{
		{IP: net.IPv4(192, 0, 2, 1), Port: 40000},
		{IP: net.ParseIP("192.0.2.1").To4(), Port: 1},
		{IP: net.ParseIP("2001:db8::1"), Port: 443},
		{IP: net.ParseIP("fe80::1"), Port: 8080, Zone: "eth0"},
		{IP: net.ParseIP("fe80::1:2:3:4"), Port: 65535, Zone: "a-very-long-interface-name-0123456789"},
		{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 80},
		{IP: net.ParseIP("::"), Port: 0},
		{Port: 80},
	} {
		var buf [addrBufLen]byte
		if got, want := formatAddr(a, &buf), a.String(); got != want {
			t.Errorf("formatAddr(%#v) = %q, net writes %q", a, got, want)
		}
	}
	// A cconn keeps an address that fits without allocating, and a longer
	// one with the one allocation that formats it.
	cc := new(cconn)
	for _, c := range []struct {
		a    *net.TCPAddr
		want float64
	}{
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}, 0},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1234:5678:9abc:def0:1234:5678"), Port: 443}, 1},
	} {
		allocs := testing.AllocsPerRun(100, func() { cc.setAddr(formatAddr(c.a, &cc.addrBuf)) })
		if allocs != c.want || cc.addr() != c.a.String() {
			t.Errorf("%v: %v allocations, address %q; want %v, %q", c.a, allocs, cc.addr(), c.want, c.a.String())
		}
	}
}

// TestTunnelsHoldNoGoroutine: open tunnels with nothing flowing hold no
// goroutine on the fast path (issue 18); each still carries bytes.
func TestTunnelsHoldNoGoroutine(t *testing.T) {
	addr, _ := switchBackend(t, switchAnswer("websocket", ""))
	s := startServer(t, true, ServerConfig{}, addr)
	warm := openTunnel(t, s.addr) // the backend's and the pool's goroutines
	_ = warm
	const n = 50
	base := runtime.NumGoroutine()
	conns := make([]*clientConn, 0, n)
	for range n {
		conns = append(conns, openTunnel(t, s.addr))
	}
	// The backend holds a goroutine per connection: n more are its.
	waitGoroutines(t, base+n+n/10, fmt.Sprintf("%d idle tunnels", n))
	for i, c := range conns {
		c.send(t, "again\n")
		if line, err := c.br.ReadString('\n'); err != nil || line != "echo: again\n" {
			t.Fatalf("tunnel %d after waiting: %q, %v", i, line, err)
		}
	}
}

// TestConnStats: the Server counts its connections by what they hold —
// parked idle ones, tunnels, and those net/http's server holds.
func TestConnStats(t *testing.T) {
	waitStats := func(t *testing.T, s *Server, what string, ok func(ConnStats) bool) {
		t.Helper()
		deadline := time.Now().Add(diffDeadline)
		for !ok(s.ConnStats()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v", what, s.ConnStats())
			}
			time.Sleep(5 * time.Millisecond) // polling a condition, bounded
		}
	}
	t.Run("parked", func(t *testing.T) {
		s, addr := costServer(t, ServerConfig{})
		buf := make([]byte, 1024)
		for range 20 {
			c := dialRaw(t, addr)
			t.Cleanup(c.close)
			if err := c.get(buf); err != nil {
				t.Fatal(err)
			}
		}
		waitStats(t, s, "20 idle connections parked", func(st ConnStats) bool {
			return st == ConnStats{Parked: 20}
		})
	})
	t.Run("tunnel", func(t *testing.T) {
		addr, _ := switchBackend(t, switchAnswer("websocket", ""))
		s := startServer(t, true, ServerConfig{}, addr)
		c := openTunnel(t, s.addr)
		waitStats(t, s.srv, "one tunnel", func(st ConnStats) bool { return st == ConnStats{Tunnels: 1} })
		c.Close()
		waitStats(t, s.srv, "the tunnel closed", func(st ConnStats) bool { return st == ConnStats{} })
	})
	t.Run("nethttp", func(t *testing.T) {
		addr, arrived, release := blockingBackend(t)
		defer release()
		s := startServer(t, true, ServerConfig{}, addr)
		c := dialServer(t, s.addr)
		c.send(t, "TRACE /x HTTP/1.1\r\nHost: example.net\r\n\r\n") // handed off
		<-arrived
		waitStats(t, s.srv, "a connection net/http serves", func(st ConnStats) bool { return st == ConnStats{NetHTTP: 1} })
		release()
		c.response(t, "TRACE")
		waitStats(t, s.srv, "the handed-off connection closed", func(st ConnStats) bool { return st == ConnStats{} })
	})
}
