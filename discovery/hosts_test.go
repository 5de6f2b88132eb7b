package discovery

import (
	"slices"
	"testing"
)

// TestHostListRounds: each server once per round, a pause (retryStart) when
// a round ends without a connection, and rounds start after the server last
// connected to.
func TestHostListRounds(t *testing.T) {
	var h hostList
	if err := h.Init(nil); err == nil {
		t.Error("Init(nil) succeeded")
	}
	servers := []string{"a:2181", "b:2181", "c:2181"}
	if err := h.Init(servers); err != nil || h.Len() != 3 {
		t.Fatalf("Init: %v, Len %d", err, h.Len())
	}
	var round []string
	for i := range 3 {
		s, retry := h.Next()
		if retry {
			t.Errorf("Next %d of the first round says retryStart", i)
		}
		round = append(round, s)
	}
	slices.Sort(round)
	if !slices.Equal(round, servers) {
		t.Errorf("first round %v; want each of %v once", round, servers)
	}
	if _, retry := h.Next(); !retry {
		t.Error("a new round without a connection does not say retryStart")
	}
	connected, _ := h.Next()
	h.Connected()
	for range 2 {
		if _, retry := h.Next(); retry {
			t.Error("retryStart before every server was tried since the connection")
		}
	}
	if s, retry := h.Next(); !retry || s != connected {
		t.Errorf("Next = %s, %v; want %s, true: a round ends at the server last connected to", s, retry, connected)
	}
}
