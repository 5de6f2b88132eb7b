package benchkit

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// startEpollProxy runs the epoll proxy with two loops in front of a real
// bench backend, and returns its address; it stops with the test.
func startEpollProxy(t *testing.T) string {
	t.Helper()
	backend := httptest.NewServer(&Backend{ID: "b"})
	t.Cleanup(backend.Close)
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunEpollProxy(ctx, addr, strings.TrimPrefix(backend.URL, "http://"), 2) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("RunEpollProxy: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("RunEpollProxy did not return after its context ended")
		}
	})
	if err := WaitFor(context.Background(), 10*time.Second, "the epoll proxy to answer", func() (bool, error) {
		return status("http://"+addr+"/") == http.StatusOK, nil
	}); err != nil {
		t.Fatal(err)
	}
	return addr
}

// The epoll proxy relays the bench's bodies, small and 16 KiB, on
// keep-alive connections from many clients at once.
func TestEpollProxyRelays(t *testing.T) {
	addr := startEpollProxy(t)
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				path, want := "/", SmallBody
				if (g+i)%3 == 0 {
					path, want = LargePath, string(LargeBody())
				}
				resp, err := client.Get("http://" + addr + path)
				if err != nil {
					t.Errorf("GET %s: %v", path, err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(body) != want {
					t.Errorf("GET %s: %d, %d bytes (%v); want 200 and %d bytes", path, resp.StatusCode, len(body), err, len(want))
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Pipelined requests are answered in order, one at a time; a request with
// a body is refused by closing the connection.
func TestEpollProxyPipelinedAndRefused(t *testing.T) {
	addr := startEpollProxy(t)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + IDPath + " HTTP/1.1\r\nHost: x\r\n\r\n"
	if _, err := io.WriteString(c, req+"GET / HTTP/1.1\r\nHost: x\r\n\r\n"+req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i, want := range []string{"b", SmallBody, "b"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want {
			t.Fatalf("answer %d: %q, want %q", i, body, want)
		}
	}
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"); err != nil {
		t.Fatal(err)
	}
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a request with a body: read %d bytes, %v; want the connection closed", n, err)
	}
}

func TestRunEpollProxyRefusesAddresses(t *testing.T) {
	for _, c := range [][2]string{{"", "127.0.0.1:1"}, {"127.0.0.1:0", "x:1"}, {"[::1]:0", "127.0.0.1:1"}} {
		if err := RunEpollProxy(context.Background(), c[0], c[1], 1); err == nil {
			t.Errorf("RunEpollProxy(%q, %q): no error", c[0], c[1])
		}
	}
}
