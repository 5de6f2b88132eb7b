package benchkit

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeGateway routes round robin over its members, answering the chosen
// member's ID, or 503 without members.
type fakeGateway struct {
	mu         sync.Mutex
	members    []string
	next       int
	lastRouted map[string]time.Time
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	if len(g.members) == 0 {
		g.mu.Unlock()
		http.Error(w, "no member", http.StatusServiceUnavailable)
		return
	}
	id := g.members[g.next%len(g.members)]
	g.next++
	if g.lastRouted == nil {
		g.lastRouted = make(map[string]time.Time)
	}
	g.lastRouted[id] = time.Now()
	g.mu.Unlock()
	_, _ = io.WriteString(w, id)
}

func (g *fakeGateway) set(add, remove string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, m := range g.members {
		if m != remove {
			out = append(out, m)
		}
	}
	if add != "" {
		out = append(out, add)
	}
	g.members = out
}

// fakeInstance reaches the fake gateway's routing joinDelay after Register
// and leaves it leaveDelay after Deregister (negative: never).
type fakeInstance struct {
	id                    string
	gw                    *fakeGateway
	joinDelay, leaveDelay time.Duration
	registerErr           error
	closed                *atomic.Int32
	deregisteredAt        time.Time
}

func (f *fakeInstance) ID() string { return f.id }
func (f *fakeInstance) Register(context.Context) error {
	if f.registerErr != nil {
		return f.registerErr
	}
	if f.joinDelay >= 0 {
		time.AfterFunc(f.joinDelay, func() { f.gw.set(f.id, "") })
	}
	return nil
}
func (f *fakeInstance) Deregister(context.Context) error {
	f.deregisteredAt = time.Now()
	if f.leaveDelay >= 0 {
		time.AfterFunc(f.leaveDelay, func() { f.gw.set("", f.id) })
	}
	return nil
}
func (f *fakeInstance) Close() error { f.closed.Add(1); return nil }

func TestMeasurePropagation(t *testing.T) {
	gw := &fakeGateway{members: []string{"base"}}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	const joinDelay, leaveDelay = 15 * time.Millisecond, 25 * time.Millisecond
	var closed atomic.Int32
	var progress []int
	var insts []*fakeInstance
	p, err := MeasurePropagation(context.Background(), PropagationConfig{
		URL:    srv.URL + IDPath,
		Events: 4,
		Quiet:  80 * time.Millisecond,
		Spawn: func(i int) (Instance, error) {
			insts = append(insts, &fakeInstance{id: "inst-" + string(rune('a'+i)), gw: gw, joinDelay: joinDelay, leaveDelay: leaveDelay, closed: &closed})
			return insts[i], nil
		},
		Progress: func(i int, _, _ time.Duration) { progress = append(progress, i) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Join) != 4 || len(p.Leave) != 4 || len(p.JoinWrite) != 4 || len(p.LeaveWrite) != 4 {
		t.Fatalf("got %d/%d/%d/%d measurements, want 4 of each", len(p.Join), len(p.Leave), len(p.JoinWrite), len(p.LeaveWrite))
	}
	for i := range 4 {
		// The gateway cannot route to an instance before it joins.
		if p.Join[i] < joinDelay {
			t.Errorf("event %d: join %v, want at least the %v the gateway took", i, p.Join[i], joinDelay)
		}
		// The last answer from a departed instance arrives after the
		// gateway routed its last request there: an earlier sighting
		// would not do.
		gw.mu.Lock()
		last := gw.lastRouted[insts[i].id].Sub(insts[i].deregisteredAt)
		gw.mu.Unlock()
		if p.Leave[i] < last || last <= 0 {
			t.Errorf("event %d: leave %v, want at least %v (the gateway's last routing after deregistration)", i, p.Leave[i], last)
		}
		if p.JoinWrite[i] > p.Join[i] || p.LeaveWrite[i] > p.Leave[i] {
			t.Errorf("event %d: write times %v/%v exceed the totals %v/%v", i, p.JoinWrite[i], p.LeaveWrite[i], p.Join[i], p.Leave[i])
		}
	}
	if closed.Load() != 4 || len(progress) != 4 || progress[3] != 3 {
		t.Errorf("closed %d instances, progress %v; want 4 and [0 1 2 3]", closed.Load(), progress)
	}
	if got := gw.members; len(got) != 1 || got[0] != "base" {
		t.Errorf("members after the run = %v, want [base]", got)
	}
}

func TestMeasurePropagationFailures(t *testing.T) {
	gw := &fakeGateway{}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	var closed atomic.Int32
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		inst *fakeInstance
		err  error
		want string
	}{
		{"never routed", &fakeInstance{id: "ghost", joinDelay: -1}, nil, "ghost registered but not routed to within 200ms"},
		{"never leaves", &fakeInstance{id: "sticky", leaveDelay: -1}, nil, "sticky deregistered but still routed to after 200ms"},
		{"register fails", &fakeInstance{id: "r", registerErr: boom}, nil, "register r: boom"},
		{"spawn fails", nil, boom, "event 0: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw.set("", "sticky")
			_, err := MeasurePropagation(context.Background(), PropagationConfig{
				URL: srv.URL, Events: 1, Quiet: 300 * time.Millisecond, Timeout: 200 * time.Millisecond,
				Spawn: func(int) (Instance, error) {
					if tc.inst == nil {
						return nil, tc.err
					}
					tc.inst.gw, tc.inst.closed = gw, &closed
					return tc.inst, nil
				},
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if closed.Load() != 3 {
		t.Errorf("closed %d instances, want the 3 spawned", closed.Load())
	}
	if _, err := MeasurePropagation(context.Background(), PropagationConfig{URL: srv.URL}); err == nil {
		t.Error("MeasurePropagation without Spawn: no error")
	}
	srv.Close()
	_, err := MeasurePropagation(context.Background(), PropagationConfig{URL: srv.URL, Events: 1,
		Spawn: func(int) (Instance, error) { return &fakeInstance{id: "x", gw: gw, closed: &closed}, nil }})
	if err == nil || !strings.Contains(err.Error(), "poll") {
		t.Errorf("with the gateway down: %v, want a poll error", err)
	}
}
