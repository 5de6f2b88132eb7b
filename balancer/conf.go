package balancer

import (
	"slices"
	"sync"
)

// Observer receives the full endpoint list of a LoadBalanceConf each time it
// changes. The list is normalized (see Normalize) and shared: an observer must
// not modify it. Update is called synchronously by the publishing subject, so
// it must be quick and must not call back into that subject.
type Observer interface {
	Update(endpoints []Endpoint)
}

// LoadBalanceConf is a subject holding the current endpoint list of one
// service and notifying its observers when the list changes.
type LoadBalanceConf interface {
	// Attach registers o and immediately delivers the current list to it.
	Attach(o Observer)
	// Detach unregisters o; it receives no update after Detach returns.
	Detach(o Observer)
	// Endpoints returns the current list. The caller must not modify it.
	Endpoints() []Endpoint
}

// Subject is the reusable core of a LoadBalanceConf: it stores the current
// list, skips publications that change nothing, and delivers each change to
// every attached observer in publication order. The zero value is ready to
// use. Embed it to implement LoadBalanceConf.
type Subject struct {
	mu        sync.Mutex
	endpoints []Endpoint
	observers []Observer
}

// Attach implements LoadBalanceConf.
func (s *Subject) Attach(o Observer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observers = append(s.observers, o)
	o.Update(s.endpoints)
}

// Detach implements LoadBalanceConf.
func (s *Subject) Detach(o Observer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observers = slices.DeleteFunc(s.observers, func(x Observer) bool { return x == o })
}

// Endpoints implements LoadBalanceConf.
func (s *Subject) Endpoints() []Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoints
}

// Publish normalizes endpoints and, when the result differs from the current
// list, stores it and notifies every observer. It reports whether observers
// were notified. Publish holds the subject's lock while notifying, so that
// observers see publications in order and never a stale list after a newer
// one.
func (s *Subject) Publish(endpoints []Endpoint) bool {
	next := Normalize(endpoints)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endpoints != nil && Equal(s.endpoints, next) {
		return false
	}
	s.endpoints = next
	for _, o := range s.observers {
		o.Update(next)
	}
	return true
}

// Static is a LoadBalanceConf over a fixed list, replaceable with Set. It
// serves static services and tests.
type Static struct {
	Subject
}

// NewStatic returns a Static conf publishing endpoints.
func NewStatic(endpoints ...Endpoint) *Static {
	s := &Static{}
	s.Publish(endpoints)
	return s
}

// Set replaces the list and notifies observers if it changed.
func (s *Static) Set(endpoints ...Endpoint) { s.Publish(endpoints) }

var _ LoadBalanceConf = (*Static)(nil)
