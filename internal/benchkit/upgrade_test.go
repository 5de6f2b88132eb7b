package benchkit

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestWebSocketAccept checks the accept value against RFC 6455 §1.3's
// worked example.
func TestWebSocketAccept(t *testing.T) {
	if got, want := WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		t.Errorf("WebSocketAccept(RFC example) = %q, want %q", got, want)
	}
}

// dialRaw opens a connection to srv with a 10s deadline.
func dialRaw(t *testing.T, srv *httptest.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func TestBackendUpgradeEchoes(t *testing.T) {
	srv := httptest.NewServer(&Backend{ID: "b"})
	defer srv.Close()
	c, br := dialRaw(t, srv)
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	// The first frame's bytes follow the handshake in the same write: they
	// sit in net/http's reader when the handler hijacks and must come back.
	if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"+
		"Sec-WebSocket-Key: "+key+"\r\nSec-WebSocket-Version: 13\r\n\r\nearly"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("Sec-WebSocket-Accept") != WebSocketAccept(key) {
		t.Fatalf("handshake answer: %d, Upgrade %q, accept %q", resp.StatusCode, resp.Header.Get("Upgrade"), resp.Header.Get("Sec-WebSocket-Accept"))
	}
	for _, msg := range []string{"", "a frame's bytes", strings.Repeat("x", 5000)} {
		if msg != "" {
			if _, err := io.WriteString(c, msg); err != nil {
				t.Fatal(err)
			}
		} else {
			msg = "early"
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("echo of %d bytes: %v", len(msg), err)
		}
		if string(got) != msg {
			t.Fatalf("echo = %.40q, want %.40q", got, msg)
		}
	}
	// The client's end of stream ends the backend's side.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after the client's FIN: read %d bytes, %v; want EOF", n, err)
	}
}

func TestBackendRefusesBadHandshakes(t *testing.T) {
	srv := httptest.NewServer(&Backend{ID: "b"})
	defer srv.Close()
	for name, head := range map[string]string{
		"no key":    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
		"version 8": "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a2V5a2V5a2V5a2V5a2V5aw==\r\nSec-WebSocket-Version: 8\r\n",
	} {
		c, br := dialRaw(t, srv)
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n"+head+"\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, resp.StatusCode)
		}
	}
	// Upgrade to something else, or without Connection: upgrade, is a
	// plain request.
	c, br := dialRaw(t, srv)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != SmallBody {
		t.Errorf("Upgrade without Connection: upgrade: %d %q, want the small body", resp.StatusCode, body)
	}
}
