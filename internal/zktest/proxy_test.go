package zktest

import (
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestProxyCutExpiresSession(t *testing.T) {
	t.Parallel()
	s := Start(t)
	p := NewProxy(t, s.Addr())
	a, aev := ConnectEvents(t, 1500*time.Millisecond, p.Addr())
	b, bev := ConnectEvents(t, SessionTimeout, s.Addr())
	aSession, bSession := a.SessionID(), b.SessionID()
	createEphemeral(t, a, b, "/a")

	p.Cut()
	aev.Await(t, zk.StateDisconnected, 10*time.Second)
	if _, err := FourLetterWord(p.Addr(), "ruok"); err == nil {
		t.Error("a cut proxy let a new connection through")
	}
	WaitFor(t, 20*time.Second, func() bool {
		ok, _, err := b.Exists("/a")
		return err == nil && !ok
	}, "the server to expire the cut-off session and delete /a")
	p.Restore()

	aev.Await(t, zk.StateExpired, 20*time.Second)
	aev.Await(t, zk.StateHasSession, 20*time.Second)
	if a.SessionID() == aSession {
		t.Errorf("client behind the proxy kept session 0x%x, want a new one", aSession)
	}
	if got, err := FourLetterWord(p.Addr(), "ruok"); err != nil || got != "imok" {
		t.Errorf("ruok through restored proxy = %q, %v; want imok", got, err)
	}
	checkUntouched(t, b, bev, bSession)
}

func TestProxyExpireSessions(t *testing.T) {
	t.Parallel()
	s := Start(t)
	p := NewProxy(t, s.Addr())
	a, aev := ConnectEvents(t, SessionTimeout, p.Addr())
	b, bev := ConnectEvents(t, SessionTimeout, s.Addr())
	bSession := b.SessionID()
	createEphemeral(t, a, b, "/a")

	if n := p.ExpireSessions(t); n != 1 {
		t.Fatalf("ExpireSessions = %d, want 1", n)
	}
	if ok, _, err := b.Exists("/a"); err != nil || ok {
		t.Fatalf("exists /a right after ExpireSessions = %v, %v; want false", ok, err)
	}
	aev.Await(t, zk.StateExpired, 20*time.Second)
	aev.Await(t, zk.StateHasSession, 20*time.Second)
	checkUntouched(t, b, bev, bSession)
}
