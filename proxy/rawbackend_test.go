package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recBackend is a loopback endpoint for the desync tests: it records every
// byte each of its connections receives, parses the requests with
// net/http's reader and answers each with whatever bytes its script writes
// (stray bytes after a response included). It counts the connections it
// accepted and those still open.
type recBackend struct {
	ln       net.Listener
	script   rawScript
	accepted atomic.Int64
	open     atomic.Int64

	mu    sync.Mutex
	recv  []*bytes.Buffer // per connection, in accept order
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// rawScript answers r (its body read into body), request number req of
// connection number conn (both counted from 0), by writing to c. It
// reports whether the backend keeps the connection open.
type rawScript func(conn, req int, r *http.Request, body []byte, c net.Conn) bool

// cannedScript answers every request with raw and keeps the connection.
func cannedScript(raw string) rawScript {
	return func(_, _ int, _ *http.Request, _ []byte, c net.Conn) bool {
		_, err := io.WriteString(c, raw)
		return err == nil
	}
}

// freshAnswer is a backend answer unique to target: "fresh:" and target.
func freshAnswer(target string) string {
	body := "fresh:" + target
	return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

func newRecBackend(t *testing.T, script rawScript) *recBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &recBackend{ln: ln, script: script, conns: make(map[net.Conn]bool)}
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			b.open.Add(1)
			b.mu.Lock()
			n := len(b.recv)
			rec := &bytes.Buffer{}
			b.recv = append(b.recv, rec)
			b.conns[c] = true
			b.mu.Unlock()
			b.wg.Go(func() {
				defer func() {
					c.Close()
					b.mu.Lock()
					delete(b.conns, c)
					b.mu.Unlock()
					b.open.Add(-1)
				}()
				b.serve(n, c, rec)
			})
		}
	})
	return b
}

func (b *recBackend) addr() string { return b.ln.Addr().String() }

// recording writes what a connection brings into its record.
type recording struct {
	b   *recBackend
	rec *bytes.Buffer
}

func (r recording) Write(p []byte) (int, error) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	return r.rec.Write(p)
}

func (b *recBackend) serve(n int, c net.Conn, rec *bytes.Buffer) {
	_ = c.SetDeadline(time.Now().Add(diffDeadline))
	br := bufio.NewReader(io.TeeReader(c, recording{b, rec}))
	for i := 0; ; i++ {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if !b.script(n, i, r, body, c) {
			return
		}
	}
}

// seenRequest is one request as the backend received it, parsed again from
// the recorded bytes.
type seenRequest struct {
	conn int
	req  *http.Request
	body []byte
}

func (s seenRequest) String() string {
	return fmt.Sprintf("%s %s body %s", s.req.Method, s.req.RequestURI, formatBody(s.body))
}

// requests parses the bytes every connection received, in accept order,
// into requests; bytes that do not parse are an error naming them.
func (b *recBackend) requests() ([]seenRequest, error) {
	b.mu.Lock()
	recs := make([][]byte, len(b.recv))
	for i, r := range b.recv {
		recs[i] = bytes.Clone(r.Bytes())
	}
	b.mu.Unlock()
	var seen []seenRequest
	for i, raw := range recs {
		br := bufio.NewReader(bytes.NewReader(raw))
		for {
			if _, err := br.Peek(1); err == io.EOF {
				break
			}
			r, err := http.ReadRequest(br)
			if err != nil {
				return seen, fmt.Errorf("connection %d: unparseable bytes after %d requests: %v", i, len(seen), err)
			}
			body, err := io.ReadAll(r.Body)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				return seen, fmt.Errorf("connection %d: %s %s: body: %v", i, r.Method, r.RequestURI, err)
			}
			seen = append(seen, seenRequest{conn: i, req: r, body: body})
		}
	}
	return seen, nil
}

// requestLines lists the requests the backend saw as "METHOD target body
// ...", with an entry for unparseable bytes.
func (b *recBackend) requestLines() []string {
	seen, err := b.requests()
	lines := make([]string, 0, len(seen)+1)
	for _, s := range seen {
		lines = append(lines, s.String())
	}
	if err != nil {
		lines = append(lines, "error: "+err.Error())
	}
	return lines
}

// recorded returns every byte the backend received, all connections.
func (b *recBackend) recorded() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	var all []byte
	for _, r := range b.recv {
		all = append(all, r.Bytes()...)
	}
	return all
}
