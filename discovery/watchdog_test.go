package discovery

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/zkgate/zkgate/internal/zktest"
)

func TestHandshakeTimeout(t *testing.T) {
	for session, want := range map[time.Duration]time.Duration{
		time.Second: time.Second, 10 * time.Second: 10 * time.Second / 3, time.Minute: 10 * time.Second,
	} {
		if got := handshakeTimeout(session); got != want {
			t.Errorf("handshakeTimeout(%v) = %v, want %v", session, got, want)
		}
	}
}

// mute is a listener in front of a ZooKeeper server that accepts its first
// connection and never answers on it (like a server that is still
// starting), and relays every later connection to the server.
type mute struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newMute(t *testing.T, target string) *mute {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &mute{ln: ln, target: target}
	m.wg.Go(m.serve)
	t.Cleanup(func() {
		ln.Close()
		m.mu.Lock()
		for _, c := range m.conns {
			c.Close()
		}
		m.mu.Unlock()
		m.wg.Wait()
	})
	return m
}

func (m *mute) serve() {
	for first := true; ; first = false {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.mu.Lock()
		m.conns = append(m.conns, c)
		m.mu.Unlock()
		if first {
			continue // held open, never answered
		}
		s, err := net.Dial("tcp", m.target)
		if err != nil {
			c.Close()
			continue
		}
		m.mu.Lock()
		m.conns = append(m.conns, s)
		m.mu.Unlock()
		m.wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
		m.wg.Go(func() { _, _ = io.Copy(c, s); c.Close() })
	}
}

func testClientHandshakeWatchdog(t *testing.T, srv *zktest.Server) {
	m := newMute(t, srv.Addr())
	log, _ := testLog()
	// Without the watchdog go-zookeeper would wait 10 × 2/3 × 3s = 20s for
	// the first handshake, longer than this deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, ClientConfig{Servers: []string{m.ln.Addr().String()}, SessionTimeout: 3 * time.Second}, log)
	if err != nil {
		t.Fatalf("Dial through a server that first does not answer: %v", err)
	}
	defer c.Close()
	if st := c.Status(); st.HandshakeTimeouts != 1 || !st.HasSession {
		t.Errorf("status %+v: want one handshake timeout, then a session", st)
	}
}
