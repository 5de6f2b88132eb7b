package benchkit

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestReverseProxy(t *testing.T) {
	backend := httptest.NewServer(&Backend{ID: "b"})
	defer backend.Close()
	upstream := strings.TrimPrefix(backend.URL, "http://")
	h, err := NewReverseProxy(upstream)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()
	for path, want := range map[string]string{"/": SmallBody, LargePath: string(LargeBody()), IDPath: "b"} {
		resp, err := http.Get(front.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("GET %s through the proxy: %d, %d bytes; want 200 and %d bytes", path, resp.StatusCode, len(body), len(want))
		}
	}
	for _, bad := range []string{"", "http://x:1", "x:1/path"} {
		if _, err := NewReverseProxy(bad); err == nil {
			t.Errorf("NewReverseProxy(%q): no error", bad)
		}
	}
}

// freeAddr returns a loopback address nothing listens on, for a proxy
// the test starts there.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestRunReverseProxyStops(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunReverseProxy(ctx, addr, "127.0.0.1:1") }()
	// A refused upstream answers 502 once the proxy listens.
	if err := WaitFor(context.Background(), 10*time.Second, "the proxy to listen", func() (bool, error) {
		return status("http://"+addr+"/") == http.StatusBadGateway, nil
	}); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunReverseProxy after cancel = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunReverseProxy did not return within 10s of cancel")
	}
	if err := RunReverseProxy(context.Background(), "127.0.0.1:0", "no port"); err == nil {
		t.Error("RunReverseProxy with a bad upstream: no error")
	}
}
