//go:build linux

package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzLoopResponse is FuzzParseResponse for a request a loop serves: the
// fast side is a Server with one loop, and each execution asks on one
// keep-alive connection first /w (answered 2 bytes, served by the
// connection's goroutine, which then moves it into the loop), then /a,
// which the loop reads, whose answer is the input, then /b (on the same
// connection when /a's answer left it open, else a new one), whose answer
// must be the backend's marker. The loop must pass /a's answer on as
// net/http and ReverseProxy do (or refuse it, 502), whichever way it goes:
// inline, escalated or handed off; and nothing of it may answer /b, which
// is what an answer whose end the loop misjudged would do.
func FuzzLoopResponse(f *testing.F) {
	for _, s := range fzResponseSeeds() {
		f.Add([]byte(s))
	}
	// Bodies the relay reads past its buffer, straight into a larger one
	// and exactly to their end, with bytes behind them: the next request
	// must not get those.
	for _, n := range []int{5000, 20000, 65000} {
		body := strings.Repeat("x", n)
		f.Add([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%sHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!", n, body)))
	}
	fzQuietLog(f)
	loop := fzServerGateway(f, ServerConfig{Loops: 1}, nil)
	ref := fzRefGateway(f)
	fzSerial(f, 64<<10, func(t *testing.T, script []byte) {
		closeAfter := fzNeedsEOF(script)
		var loopA, loopB, refA, refB fzAnswer
		before := loop.srv.LoopStats()
		var wg sync.WaitGroup
		for _, side := range []struct {
			g    *fzGateway
			a, b *fzAnswer
		}{{loop, &loopA, &loopB}, {ref, &refA, &refB}} {
			var n atomic.Int32
			b, err := newFzBackend(func(bw *bufio.Writer, _ *rawMessage) bool {
				switch n.Add(1) {
				case 1:
					bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					return true
				case 2:
					bw.Write(script)
					return !closeAfter
				}
				bw.WriteString(fzMarker)
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := side.g.setBackend(b.addr()); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				*side.a, *side.b = fzKeepAlive(side.g.addr, side.g == ref, side.g.closeIdle)
				b.settle()
				side.g.closeIdle()
				b.close()
			})
		}
		wg.Wait()

		after := loop.srv.LoopStats()
		var problems []string
		if after == before {
			problems = append(problems, "the loop did not take /a (served, handed off or escalated)")
		}
		fzCompareAnswers(t, script, "the loop", "/b", loopA, loopB, refA, refB, problems...)
	})
}

// fzKeepAlive asks addr for /w, /a and /b on one connection (/b on a new one
// when /a's answer left it closed or unreadable) and returns the answers to
// /a and /b. A reference gateway (ref) has its idle upstream connections
// closed before /b (see FuzzParseResponse).
func fzKeepAlive(addr string, ref bool, closeIdle func()) (a, b fzAnswer) {
	c, err := net.DialTimeout("tcp", addr, fzDeadline)
	if err != nil {
		return fzAnswer{text: "dial: " + err.Error()}, fzAnswer{}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(fzDeadline))
	br := bufio.NewReader(c)
	get := func(target string) (fzAnswer, *rawMessage) {
		if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: example.net\r\n\r\n"); err != nil {
			return fzAnswer{text: "write: " + connErr(err)}, nil
		}
		return fzRead(br)
	}
	if w, _ := get("/w"); w.status != 200 || string(w.body) != "ok" {
		return fzAnswer{text: "warm-up: " + w.text}, fzAnswer{}
	}
	a, m := get("/a")
	if ref {
		closeIdle()
	}
	if a.cut || a.stalled || m == nil || fzHasToken(m.values("Connection"), "close") || a.status/100 == 1 {
		return a, fzGet(addr, "/b")
	}
	b, _ = get("/b")
	return a, b
}
