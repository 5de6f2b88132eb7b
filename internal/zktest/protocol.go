package zktest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// This file speaks just enough of the ZooKeeper wire protocol to open, take
// over and close sessions, plus the four-letter-word admin commands.
//
// Every client frame is a 4-byte big-endian length followed by the body.
// ConnectRequest:  protocolVersion int32, lastZxidSeen int64, timeOut int32,
//                  sessionId int64, passwd (int32 length + bytes), readOnly bool.
// ConnectResponse: protocolVersion int32, timeOut int32, sessionId int64,
//                  passwd (int32 length + bytes), readOnly bool (optional).
// Request header:  xid int32, type int32.  Reply header: xid int32, zxid int64, err int32.

const (
	opCloseSession = -11
	closeXid       = 1
	ioTimeout      = 2 * time.Second
	// modeTimeout is short because of the start-up bug described at Mode:
	// a probe that hits it costs this much.
	modeTimeout = 500 * time.Millisecond
	maxFrame    = 1 << 20
)

// FourLetterWord sends a four-letter-word command (ruok, srvr, mntr: the ones
// the servers here allow) to addr and returns the reply, which ends when the
// server closes the connection.
func FourLetterWord(addr, cmd string) (string, error) {
	return fourLetterWord(addr, cmd, ioTimeout)
}

func fourLetterWord(addr, cmd string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", fmt.Errorf("%s to %s: %w", cmd, addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", fmt.Errorf("%s to %s: %w", cmd, addr, err)
	}
	b, err := io.ReadAll(io.LimitReader(c, 1<<20))
	if err != nil {
		return string(b), fmt.Errorf("%s to %s: %w", cmd, addr, err)
	}
	return string(b), nil
}

// Mode returns the server's role from the "Mode:" line of `srvr`:
// "standalone", "leader", "follower" or "observer". A server that answers but
// does not serve yet (no quorum) has no such line, which is an error.
//
// ZooKeeper 3.8 answers a command that arrives in the first milliseconds of
// its start but then fails to close the connection (a NullPointerException in
// its log); a reply that holds a Mode line counts even when the connection
// then times out.
func Mode(addr string) (string, error) {
	out, err := fourLetterWord(addr, "srvr", modeTimeout)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
			return strings.TrimSpace(m), nil
		}
	}
	if err != nil {
		return "", err
	}
	return "", fmt.Errorf("srvr on %s has no Mode line: %q", addr, strings.TrimSpace(out))
}

// errSessionInvalid is the server's answer to a connect for a session it does
// not know: expired, closed, or a wrong password.
var errSessionInvalid = errors.New("session not valid on server (expired, closed or wrong password)")

type connectResponse struct {
	timeout   int32
	sessionID int64
	password  []byte
}

func appendConnectRequest(buf []byte, timeout time.Duration, sessionID int64, password []byte) []byte {
	body := make([]byte, 0, 45+len(password))
	body = binary.BigEndian.AppendUint32(body, 0) // protocolVersion
	body = binary.BigEndian.AppendUint64(body, 0) // lastZxidSeen
	body = binary.BigEndian.AppendUint32(body, uint32(timeout/time.Millisecond))
	body = binary.BigEndian.AppendUint64(body, uint64(sessionID))
	body = binary.BigEndian.AppendUint32(body, uint32(len(password)))
	body = append(body, password...)
	body = append(body, 0) // readOnly = false
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(body)))
	return append(buf, body...)
}

func appendCloseRequest(buf []byte) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 8)
	buf = binary.BigEndian.AppendUint32(buf, closeXid)
	op := int32(opCloseSession)
	return binary.BigEndian.AppendUint32(buf, uint32(op))
}

