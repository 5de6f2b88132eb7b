package zktest

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// connectResponseFrame builds a ConnectResponse frame as a server sends it.
func connectResponseFrame(timeout int32, sessionID int64, password []byte) []byte {
	var body []byte
	body = binary.BigEndian.AppendUint32(body, 0)
	body = binary.BigEndian.AppendUint32(body, uint32(timeout))
	body = binary.BigEndian.AppendUint64(body, uint64(sessionID))
	body = binary.BigEndian.AppendUint32(body, uint32(len(password)))
	body = append(body, password...)
	body = append(body, 0)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestParseConnectResponse(t *testing.T) {
	pw := []byte("0123456789abcdef")
	frame := connectResponseFrame(4000, 0x1234_5678_9abc, pw)
	r, err := parseConnectResponse(frame[4:])
	if err != nil {
		t.Fatal(err)
	}
	if r.timeout != 4000 || r.sessionID != 0x1234_5678_9abc || !bytes.Equal(r.password, pw) {
		t.Errorf("parsed %+v, want timeout 4000, session 0x123456789abc, password %q", r, pw)
	}
	if _, err := parseConnectResponse(frame[4:12]); err == nil {
		t.Error("parsed a truncated response without error")
	}
	overrun := bytes.Clone(frame[4:])
	binary.BigEndian.PutUint32(overrun[16:20], 1000)
	if _, err := parseConnectResponse(overrun); err == nil {
		t.Error("parsed a response whose password overruns the frame")
	}
}

func TestConnectRequestLayout(t *testing.T) {
	pw := []byte("secret")
	req := appendConnectRequest(nil, 1500*time.Millisecond, 42, pw)
	size := binary.BigEndian.Uint32(req[:4])
	if int(size) != len(req)-4 || size != 4+8+4+8+4+uint32(len(pw))+1 {
		t.Fatalf("frame length %d for %d bytes", size, len(req))
	}
	body := req[4:]
	if got := binary.BigEndian.Uint32(body[12:16]); got != 1500 {
		t.Errorf("timeout field = %d, want 1500", got)
	}
	if got := binary.BigEndian.Uint64(body[16:24]); got != 42 {
		t.Errorf("session field = %d, want 42", got)
	}
	if got := body[28 : 28+len(pw)]; !bytes.Equal(got, pw) {
		t.Errorf("password field = %q, want %q", got, pw)
	}
	closeReq := appendCloseRequest(nil)
	want := []byte{0, 0, 0, 8, 0, 0, 0, closeXid, 0xff, 0xff, 0xff, 0xf5} // type -11
	if !bytes.Equal(closeReq, want) {
		t.Errorf("close request = % x, want % x", closeReq, want)
	}
}

// The sniffer must find the session however the stream is split into reads.
func TestSnifferAnySplit(t *testing.T) {
	pw := []byte("0123456789abcdef")
	stream := append(connectResponseFrame(4000, 77, pw), []byte("following frames")...)
	for _, chunk := range []int{1, 3, 7, len(stream)} {
		var gotID int64
		var gotPW []byte
		calls := 0
		sn := sniffer{onSession: func(id int64, p []byte) { gotID, gotPW = id, p; calls++ }}
		for i := 0; i < len(stream); i += chunk {
			sn.feed(stream[i:min(i+chunk, len(stream))])
		}
		if calls != 1 || gotID != 77 || !bytes.Equal(gotPW, pw) {
			t.Errorf("chunks of %d: %d calls, session %d password %q; want 1 call, 77, %q", chunk, calls, gotID, gotPW, pw)
		}
	}
}

func TestSnifferIgnoresInvalidSession(t *testing.T) {
	calls := 0
	sn := sniffer{onSession: func(int64, []byte) { calls++ }}
	sn.feed(connectResponseFrame(0, 0, make([]byte, 16))) // "session expired"
	sn.feed(connectResponseFrame(4000, 5, nil))           // later frames are not looked at
	if calls != 0 {
		t.Errorf("onSession called %d times for an expired-session answer", calls)
	}
}

// fakeServer answers one connection on a loopback port with reply, then
// closes it unless hang is set.
func fakeServer(t *testing.T, reply string, hang bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4)
		_, _ = io.ReadFull(c, buf)
		_, _ = io.WriteString(c, reply)
		if hang {
			_, _ = io.Copy(io.Discard, c) // until the client gives up
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestMode(t *testing.T) {
	srvr := "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nZxid: 0x0\nMode: follower\nNode count: 5\n"
	if mode, err := Mode(fakeServer(t, srvr, false)); err != nil || mode != "follower" {
		t.Errorf("Mode = %q, %v; want follower", mode, err)
	}
	// A reply left open by the server still counts once it has the Mode line.
	if mode, err := Mode(fakeServer(t, srvr, true)); err != nil || mode != "follower" {
		t.Errorf("Mode with unclosed reply = %q, %v; want follower", mode, err)
	}
	notServing := "This ZooKeeper instance is not currently serving requests\n"
	if _, err := Mode(fakeServer(t, notServing, false)); err == nil || !strings.Contains(err.Error(), "no Mode line") {
		t.Errorf("Mode of a server not serving = %v, want a no-Mode-line error", err)
	}
}

func TestAwaitCloseReplySkipsNotifications(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		defer server.Close()
		reply := func(xid int32, code int32) {
			var b []byte
			b = binary.BigEndian.AppendUint32(b, 16)
			b = binary.BigEndian.AppendUint32(b, uint32(xid))
			b = binary.BigEndian.AppendUint64(b, 9)
			b = binary.BigEndian.AppendUint32(b, uint32(code))
			_, _ = server.Write(b)
		}
		reply(-1, 0) // watch notification
		reply(-2, 0) // ping
		reply(closeXid, 0)
	}()
	if err := awaitCloseReply(client); err != nil {
		t.Errorf("awaitCloseReply = %v, want nil", err)
	}

	client2, server2 := net.Pipe()
	defer client2.Close()
	go func() {
		defer server2.Close()
		var b []byte
		b = binary.BigEndian.AppendUint32(b, 16)
		b = binary.BigEndian.AppendUint32(b, closeXid)
		b = binary.BigEndian.AppendUint64(b, 9)
		b = binary.BigEndian.AppendUint32(b, uint32(0xffff_ff90)) // -112, session expired
		_, _ = server2.Write(b)
	}()
	if err := awaitCloseReply(client2); err == nil || !strings.Contains(err.Error(), "-112") {
		t.Errorf("awaitCloseReply on an error reply = %v, want the error code", err)
	}
}
