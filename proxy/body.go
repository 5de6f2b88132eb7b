package proxy

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/zkgate/zkgate/balancer"
)

var (
	errBodyRetired       = errors.New("proxy: request body read by an abandoned attempt")
	errBodyNotReplayable = errors.New("proxy: request body cannot be replayed")
)

// requestBody is an inbound request body shared by the attempts of one
// request. Each attempt reads it through its own view; opening a view
// retires the previous one, so that a transport goroutine still writing an
// abandoned attempt cannot take bytes from the next. The bytes read are kept
// up to a limit so that a later view can replay them; past the limit the
// body can no longer be replayed. Reading the source is serialised by readMu;
// the counters are under mu, which is never held during I/O, so that the
// retry decision does not wait for a slow client.
type requestBody struct {
	src  io.Reader // nil: no body
	keep int64     // replay limit; 0 keeps nothing
	gen  atomic.Uint32

	readMu sync.Mutex // serialises src reads and kept
	kept   []byte
	first  bodyView // the first attempt's view, so that it allocates nothing

	mu       sync.Mutex
	read     int64 // bytes taken from src
	overflow bool  // read exceeded keep: kept is no longer complete
	err      error // first error from src other than io.EOF
}

// init prepares b to serve src, keeping up to keep bytes for replays.
func (b *requestBody) init(src io.Reader, keep int64) {
	b.src = src
	b.keep = keep
}

// view returns the body for a new attempt and retires the previous views.
func (b *requestBody) view() io.ReadCloser {
	g := b.gen.Add(1)
	if g == 1 {
		b.first = bodyView{b: b, gen: g}
		return &b.first
	}
	return &bodyView{b: b, gen: g}
}

// replayable reports whether a new view would deliver the whole body: no
// byte was lost to an attempt beyond the replay buffer.
func (b *requestBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err == nil && (b.read == 0 || !b.overflow)
}

// readErr returns the error, other than io.EOF, that reading the client's
// body failed with (the client's fault, not the endpoint's), or nil.
func (b *requestBody) readErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// getBody is http.Request.GetBody for the attempts: it lets the transport
// resend a request on a fresh connection when a kept-alive one was found
// closed before anything was written.
func (b *requestBody) getBody() (io.ReadCloser, error) {
	if !b.replayable() {
		return nil, errBodyNotReplayable
	}
	return b.view(), nil
}

// bodyView is one attempt's reader of a requestBody.
type bodyView struct {
	b   *requestBody
	gen uint32
	pos int64
}

func (v *bodyView) Read(p []byte) (int, error) {
	b := v.b
	b.readMu.Lock()
	defer b.readMu.Unlock()
	if b.gen.Load() != v.gen {
		return 0, errBodyRetired
	}
	if v.pos < int64(len(b.kept)) {
		n := copy(p, b.kept[v.pos:])
		v.pos += int64(n)
		return n, nil
	}
	b.mu.Lock()
	read, err := b.read, b.err
	b.mu.Unlock()
	switch {
	case v.pos < read:
		return 0, errBodyNotReplayable
	case err != nil:
		return 0, err
	}
	n, err := b.src.Read(p)
	v.pos += int64(n)
	b.mu.Lock()
	b.read += int64(n)
	if !b.overflow && n > 0 {
		if int64(len(b.kept)+n) <= b.keep {
			b.kept = append(b.kept, p[:n]...)
		} else {
			b.overflow = true
			b.kept = nil
		}
	}
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
	return n, err
}

// Close does nothing: the server closes the inbound body when the handler
// returns, and an attempt must not close it for the next one.
func (v *bodyView) Close() error { return nil }

// doneBody calls the balancer's Done for an endpoint when the response body
// from it is closed, that is when ReverseProxy has copied it to the client.
type doneBody struct {
	io.ReadCloser
	track balancer.Tracker
	ep    balancer.Endpoint
	done  atomic.Bool
}

func (d *doneBody) Close() error {
	err := d.ReadCloser.Close()
	if d.done.CompareAndSwap(false, true) {
		d.track.Done(d.ep)
	}
	return err
}

// doneRWBody is a doneBody for a 101 Switching Protocols response, whose
// body is the connection: ReverseProxy writes to it.
type doneRWBody struct {
	doneBody
	w io.Writer
}

func (d *doneRWBody) Write(p []byte) (int, error) { return d.w.Write(p) }

// trackBody wraps body so that Done(ep) is called when it is closed.
func trackBody(body io.ReadCloser, t balancer.Tracker, ep balancer.Endpoint) io.ReadCloser {
	if w, ok := body.(io.ReadWriteCloser); ok {
		return &doneRWBody{doneBody: doneBody{ReadCloser: body, track: t, ep: ep}, w: w}
	}
	return &doneBody{ReadCloser: body, track: t, ep: ep}
}
