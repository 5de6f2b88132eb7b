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
	make func() Balancer
}{
	{"random", func() Balancer { return NewRandom() }},
	{"round_robin", func() Balancer { return NewRoundRobin() }},
	{"weighted_round_robin", func() Balancer { return NewWeightRoundRobin() }},
	{"consistent_hash", func() Balancer { return NewConsistentHash() }},
	{"least_request", func() Balancer { return NewLeastRequest() }},
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
// least_request's balancer implements Tracker.
func New(name string) (Balancer, error) {
	for _, a := range algorithms {
		if a.name == name {
			return a.make(), nil
		}
	}
	return nil, fmt.Errorf("balancer: %w %q (valid: %s)", ErrUnknownAlgorithm, name, strings.Join(Names(), ", "))
}
