package benchkit

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"
)

// websocketGUID is the constant of RFC 6455 §1.3 that a server appends to
// the client's Sec-WebSocket-Key before hashing it into
// Sec-WebSocket-Accept.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// WebSocketAccept returns the Sec-WebSocket-Accept value that answers key
// (RFC 6455 §4.2.2).
func WebSocketAccept(key string) string {
	sum := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// wantsWebSocket reports whether r asks for a WebSocket upgrade: Upgrade
// names websocket and Connection names upgrade (tokens, any case).
func wantsWebSocket(r *http.Request) bool {
	return hasToken(r.Header["Upgrade"], "websocket") && hasToken(r.Header["Connection"], "upgrade")
}

// hasToken reports whether a comma-separated header value of vs lists
// token, ignoring case and surrounding spaces.
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// serveUpgrade answers a WebSocket handshake with 101 and then echoes every
// byte the client sends (frames are not parsed: the proxies in front of the
// backend relay bytes, which is what the connection benchmark measures). A
// handshake without a key or with a version other than 13 gets 400.
//
// A held connection costs the backend a goroutine with a small stack and
// its socket: the goroutine waits for readability without a buffer and
// takes one from a pool only while bytes arrive, so that 8,000 held
// connections fit in a few tens of MiB.
func serveUpgrade(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if key == "" || r.Header.Get("Sec-WebSocket-Version") != "13" {
		http.Error(w, "websocket handshake needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13", http.StatusBadRequest)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot hijack the connection", http.StatusInternalServerError)
		return
	}
	_ = c.SetDeadline(time.Time{}) // no read or write deadline of net/http survives
	head := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		WebSocketAccept(key) + "\r\n\r\n"
	if _, err := c.Write([]byte(head)); err != nil {
		_ = c.Close()
		return
	}
	// Bytes the client sent right after its handshake are in net/http's
	// reader: echo them before the reader is dropped.
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		if _, err := c.Write(p); err != nil {
			_ = c.Close()
			return
		}
	}
	go echo(c) // a fresh goroutine: the handler's grown stack is released
}

// echoBufs holds the buffers echo reads into while bytes flow.
var echoBufs = sync.Pool{New: func() any { b := make([]byte, 2048); return &b }}

// echo writes back what c receives until c ends, then closes it.
func echo(c net.Conn) {
	defer c.Close()
	var rc syscall.RawConn
	if sc, ok := c.(syscall.Conn); ok {
		rc, _ = sc.SyscallConn()
	}
	for {
		if rc != nil {
			if err := waitReadable(rc); err != nil {
				return
			}
		}
		buf := echoBufs.Get().(*[]byte)
		n, err := c.Read(*buf)
		if n > 0 {
			_, err = c.Write((*buf)[:n])
		}
		echoBufs.Put(buf)
		if err != nil {
			return
		}
	}
}

// waitReadable blocks in the runtime's poller until rc has bytes or an end
// to read, without a read buffer.
func waitReadable(rc syscall.RawConn) error {
	var peekErr error
	err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if errors.Is(err, syscall.EAGAIN) {
			return false // not readable yet: park in the poller
		}
		if err != nil && !errors.Is(err, syscall.EINTR) {
			peekErr = err
		}
		return true
	})
	if err != nil {
		return err
	}
	return peekErr
}
