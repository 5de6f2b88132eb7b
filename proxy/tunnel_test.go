package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// Protocol switches (tunnel.go), compared between the fast path and
// net/http's ReverseProxy, on a raw backend that answers 101 and then
// speaks a line protocol of its own.

// switchBackend is a raw backend: for each connection it reads one request
// head, answers with answer(head) and, when that is a 101, echoes each
// line it reads as "echo: <line>" until its peer half-closes, then writes
// "bye\n" and closes. Each request head is sent on heads.
func switchBackend(t *testing.T, answer func(head string) string) (addr string, heads chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	heads = make(chan string, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(diffDeadline))
				br := bufio.NewReader(c)
				var head strings.Builder
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					head.WriteString(line)
					if line == "\r\n" {
						break
					}
				}
				heads <- head.String()
				res := answer(head.String())
				if _, err := io.WriteString(c, res); err != nil || !strings.HasPrefix(res, "HTTP/1.1 101") {
					return
				}
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						if err == io.EOF {
							_, _ = io.WriteString(c, "bye\n")
						}
						return
					}
					if _, err := io.WriteString(c, "echo: "+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), heads
}

const wsHandshake = "GET /chat HTTP/1.1\r\nHost: example.net\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

func switchAnswer(protocol, extra string) func(string) string {
	return func(string) string {
		return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + protocol + "\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Backend: b\r\n\r\n" + extra
	}
}

// tunnelTranscript runs one client through a server of the given mode:
// the handshake with early bytes after it, the answer's head (fields
// sorted, Date dropped), then two lines through the tunnel, a half-close,
// and what comes back until the end of stream.
func tunnelTranscript(t *testing.T, fast bool, answer func(string) string, early string) (client, backendHead string) {
	t.Helper()
	addr, heads := switchBackend(t, answer)
	s := startServer(t, fast, ServerConfig{}, addr)
	c := dialServer(t, s.addr)
	c.send(t, wsHandshake+early)
	var b strings.Builder
	status, err := c.br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b.WriteString(status)
	var fields []string
	clen := -1
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the answer's head: %v", err)
		}
		if line == "\r\n" {
			break
		}
		if name, value, ok := strings.Cut(line, ": "); ok && name != "Date" {
			// Names as net/http writes them: the fast path keeps the
			// endpoint's case.
			fields = append(fields, http.CanonicalHeaderKey(name)+": "+value)
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			fmt.Sscanf(v, "%d", &clen)
		}
	}
	sort.Strings(fields)
	b.WriteString(strings.Join(fields, ""))
	if !strings.Contains(status, " 101 ") {
		body := make([]byte, max(clen, 0))
		if _, err := io.ReadFull(c.br, body); err != nil {
			t.Fatalf("reading the body: %v", err)
		}
		fmt.Fprintf(&b, "body: %q\n", body)
		return b.String(), <-heads
	}
	c.send(t, "one\n")
	c.send(t, "two\n")
	if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(c.br) // to the end of stream
	end := "end of stream"
	if err != nil {
		end = connErr(err)
	}
	fmt.Fprintf(&b, "tunnel: %q (%s)\n", rest, end)
	return b.String(), <-heads
}

