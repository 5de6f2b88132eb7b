package proxy

import (
	"io"
	"net"
	"strconv"
)

// clientWriter buffers what the fast path sends a client, like a
// bufio.Writer of clientBufferSize, but a large piece that does not fit
// goes out together with what is buffered in one writev, not as a flush
// and a write: a 16 KiB body costs two system calls instead of three.
type clientWriter struct {
	nc   net.Conn
	sock *sockIO // when not nil, the writes go through it rather than nc
	buf  []byte
	err  error
	vec  [2][]byte
	bufs net.Buffers // vec as a net.Buffers, kept here so that writev allocates nothing
}

func newClientWriter(nc net.Conn) *clientWriter {
	return &clientWriter{nc: nc, buf: make([]byte, 0, clientBufferSize)}
}

// reset empties w for a new connection nc, written through sock when it
// is not nil.
func (w *clientWriter) reset(nc net.Conn, sock *sockIO) {
	w.nc, w.sock, w.buf, w.err = nc, sock, w.buf[:0], nil
	w.vec = [2][]byte{}
	w.bufs = nil
}

// Write buffers or writes p. Its error is sticky, as bufio.Writer's.
func (w *clientWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if len(w.buf)+len(p) <= cap(w.buf) {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if len(p) < cap(w.buf)/2 {
		if err := w.Flush(); err != nil {
			return 0, err
		}
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	var err error
	if w.sock != nil {
		_, err = w.sock.writeTwo(w.buf, p)
	} else {
		w.vec[0], w.vec[1] = w.buf, p
		w.bufs = w.vec[:]
		_, err = w.bufs.WriteTo(w.nc)
		w.vec[0], w.vec[1] = nil, nil
	}
	w.buf = w.buf[:0]
	if err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

// WriteString is Write for a string; small strings are copied into the
// buffer without conversion.
func (w *clientWriter) WriteString(s string) (int, error) {
	if w.err == nil && len(w.buf)+len(s) <= cap(w.buf) {
		w.buf = append(w.buf, s...)
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// WriteByte buffers one byte.
func (w *clientWriter) WriteByte(b byte) error {
	if len(w.buf) == cap(w.buf) {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if w.err != nil {
		return w.err
	}
	w.buf = append(w.buf, b)
	return nil
}

// Flush writes what is buffered.
func (w *clientWriter) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	var n int
	var err error
	if w.sock != nil {
		n, err = w.sock.Write(w.buf)
	} else {
		n, err = w.nc.Write(w.buf)
	}
	if err == nil && n < len(w.buf) {
		err = io.ErrShortWrite
	}
	w.buf = w.buf[:0]
	if err != nil {
		w.err = err
	}
	return err
}

// writeInt writes n in base straight into the buffer (a scratch array
// passed to Write would escape to the heap).
func (w *clientWriter) writeInt(n int64, base int) {
	if cap(w.buf)-len(w.buf) < 20 && w.Flush() != nil {
		return
	}
	if w.err == nil {
		w.buf = strconv.AppendInt(w.buf, n, base)
	}
}

// writeBody writes b, framed as one chunk when chunked.
func (w *clientWriter) writeBody(b []byte, chunked bool) error {
	if !chunked {
		_, err := w.Write(b)
		return err
	}
	w.writeInt(int64(len(b)), 16)
	_, _ = w.WriteString("\r\n")
	_, _ = w.Write(b)
	_, err := w.WriteString("\r\n")
	return err
}

// statusLine writes "HTTP/1.1 code reason", or HTTP/1.0 with http10.
func (w *clientWriter) statusLine(http10 bool, code int, reason string) {
	_, _ = w.WriteString(statusProto(http10))
	w.writeInt(int64(code), 10)
	_ = w.WriteByte(' ')
	_, _ = w.WriteString(reason)
	_, _ = w.WriteString("\r\n")
}

// line writes an upstream response's field line as it came (parse
// checked it).
func (w *clientWriter) line(l *hdrLine) {
	_, _ = w.Write(l.name)
	_, _ = w.WriteString(": ")
	_, _ = w.Write(l.value)
	_, _ = w.WriteString("\r\n")
}

// field writes one header line; CR and LF in the value become spaces.
func (w *clientWriter) field(name, value string) {
	_, _ = w.WriteString(name)
	_, _ = w.WriteString(": ")
	for i := 0; i < len(value); i++ {
		if ch := value[i]; ch == '\r' || ch == '\n' {
			_ = w.WriteByte(' ')
		} else {
			_ = w.WriteByte(ch)
		}
	}
	_, _ = w.WriteString("\r\n")
}

// statusProto returns the version that starts a status line: net/http
// answers an HTTP/1.0 request as HTTP/1.0.
func statusProto(http10 bool) string {
	if http10 {
		return "HTTP/1.0 "
	}
	return "HTTP/1.1 "
}
