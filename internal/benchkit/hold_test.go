package benchkit

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// holdUntilEstablished runs Hold in the background and returns once it
// reported its established phase, with a function that stops it and
// returns the closed report.
func holdUntilEstablished(t *testing.T, o HoldOptions) (HoldReport, func() HoldReport) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	o.Out = out
	type result struct {
		r   HoldReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := Hold(ctx, o)
		done <- result{r, err}
	}()
	var est HoldReport
	err := WaitFor(context.Background(), 30*time.Second, "the established report", func() (bool, error) {
		reps, err := ParseHoldReports(out.String())
		est = reps["established"]
		select {
		case res := <-done:
			return false, res.err
		default:
		}
		return est.Phase != "", err
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stop := func() HoldReport {
		cancel()
		select {
		case res := <-done:
			if res.err != nil {
				t.Fatal(res.err)
			}
			reps, err := ParseHoldReports(out.String())
			if err != nil || reps["closed"] != res.r {
				t.Fatalf("closed report line %+v (%v), want the returned %+v", reps["closed"], err, res.r)
			}
			return res.r
		case <-time.After(10 * time.Second):
			t.Fatal("Hold did not return within 10s of its context's end")
		}
		return HoldReport{}
	}
	return est, stop
}

// connCounter counts a server's open connections.
type connCounter struct {
	mu   sync.Mutex
	open int
}

func (cc *connCounter) track(_ net.Conn, s http.ConnState) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	switch s {
	case http.StateNew:
		cc.open++
	case http.StateClosed, http.StateHijacked:
		cc.open--
	}
}

func (cc *connCounter) get() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.open
}

func TestHoldIdle(t *testing.T) {
	var cc connCounter
	srv := httptest.NewUnstartedServer(&Backend{ID: "b"})
	srv.Config.ConnState = cc.track
	srv.Start()
	defer srv.Close()
	est, stop := holdUntilEstablished(t, HoldOptions{Addr: strings.TrimPrefix(srv.URL, "http://"), Path: "/echo/", Kind: HoldIdle, Conns: 200, Concurrency: 8})
	if est.Established != 200 || est.Failed != 0 || est.Wanted != 200 || est.Kind != HoldIdle {
		t.Fatalf("established report %+v, want 200 idle connections and no failure", est)
	}
	if got := cc.get(); got != 200 {
		t.Errorf("the server has %d open connections while 200 are held", got)
	}
	closed := stop()
	if closed.Alive != 200 || closed.Ended != 0 || closed.Established != 200 {
		t.Errorf("closed report %+v, want 200 alive at the close", closed)
	}
	if err := WaitFor(context.Background(), 10*time.Second, "the server's connections to close", func() (bool, error) { return cc.get() == 0, nil }); err != nil {
		t.Error(err)
	}
}

// TestHoldCountsConnectionsTheProxyEnded: a server that closes idle
// connections shortly after answering leaves the held connections ended,
// and the closed report says so.
func TestHoldCountsConnectionsTheProxyEnded(t *testing.T) {
	var cc connCounter
	srv := httptest.NewUnstartedServer(&Backend{ID: "b"})
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Config.ConnState = cc.track
	srv.Start()
	defer srv.Close()
	_, stop := holdUntilEstablished(t, HoldOptions{Addr: strings.TrimPrefix(srv.URL, "http://"), Kind: HoldIdle, Conns: 20})
	if err := WaitFor(context.Background(), 10*time.Second, "the server to close its idle connections", func() (bool, error) { return cc.get() == 0, nil }); err != nil {
		t.Fatal(err)
	}
	if closed := stop(); closed.Alive != 0 || closed.Ended != 20 {
		t.Errorf("closed report %+v, want 20 ended and none alive", closed)
	}
}

