package balancer

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownAlgorithm is wrapped by the error New returns for a name it does
// not know.
var ErrUnknownAlgorithm = errors.New("unknown balancer algorithm")

// algorithms lists the constructors by configuration name, in the order
// Names and error messages give them.
var algorithms = []struct {
	name string
	make func(opts []Option) Balancer
}{
	{"random", func(opts []Option) Balancer { return NewRandom(opts...) }},
	{"round_robin", func([]Option) Balancer { return NewRoundRobin() }},
	{"weighted_round_robin", func(opts []Option) Balancer { return NewWeightRoundRobin(opts...) }},
	{"consistent_hash", func([]Option) Balancer { return NewConsistentHash() }},
	{"least_request", func([]Option) Balancer { return NewLeastRequest() }},
}

// Names returns the algorithm names New accepts, as configuration spells
// them. The caller may modify the returned slice.
func Names() []string {
	names := make([]string, len(algorithms))
	for i, a := range algorithms {
		names[i] = a.name
	}
	return names
}

// New returns an empty balancer of the named algorithm: random, round_robin,
// weighted_round_robin, consistent_hash or least_request (see Random,
// RoundRobin, WeightRoundRobin, ConsistentHash and LeastRequest). Only
// least_request's balancer implements Tracker. opts apply to the algorithms
// that support them (see SlowStartAlgorithms) and are ignored by the others.
func New(name string, opts ...Option) (Balancer, error) {
	for _, a := range algorithms {
		if a.name == name {
			return a.make(opts), nil
		}
	}
	return nil, fmt.Errorf("balancer: %w %q (valid: %s)", ErrUnknownAlgorithm, name, strings.Join(Names(), ", "))
}

// SlowStartAlgorithms returns the names of the algorithms that honour
// WithSlowStart: those that weigh their picks by a per-endpoint weight they
// can ramp. round_robin and least_request ignore weights, and
// consistent_hash does not ramp because changing an endpoint's share of the
// ring moves keys to and from it at every step (Envoy does not apply slow
// start to its ring hash and Maglev balancers either). The caller may modify
// the returned slice.
func SlowStartAlgorithms() []string {
	return []string{"random", "weighted_round_robin"}
}