func TestTunnelDiff(t *testing.T) {
	for _, tc := range []struct {
		name, early, extra string
		want               string // the tunnel's part of the fast path's transcript
	}{
		{name: "plain", want: `tunnel: "echo: one\necho: two\nbye\n" (end of stream)`},
		{name: "endpoint bytes after its 101", extra: "hello\n", want: `tunnel: "hello\necho: one\necho: two\nbye\n" (end of stream)`},
		// ReverseProxy drops what the client sent past its request before
		// the 101 (the bytes its server had buffered); the fast path
		// forwards them, as nginx and HAProxy do.
		{name: "client bytes before the 101", early: "zero\n", want: `tunnel: "echo: zero\necho: one\necho: two\nbye\n" (end of stream)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref, refHead := tunnelTranscript(t, false, switchAnswer("websocket", tc.extra), tc.early)
			fast, fastHead := tunnelTranscript(t, true, switchAnswer("websocket", tc.extra), tc.early)
			if !strings.Contains(fast, tc.want) {
				t.Errorf("the tunnel carried otherwise than %s:\n%s", tc.want, fast)
			}
			if tc.early == "" && fast != ref {
				t.Errorf("the client received differs (- net/http, + fast path):\n%s", lineDiff(ref, fast))
			}
			if canonicalHead(fastHead) != canonicalHead(refHead) {
				t.Errorf("the backend received differs (- net/http, + fast path):\n%s", lineDiff(canonicalHead(refHead), canonicalHead(fastHead)))
			}
		})
	}
}

// canonicalHead returns a request head's lines with its field names as
// net/http writes them, the fields sorted.
func canonicalHead(h string) string {
	lines := strings.Split(strings.TrimSuffix(h, "\r\n\r\n"), "\r\n")
	for i, l := range lines[1:] {
		if name, value, ok := strings.Cut(l, ": "); ok {
			lines[i+1] = http.CanonicalHeaderKey(name) + ": " + value
		}
	}
	sort.Strings(lines[1:])
	return strings.Join(lines, "\n") + "\n"
}

// TestTunnelProtocolMismatch502: a 101 to another protocol than the one
// asked for is a bad answer on both paths.
func TestTunnelProtocolMismatch502(t *testing.T) {
	for _, mode := range serverModes {
		t.Run(mode.name, func(t *testing.T) {
			got, _ := tunnelTranscript(t, mode.fast, switchAnswer("h2c", ""), "")
			if !strings.HasPrefix(got, "HTTP/1.1 502 ") {
				t.Errorf("a switch to h2c when websocket was asked: got\n%s", got)
			}
		})
	}
}

// TestTunnelRefusedAnswerRelayed: an endpoint that refuses the switch
// answers as to any request, on both paths alike.
func TestTunnelRefusedAnswerRelayed(t *testing.T) {
	answer := func(string) string {
		return "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\nX-Backend: b\r\n\r\nnope"
	}
	ref, _ := tunnelTranscript(t, false, answer, "")
	fast, _ := tunnelTranscript(t, true, answer, "")
	if fast != ref || !strings.HasPrefix(fast, "HTTP/1.1 426 ") {
		t.Errorf("the client received differs (- net/http, + fast path):\n%s", lineDiff(ref, fast))
	}
}

// openTunnel makes one tunnel through the server at addr and checks it
// carries a line.
func openTunnel(t *testing.T, addr string) *clientConn {
	t.Helper()
	c := dialServer(t, addr)
	c.send(t, wsHandshake)
	if m := c.response(t, http.MethodGet); m.statusCode() != http.StatusSwitchingProtocols {
		t.Fatalf("status %q", m.start)
	}
	c.send(t, "ping\n")
	if line, err := c.br.ReadString('\n'); err != nil || line != "echo: ping\n" {
		t.Fatalf("through the tunnel: %q, %v", line, err)
	}
	return c
}

// TestTunnelsClosedWithServer: Close ends the tunnels, and so does the end
// of BaseContext, as on the net/http side.
func TestTunnelsClosedWithServer(t *testing.T) {
	addr, _ := switchBackend(t, switchAnswer("websocket", ""))
	t.Run("Close", func(t *testing.T) {
		s := startServer(t, true, ServerConfig{}, addr)
		c := openTunnel(t, s.addr)
		if err := s.srv.Close(); err != nil {
			t.Fatal(err)
		}
		c.wantClosed(t)
	})
	t.Run("BaseContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := startServer(t, true, ServerConfig{BaseContext: ctx}, addr)
		c := openTunnel(t, s.addr)
		cancel()
		c.wantClosed(t)
	})
}

// TestNoTunnelWithoutSwitch: when the endpoint refuses a protocol switch,
// the connection stays HTTP: what the client sends next is parsed as
// requests under the gateway's rules (here one it refuses), never relayed
// as tunnel bytes to the endpoint.
func TestNoTunnelWithoutSwitch(t *testing.T) {
	addr, heads := switchBackend(t, func(string) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno"
	})
	s := startServer(t, true, ServerConfig{}, addr)
	c := dialServer(t, s.addr)
	c.send(t, wsHandshake)
	if m := c.response(t, http.MethodGet); m.statusCode() != http.StatusOK {
		t.Fatalf("status %q", m.start)
	}
	<-heads
	c.send(t, "GET /x HTTP/1.1\r\nHost: example.net\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
	if m := c.response(t, http.MethodGet); m.statusCode() != http.StatusBadRequest {
		t.Fatalf("a smuggling attempt after a refused switch: status %q, want the gateway's 400", m.start)
	}
	c.wantClosed(t)
	select {
	case h := <-heads:
		t.Errorf("the endpoint received %q", h)
	default:
	}
}
