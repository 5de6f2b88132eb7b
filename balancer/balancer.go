package balancer

import "errors"

// ErrNoEndpoint is returned by Pick when the balancer has no endpoint.
var ErrNoEndpoint = errors.New("balancer: no endpoint available")

// Balancer picks the endpoint for one request. It observes a LoadBalanceConf
// and rebuilds its immutable snapshot on Update; Pick is safe for concurrent
// use, takes no lock shared with Update and allocates nothing.
type Balancer interface {
	Observer
	// Pick returns the endpoint for a request. key is the hashing key for
	// key-aware algorithms (consistent hashing) and ignored by the others.
	//
	// key is valid only during the call: the proxy's fast path passes a
	// string that points into a connection's read buffer, which the next
	// request overwrites. Pick must not keep key, or any part of it, after
	// it returns (copy it with strings.Clone if it must be kept).
	Pick(key string) (Endpoint, error)
}

// Tracker is implemented by balancers that account for requests in flight
// (least_request). A caller that picked ep calls Done(ep) exactly once when
// the request to ep has finished, whatever its outcome. Balancers that do not
// track load do not implement it.
type Tracker interface {
	Done(ep Endpoint)
}
