package balancer

import (
	"fmt"
	"slices"
	"testing"
)

// recorder is an Observer that records every list it receives, tagged with
// its name into a shared log when one is given.
type recorder struct {
	name    string
	updates [][]Endpoint
	log     *[]string
}

func (r *recorder) Update(eps []Endpoint) {
	r.updates = append(r.updates, eps)
	if r.log != nil {
		*r.log = append(*r.log, fmt.Sprintf("%s:%v", r.name, addrs(eps)))
	}
}

func (r *recorder) last(t *testing.T) []Endpoint {
	t.Helper()
	if len(r.updates) == 0 {
		t.Fatal("observer received no update")
	}
	return r.updates[len(r.updates)-1]
}

func TestSubjectPublishNormalizesAndNotifies(t *testing.T) {
	var s Subject
	r := &recorder{}
	s.Attach(r)
	if !s.Publish([]Endpoint{{Addr: "b:1"}, {Addr: "a:1", Weight: 3}, {Addr: "b:1", Weight: 2}}) {
		t.Fatal("Publish of a new list reported no notification")
	}
	want := []Endpoint{{Addr: "a:1", Weight: 3}, {Addr: "b:1", Weight: 2}}
	if got := r.last(t); !Equal(got, want) {
		t.Errorf("observer got %+v, want %+v", got, want)
	}
	if got := s.Endpoints(); !Equal(got, want) {
		t.Errorf("Endpoints() = %+v, want %+v", got, want)
	}
}

func TestSubjectSkipsUnchangedPublication(t *testing.T) {
	var s Subject
	r := &recorder{}
	s.Attach(r) // delivers the initial (nil) list
	s.Publish(list(1, 2))
	before := len(r.updates)
	// The same membership, in another order and as fresh values.
	again := []Endpoint{list(1, 2)[1], list(1, 2)[0]}
	if s.Publish(again) {
		t.Error("Publish of an unchanged membership reported a notification")
	}
	if len(r.updates) != before {
		t.Errorf("observer got %d updates for an unchanged membership, want none", len(r.updates)-before)
	}
	if !s.Publish(list(1, 3)) {
		t.Error("Publish of a changed weight reported no notification")
	}
	if len(r.updates) != before+1 {
		t.Errorf("observer got %d updates for a changed weight, want 1", len(r.updates)-before)
	}
}

func TestSubjectFirstEmptyPublicationNotifies(t *testing.T) {
	var s Subject
	r := &recorder{}
	s.Attach(r)
	if !s.Publish(nil) {
		t.Error("first Publish of an empty list reported no notification")
	}
	if got := r.last(t); got == nil || len(got) != 0 {
		t.Errorf("observer got %#v, want an empty non-nil list", got)
	}
	if s.Publish([]Endpoint{}) {
		t.Error("second empty Publish reported a notification")
	}
}

func TestSubjectAttachDeliversCurrentList(t *testing.T) {
	var s Subject
	s.Publish(list(1, 1, 1))
	r := &recorder{}
	s.Attach(r)
	if len(r.updates) != 1 {
		t.Fatalf("Attach delivered %d updates, want 1", len(r.updates))
	}
	if !Equal(r.updates[0], list(1, 1, 1)) {
		t.Errorf("Attach delivered %v, want %v", addrs(r.updates[0]), addrs(list(1, 1, 1)))
	}
}

func TestSubjectDetachStopsUpdates(t *testing.T) {
	var s Subject
	kept, gone := &recorder{}, &recorder{}
	s.Attach(kept)
	s.Attach(gone)
	s.Detach(gone)
	s.Publish(list(1))
	if len(gone.updates) != 1 {
		t.Errorf("detached observer got %d updates, want only Attach's", len(gone.updates))
	}
	if len(kept.updates) != 2 {
		t.Errorf("attached observer got %d updates, want 2", len(kept.updates))
	}
	s.Detach(gone) // detaching twice is harmless
	s.Publish(list(2))
	if len(kept.updates) != 3 {
		t.Errorf("attached observer got %d updates after a second Detach of another, want 3", len(kept.updates))
	}
}

func TestSubjectNotifiesInOrder(t *testing.T) {
	var s Subject
	var log []string
	s.Attach(&recorder{name: "x", log: &log})
	s.Attach(&recorder{name: "y", log: &log})
	s.Publish([]Endpoint{{Addr: "a:1"}})
	s.Publish([]Endpoint{{Addr: "b:1"}})
	want := []string{"x:[]", "y:[]", "x:[a:1]", "y:[a:1]", "x:[b:1]", "y:[b:1]"}
	if !slices.Equal(log, want) {
		t.Errorf("notification order = %v, want %v", log, want)
	}
}

func TestStatic(t *testing.T) {
	s := NewStatic(Endpoint{Addr: "b:1"}, Endpoint{Addr: "a:1"})
	if got, want := addrs(s.Endpoints()), []string{"a:1", "b:1"}; !slices.Equal(got, want) {
		t.Fatalf("NewStatic endpoints = %v, want %v", got, want)
	}
	b := NewRoundRobin()
	s.Attach(b)
	if got := picks(t, b, 2); !slices.Equal(got, []string{"a:1", "b:1"}) {
		t.Errorf("balancer attached to Static picked %v", got)
	}
	r := &recorder{}
	s.Attach(r)
	s.Set(Endpoint{Addr: "a:1"}, Endpoint{Addr: "b:1"}) // unchanged
	if len(r.updates) != 1 {
		t.Errorf("Set of an unchanged list notified: %d updates", len(r.updates))
	}
	s.Set(Endpoint{Addr: "c:1"})
	if got := addrs(r.last(t)); !slices.Equal(got, []string{"c:1"}) {
		t.Errorf("after Set, observer has %v, want [c:1]", got)
	}
	if got := picks(t, b, 2); !slices.Equal(got, []string{"c:1", "c:1"}) {
		t.Errorf("after Set, balancer picked %v, want [c:1 c:1]", got)
	}
}
