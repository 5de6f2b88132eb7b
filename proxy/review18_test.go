package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Adversarial review of the fast path's protocol switches and idle
// connections (review18): each test names the defect it shows.

// TestReview18SwitchNeedsConnectionUpgrade: a 101 whose Connection field
// does not name "upgrade" (none at all, or "close") does not switch
// protocols (RFC 9110 §7.8: a server sending 101 MUST send Connection:
// upgrade). net/http's ReverseProxy finds no upgrade in such an answer and
// answers 502; the fast path turned the connection into a tunnel anyway,
// relaying raw bytes to and from an endpoint whose answer does not say it
// left HTTP.
func TestReview18SwitchNeedsConnectionUpgrade(t *testing.T) {
	for name, answer := range map[string]string{
		"no Connection":     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
		"Connection: close": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
	} {
		for _, mode := range serverModes {
			t.Run(name+"/"+mode.name, func(t *testing.T) {
				got, _ := tunnelTranscript(t, mode.fast, func(string) string { return answer }, "")
				if !strings.HasPrefix(got, "HTTP/1.1 502 ") {
					t.Errorf("a 101 without Connection: upgrade was passed on as a switch:\n%s", got)
				}
			})
		}
	}
}

// TestReview18IdleTimeoutBelowSlack: a client that is never silent for
// longer than IdleTimeout keeps its connection. setReadDeadline keeps a
// deadline set earlier when it is less than deadlineSlack (1s) before the
// wanted one, so with an IdleTimeout under a second the deadline of a
// previous wait stays, already close to passing or passed, and a client
// sending a request every 200ms under a 300ms IdleTimeout is cut off after
// a few requests (net/http keeps it). Pre-existing: the slack predates the
// parking commits (it fails on d8cebdb as well); parking does not change it.
func TestReview18IdleTimeoutBelowSlack(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	t.Cleanup(be.Close)
	for _, mode := range serverModes {
		t.Run(mode.name, func(t *testing.T) {
			s := startServer(t, mode.fast, ServerConfig{IdleTimeout: 300 * time.Millisecond, ReadHeaderTimeout: 5 * time.Second}, be.Listener.Addr().String())
			c := dialServer(t, s.addr)
			for i := range 8 {
				if i > 0 {
					// The client's think time, the point of the test: it
					// stays under IdleTimeout.
					time.Sleep(200 * time.Millisecond)
				}
				if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				m, err := readMessage(c.br, true, http.MethodGet)
				if err != nil {
					t.Fatalf("request %d, 200ms after the previous answer (IdleTimeout 300ms): %v", i, err)
				}
				if m.statusCode() != http.StatusOK {
					t.Fatalf("request %d: %q", i, m.start)
				}
			}
		})
	}
}

// TestReview18TunnelAfterBaseContextEnded: tunnels end with BaseContext
// (the Server's doc, TestTunnelsClosedWithServer), but closeTunnels runs
// once, when it ends: a handshake served after that opens a tunnel that
// nothing closes but Close. On the net/http side the request's context is
// over already and the connection is closed without a switch.
func TestReview18TunnelAfterBaseContextEnded(t *testing.T) {
	addr, _ := switchBackend(t, switchAnswer("websocket", ""))
	for _, mode := range serverModes {
		t.Run(mode.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			s := startServer(t, mode.fast, ServerConfig{BaseContext: ctx}, addr)
			cancel()
			c := dialServer(t, s.addr)
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			c.send(t, wsHandshake)
			m, err := readMessage(c.br, true, http.MethodGet)
			if err != nil || m.statusCode() != http.StatusSwitchingProtocols {
				return // refused or closed: no tunnel
			}
			c.send(t, "ping\n")
			if line, err := c.br.ReadString('\n'); err == nil {
				t.Fatalf("a tunnel opened after BaseContext ended carries %q and stays open", line)
			}
		})
	}
}

// TestReview18HandshakeInFlightDuringShutdown: Shutdown lets the requests
// in flight finish. A WebSocket handshake in flight when it begins is
// answered 101 on both paths, but on the fast path startTunnel's
// trackTunnel then fails (the Server is closing) and the tunnel is closed
// at once: the client gets a switch that is dead on arrival (a WebSocket
// client sees an abnormal closure). net/http keeps the upgraded connection,
// which Shutdown does not track, until BaseContext ends — in zkgate after
// the drain.
func TestReview18HandshakeInFlightDuringShutdown(t *testing.T) {
	for _, mode := range serverModes {
		t.Run(mode.name, func(t *testing.T) {
			release := make(chan struct{})
			addr, heads := switchBackend(t, func(h string) string {
				<-release // the backend answers once Shutdown has begun
				return switchAnswer("websocket", "")(h)
			})
			s := startServer(t, mode.fast, ServerConfig{}, addr)
			c := dialServer(t, s.addr)
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			c.send(t, wsHandshake)
			<-heads
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.srv.Shutdown(ctx) }()
			waitListenerClosed(t, s.addr)
			close(release)
			if m := c.response(t, http.MethodGet); m.statusCode() != http.StatusSwitchingProtocols {
				t.Fatalf("status %q", m.start)
			}
			c.send(t, "ping\n")
			if line, err := c.br.ReadString('\n'); err != nil || line != "echo: ping\n" {
				t.Errorf("the tunnel of a handshake answered 101 during Shutdown: read %q, %v", line, err)
			}
			if err := <-done; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
}
