package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fzH2Timeout bounds an exchange of FuzzRoundTripH1; the ones that end
// take about a millisecond.
const fzH2Timeout = time.Second

// fzAnswerBackend answers every request, on a connection of its own, with
// the bytes of the current execution, then closes the connection.
type fzAnswerBackend struct {
	ln     net.Listener
	answer atomic.Pointer[[]byte]
	wg     sync.WaitGroup
}

func newFzAnswerBackend(f *testing.F) *fzAnswerBackend {
	b := &fzAnswerBackend{ln: fzListen(f)}
	b.wg.Go(func() {
		for {
			c, err := b.ln.Accept()
			if err != nil {
				return
			}
			b.wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(fzDeadline))
				br := bufio.NewReader(c)
				// The request head: both transports send bodiless GETs.
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				_, _ = c.Write(*b.answer.Load())
			})
		}
	})
	f.Cleanup(func() { _ = b.ln.Close(); b.wg.Wait() })
	return b
}

// FuzzRoundTripH1 sends a GET from an HTTP/2 client through a gateway that
// sends it with roundTripH1 and one that uses net/http's transport, to a
// backend answering with the input: the client must get the same answer
// from both (h2Exchange's description), but where roundTripH1 is stricter
// by the fast path's rules: a head fastResponse.parse refuses is 502 (as
// for HTTP/1.1 clients), and a body whose chunked framing or trailer lines
// break the fast path's rules (relayChunked's, which net/http reads more
// leniently) may be cut where net/http passes it on.
func FuzzRoundTripH1(f *testing.F) {
	fzQuietLog(f)
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5;e=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nto the end",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 301 Moved\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX5\r\nworld\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	} {
		f.Add([]byte(s))
	}
	be := newFzAnswerBackend(f)
	lean, std := newH2Side(f, false, be.ln.Addr().String()), newH2Side(f, true, be.ln.Addr().String())
	// A short bound: net/http's side never ends the stream of an answer
	// whose trailer section it cannot read (Go's HTTP/2 server and
	// ReverseProxy, stock ones too: the client waits for its own timeout),
	// and an execution must not take long enough to count as a hung worker.
	client := h2cClient(f)
	client.Timeout = fzH2Timeout
	fzSerial(f, 4096, func(t *testing.T, in []byte) {
		be.answer.Store(&in)
		ref := fzEmptyFraming(h2Exchange(t, client, http.MethodGet, "http://"+std.addr+"/f"))
		got := fzEmptyFraming(h2Exchange(t, client, http.MethodGet, "http://"+lean.addr+"/f"))
		if got == ref {
			return
		}
		if fzHeadRefused(in) && strings.HasPrefix(got, "HTTP/2.0 502\n") {
			return
		}
		if got == incomplete && fzBodyFramingBroken(in) {
			return
		}
		t.Errorf("the client got different answers for the backend's %s (- net/http's transport, + roundTripH1):\n%s",
			fzQuote(in), lineDiff(ref, got))
	})
}

// fzEmptyFraming sets aside the Content-Length: 0 of an empty answer: for
// one without a length (chunked, or ended by the close) ReverseProxy's
// first flush, from a timer, races the body's end (diffCase.emptyFraming).
func fzEmptyFraming(desc string) string {
	if !strings.Contains(desc, "\nbody \"\"\n") {
		return desc
	}
	return strings.Replace(desc, "  Content-Length: [\"0\"]\n", "", 1)
}

// fzFinalHead reads in's heads with the fast path's parser, informational
// ones passing (at most max1xx), and returns a reader at the final head's
// body and that head; refused when the parser refuses a head, finds none,
// or it is a 101.
func fzFinalHead(in []byte) (br *bufio.Reader, fr fastResponse, refused bool) {
	br = bufio.NewReaderSize(strings.NewReader(string(in)), connReadBufferSize)
	for range max1xx + 1 {
		n, err := readResponseHead(br)
		if err == nil {
			err = fr.parse(br, n)
		}
		if err != nil || fr.status == http.StatusSwitchingProtocols {
			return br, fr, true
		}
		_, _ = br.Discard(n)
		if fr.status >= 200 {
			return br, fr, false
		}
	}
	return br, fr, true
}

// fzHeadRefused reports whether the fast path's parser refuses a final
// answer's head in in (informational heads before it passing), or finds
// none.
func fzHeadRefused(in []byte) bool {
	_, _, refused := fzFinalHead(in)
	return refused
}

// fzBodyFramingBroken reports whether in is a chunked answer whose body
// breaks the fast path's chunked rules: a chunk-size line or trailer line
// relayChunked refuses, or data not followed by CRLF.
func fzBodyFramingBroken(in []byte) bool {
	br, fr, refused := fzFinalHead(in)
	if refused || !fr.chunked {
		return false
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err == bufio.ErrBufferFull
		}
		size, ok := chunkSize(line)
		if !ok {
			return true
		}
		if size == 0 {
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return err == bufio.ErrBufferFull
				}
				if len(line) < 2 || line[len(line)-2] != '\r' {
					return true
				}
				if len(line) == 2 {
					return false
				}
				if _, _, ok := splitField(line[:len(line)-2]); !ok {
					return true
				}
			}
		}
		if _, err := br.Discard(int(size)); err != nil {
			return false // cut short: both cut
		}
		crlf, err := br.Peek(2)
		if err != nil {
			return false
		}
		if crlf[0] != '\r' || crlf[1] != '\n' {
			return true
		}
		_, _ = br.Discard(2)
	}
}