// parseConnectResponse decodes a ConnectResponse body (without its length).
func parseConnectResponse(b []byte) (connectResponse, error) {
	if len(b) < 20 {
		return connectResponse{}, fmt.Errorf("connect response of %d bytes, want at least 20", len(b))
	}
	r := connectResponse{
		timeout:   int32(binary.BigEndian.Uint32(b[4:8])),
		sessionID: int64(binary.BigEndian.Uint64(b[8:16])),
	}
	n := int32(binary.BigEndian.Uint32(b[16:20]))
	if n < 0 {
		n = 0
	}
	if int(n) > len(b)-20 {
		return connectResponse{}, fmt.Errorf("connect response password of %d bytes overruns the %d-byte frame", n, len(b))
	}
	r.password = append([]byte(nil), b[20:20+n]...)
	return r, nil
}

func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxFrame {
		return nil, fmt.Errorf("frame of %d bytes exceeds %d", size, maxFrame)
	}
	b := make([]byte, size)
	_, err := io.ReadFull(r, b)
	return b, err
}

// openSession connects to addr as a client would, taking over sessionID when
// it is not zero, and returns the live connection with the server's answer.
// When more is given it is sent right behind the connect request, in the same
// write, so nothing can come between the two.
func openSession(addr string, timeout time.Duration, sessionID int64, password []byte, more []byte) (net.Conn, connectResponse, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, connectResponse{}, err
	}
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	req := appendConnectRequest(nil, timeout, sessionID, password)
	if _, err := c.Write(append(req, more...)); err != nil {
		c.Close()
		return nil, connectResponse{}, fmt.Errorf("send connect request: %w", err)
	}
	frame, err := readFrame(c)
	if err != nil {
		c.Close()
		return nil, connectResponse{}, fmt.Errorf("read connect response: %w", err)
	}
	resp, err := parseConnectResponse(frame)
	if err != nil {
		c.Close()
		return nil, connectResponse{}, err
	}
	if resp.sessionID == 0 || resp.timeout <= 0 {
		c.Close()
		return nil, resp, errSessionInvalid
	}
	return c, resp, nil
}

// awaitCloseReply reads replies on c until the one to the pipelined
// closeSession request, skipping watch notifications and pings, and returns
// the server's error code for it.
func awaitCloseReply(c net.Conn) error {
	for {
		frame, err := readFrame(c)
		if err != nil {
			return fmt.Errorf("read closeSession reply: %w", err)
		}
		if len(frame) < 16 {
			return fmt.Errorf("reply of %d bytes, want at least 16", len(frame))
		}
		if int32(binary.BigEndian.Uint32(frame[0:4])) != closeXid {
			continue
		}
		if code := int32(binary.BigEndian.Uint32(frame[12:16])); code != 0 {
			return fmt.Errorf("closeSession failed with ZooKeeper error code %d", code)
		}
		return nil
	}
}

// checkSession opens a brand-new session on addr and closes it: proof that
// the server (or ensemble) commits session transactions.
func checkSession(addr string) error {
	c, _, err := openSession(addr, 30*time.Second, 0, nil, appendCloseRequest(nil))
	if err != nil {
		return fmt.Errorf("open session on %s: %w", addr, err)
	}
	defer c.Close()
	if err := awaitCloseReply(c); err != nil {
		return fmt.Errorf("close session on %s: %w", addr, err)
	}
	return nil
}

// sniffer watches the server-to-client byte stream of one connection and
// reports the session of its first frame, the ConnectResponse, to onSession.
type sniffer struct {
	buf       []byte
	done      bool
	onSession func(sessionID int64, password []byte)
}

// feed takes the next bytes the server sent; it never modifies them.
func (s *sniffer) feed(p []byte) {
	if s.done {
		return
	}
	s.buf = append(s.buf, p...)
	if len(s.buf) < 4 {
		return
	}
	size := int(binary.BigEndian.Uint32(s.buf[:4]))
	if size > 4096 {
		s.done, s.buf = true, nil // not a connect response
		return
	}
	if len(s.buf) < 4+size {
		return
	}
	if r, err := parseConnectResponse(s.buf[4 : 4+size]); err == nil && r.sessionID != 0 && r.timeout > 0 {
		s.onSession(r.sessionID, r.password)
	}
	s.done, s.buf = true, nil
}
