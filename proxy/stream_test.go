package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/zkgate/zkgate/balancer"
)

func TestReverseProxyWebSocketEcho(t *testing.T) {
	be := newBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	// least_request wraps the response body to track it: the 101 body must
	// stay writable through the wrapper.
	route := testRoute(t, "ws", "least_request", testUpstream(t, "svc"), be.addr())
	obs := &observer{}
	fe, _ := newFrontend(t, Options{Metrics: obs}, route)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(fe.URL, "http")+"/chat", nil)
	if err != nil {
		t.Fatalf("dial through the proxy: %v", err)
	}
	defer c.CloseNow()
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", res.StatusCode)
	}
	for i := range 3 {
		msg := fmt.Sprintf("hello %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "echo: "+msg {
			t.Fatalf("got %q, want %q", got, "echo: "+msg)
		}
	}
	lr := route.Balancer.(*balancer.LeastRequest)
	if n := lr.InFlight(be.addr()); n != 1 {
		t.Errorf("in flight during the session: %d, want 1", n)
	}
	c.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "the session's Done", func() bool { return lr.InFlight(be.addr()) == 0 })
	waitFor(t, "the request's end", func() bool { return obs.last().status != 0 })
	if got := obs.last(); got.status != http.StatusSwitchingProtocols || got.route != "ws" {
		t.Errorf("observed %+v, want status 101 on route ws", got)
	}
}

func TestReverseProxyServerSentEventsFlushedAtOnce(t *testing.T) {
	release := make(chan struct{})
	be := newBackend(t, "sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "data: last\n\n")
	})
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	defer close(release)

	res := openStream(t, fe.URL+"/events")
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil {
		t.Fatalf("first event did not arrive before the response ended: %v", err)
	}
	if line != "data: first\n" {
		t.Errorf("first line %q", line)
	}
}

func TestReverseProxyExpectContinue(t *testing.T) {
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reject" {
			w.WriteHeader(http.StatusUnauthorized) // without reading the body
			return
		}
		body, _ := io.ReadAll(r.Body)
		_, _ = w.Write(body)
	})
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 10 * time.Second}, Timeout: 10 * time.Second}

	t.Run("accepted", func(t *testing.T) {
		body := &watchedReader{r: strings.NewReader("payload")}
		req, _ := http.NewRequest("PUT", fe.URL+"/accept", body)
		req.ContentLength = 7
		req.Header.Set("Expect", "100-continue")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(got) != "payload" {
			t.Errorf("status %d body %q", res.StatusCode, got)
		}
	})
	t.Run("rejected before the body", func(t *testing.T) {
		body := &watchedReader{r: strings.NewReader("payload")}
		req, _ := http.NewRequest("PUT", fe.URL+"/reject", body)
		req.ContentLength = 7
		req.Header.Set("Expect", "100-continue")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", res.StatusCode)
		}
		if body.read.Load() {
			t.Error("the client sent its body although the backend refused it before 100 Continue")
		}
	})
}

// watchedReader records whether it was read.
type watchedReader struct {
	r    io.Reader
	read atomic.Bool
}

func (w *watchedReader) Read(p []byte) (int, error) {
	w.read.Store(true)
	return w.r.Read(p)
}

func TestReverseProxyTrailers(t *testing.T) {
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
		w.Header().Set(http.TrailerPrefix+"X-Got-Request-Trailer", r.Trailer.Get("X-Req-Sum")+"/"+string(body))
	})
	fe, _ := newFrontend(t, Options{}, testRoute(t, "r", "round_robin", testUpstream(t, "svc"), be.addr()))

	req, _ := http.NewRequest("POST", fe.URL+"/", io.MultiReader(strings.NewReader("up")))
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Req-Sum": {"r1"}}
	res, body := do(t, req)
	if string(body) != "body" {
		t.Errorf("body %q", body)
	}
	for k, v := range map[string]string{"X-Checksum": "abc", "X-Late": "late", "X-Got-Request-Trailer": "r1/up"} {
		if got := res.Trailer.Get(k); got != v {
			t.Errorf("trailer %s = %q, want %q (all: %v)", k, got, v, res.Trailer)
		}
	}
}
