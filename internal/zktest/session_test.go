package zktest

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// createEphemeral makes an ephemeral node with conn and checks that observer
// sees it.
func createEphemeral(t *testing.T, conn, observer *zk.Conn, path string) {
	t.Helper()
	if _, err := conn.Create(path, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
	if ok, _, err := observer.Exists(path); err != nil || !ok {
		t.Fatalf("exists %s = %v, %v; want true", path, ok, err)
	}
}

// checkUntouched verifies that a bystander kept its session throughout.
func checkUntouched(t *testing.T, conn *zk.Conn, ev *Events, session int64) {
	t.Helper()
	if ev.Seen(zk.StateExpired) {
		t.Errorf("bystander saw StateExpired; states %v", ev.States())
	}
	if conn.SessionID() != session {
		t.Errorf("bystander session 0x%x, want unchanged 0x%x", conn.SessionID(), session)
	}
	if _, _, err := conn.Exists("/"); err != nil {
		t.Errorf("bystander exists /: %v", err)
	}
}

func TestExpireConn(t *testing.T) {
	t.Parallel()
	s := Start(t)
	a, aev := ConnectEvents(t, SessionTimeout, s.Addr())
	b, bev := ConnectEvents(t, SessionTimeout, s.Addr())
	aSession, bSession := a.SessionID(), b.SessionID()
	createEphemeral(t, a, b, "/a")

	ExpireConn(t, s.Addr(), a)
	// Expiry is complete on return: no waiting for the node to vanish.
	if ok, _, err := b.Exists("/a"); err != nil || ok {
		t.Fatalf("exists /a right after ExpireConn = %v, %v; want false", ok, err)
	}
	aev.Await(t, zk.StateExpired, 20*time.Second)
	aev.Await(t, zk.StateHasSession, 20*time.Second)
	if a.SessionID() == aSession {
		t.Errorf("expired client kept session 0x%x", aSession)
	}
	checkUntouched(t, b, bev, bSession)

	// Expiring it again, or any unknown session, is reported as such.
	if err := expireSession(s.Addr(), aSession, []byte("wrong-password-0")); !errors.Is(err, errSessionInvalid) {
		t.Errorf("expire a dead session = %v, want errSessionInvalid", err)
	}
}

// Until the connect response is read, no read waits longer than the limit,
// whatever deadline the client sets; afterwards the client's deadlines hold.
func TestSniffConnCapsHandshakeWait(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	c := &sniffConn{Conn: client, limit: 50 * time.Millisecond, sn: sniffer{onSession: func(int64, []byte) {}}}

	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	var nerr net.Error
	if _, err := c.Read(make([]byte, 4)); !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Fatalf("read of a connect response that never comes = %v, want a timeout", err)
	}

	frame := connectResponseFrame(4000, 9, []byte("0123456789abcdef"))
	go func() { _, _ = server.Write(frame) }()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, len(frame))); err != nil {
		t.Fatalf("read connect response: %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("read after the handshake ended early (%v): the deadline was capped", err)
	case <-time.After(200 * time.Millisecond):
	}
	_, _ = server.Write([]byte{1})
	if err := <-done; err != nil {
		t.Fatalf("read after the handshake: %v", err)
	}
}