func TestHoldUpgradeThroughAProxy(t *testing.T) {
	backend := httptest.NewServer(&Backend{ID: "b"})
	defer backend.Close()
	h, err := NewReverseProxy(strings.TrimPrefix(backend.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()
	est, stop := holdUntilEstablished(t, HoldOptions{Addr: strings.TrimPrefix(front.URL, "http://"), Path: "/ws", Kind: HoldUpgrade, Conns: 50, EchoEvery: 10})
	if est.Established != 50 || est.Failed != 0 || est.EchoOK != 5 || est.EchoFailed != 0 {
		t.Fatalf("established report %+v, want 50 upgraded connections and 5 echoes", est)
	}
	if closed := stop(); closed.Alive != 50 {
		t.Errorf("closed report %+v, want 50 alive", closed)
	}
}

// TestHoldReportsFailures: a server that answers the handshake with 200,
// or closes the connection, fails every connection with the reason.
func TestHoldReportsFailures(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		_, _ = w.Write([]byte("no"))
	}))
	defer plain.Close()
	addr := strings.TrimPrefix(plain.URL, "http://")
	for _, tc := range []struct {
		o    HoldOptions
		want string
	}{
		{HoldOptions{Kind: HoldUpgrade, Path: "/ws"}, "status 200, want 101"},
		{HoldOptions{Kind: HoldIdle, Path: "/close"}, "closes the connection"},
	} {
		tc.o.Addr, tc.o.Conns = addr, 10
		est, stop := holdUntilEstablished(t, tc.o)
		if est.Established != 0 || est.Failed != 10 || !strings.Contains(est.FirstError, tc.want) {
			t.Errorf("%s %s: report %+v, want 10 failures with %q", tc.o.Kind, tc.o.Path, est, tc.want)
		}
		stop()
	}
}

func TestHoldOptionsAndMaxHold(t *testing.T) {
	_, err := Hold(context.Background(), HoldOptions{Addr: "nohost", Kind: "sleepy", Conns: 0, Path: "x y"})
	for _, want := range []string{`address "nohost"`, `kind "sleepy"`, "connections 0", `path "x y"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad options: %v, want it to contain %q", err, want)
		}
	}
	srv := httptest.NewServer(&Backend{ID: "b"})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := Hold(ctx, HoldOptions{Addr: strings.TrimPrefix(srv.URL, "http://"), Kind: HoldIdle, Conns: 3, MaxHold: 100 * time.Millisecond})
	if err != nil || rep.Phase != "closed" || rep.Alive != 3 || ctx.Err() != nil {
		t.Errorf("Hold with MaxHold 100ms = %+v, %v; want it closed by itself with 3 alive", rep, err)
	}
}

func TestParseHoldReports(t *testing.T) {
	est := HoldReport{Phase: "established", Kind: HoldUpgrade, Wanted: 8000, Established: 7999, Failed: 1, EchoOK: 79, EchoFailed: 1,
		OpenMS: 1234, FirstError: "connection 17: echo: read: i/o timeout"}
	closed := est
	closed.Phase, closed.Alive, closed.Ended, closed.HeldMS = "closed", 7990, 9, 5000
	out := "noise\n" + FormatHoldReport(HoldReport{Phase: "established"}) + FormatHoldReport(est) + "more noise\n" + FormatHoldReport(closed)
	reps, err := ParseHoldReports(out)
	if err != nil {
		t.Fatal(err)
	}
	if reps["established"] != est || reps["closed"] != closed || len(reps) != 2 {
		t.Errorf("ParseHoldReports = %+v, want the last report of each phase", reps)
	}
	for _, bad := range []string{`ZKHOLD {"phase":"established",`, `ZKHOLD {"phase":"later"}`, `ZKHOLD {"phase":"closed","extra":1}`} {
		if _, err := ParseHoldReports(bad); err == nil {
			t.Errorf("ParseHoldReports(%q): no error", bad)
		}
	}
	if reps, err := ParseHoldReports("nothing yet"); err != nil || len(reps) != 0 {
		t.Errorf("no report lines: %v, %v", reps, err)
	}
}
