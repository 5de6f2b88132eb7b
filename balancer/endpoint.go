package balancer

import (
	"maps"
	"slices"
	"strings"
)

// Endpoint is one backend instance a balancer can pick.
type Endpoint struct {
	// ID identifies the instance in its source (for ZooKeeper, the znode
	// path). It is informational: balancers key endpoints by Addr.
	ID string
	// Addr is the backend's "host:port".
	Addr string
	// Weight is the relative share of traffic for weighted algorithms.
	// Normalize turns a weight below 1 into 1.
	Weight int
	// Meta holds small string metadata (zone, version, node format, ...).
	// It must not be modified after the endpoint is published.
	Meta map[string]string
}

// Normalize returns the endpoints sorted by address with duplicates merged,
// as every balancer and subject expects them. Weights below 1 become 1. When
// an address occurs more than once, the first occurrence wins and its weight
// becomes the largest weight given for that address: two registrations of one
// backend (for example while it re-registers after a session expiry) must not
// double its share of traffic. The input is not modified.
func Normalize(in []Endpoint) []Endpoint {
	out := make([]Endpoint, 0, len(in))
	for _, e := range in {
		if e.Weight < 1 {
			e.Weight = 1
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b Endpoint) int { return strings.Compare(a.Addr, b.Addr) })
	merged := out[:0]
	for _, e := range out {
		if n := len(merged); n > 0 && merged[n-1].Addr == e.Addr {
			if e.Weight > merged[n-1].Weight {
				merged[n-1].Weight = e.Weight
			}
			continue
		}
		merged = append(merged, e)
	}
	return slices.Clip(merged)
}

// Equal reports whether two normalized endpoint lists describe the same
// membership: the same addresses with the same IDs, weights and metadata, in
// the same order.
func Equal(a, b []Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y Endpoint) bool {
		return x.Addr == y.Addr && x.ID == y.ID && x.Weight == y.Weight && maps.Equal(x.Meta, y.Meta)
	})
}

// normalized returns in as it is when it is already normalized (sorted by
// strictly increasing address, every weight at least 1), as the lists a
// Subject publishes always are, and Normalize(in) otherwise. Balancers call it
// on Update so that a direct caller's unsorted list cannot break them; the
// check is one pass and allocates nothing.
func normalized(in []Endpoint) []Endpoint {
	for i, e := range in {
		if e.Weight < 1 || (i > 0 && in[i-1].Addr >= e.Addr) {
			return Normalize(in)
		}
	}
	return in
}

// sameAddrs reports whether a and b hold the same addresses in the same
// order, whatever their weights, IDs and metadata.
func sameAddrs(a, b []Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y Endpoint) bool { return x.Addr == y.Addr })
}

// sameWeights reports whether a and b hold the same addresses with the same
// weights in the same order, whatever their IDs and metadata: the part of the
// membership that weighted algorithms derive their tables from.
func sameWeights(a, b []Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y Endpoint) bool { return x.Addr == y.Addr && x.Weight == y.Weight })
}
