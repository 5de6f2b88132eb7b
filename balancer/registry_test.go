package balancer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	want := []string{"random", "round_robin", "weighted_round_robin", "consistent_hash", "least_request"}
	if got := Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	Names()[0] = "changed"
	if Names()[0] != "random" {
		t.Error("modifying the result of Names changed the next result")
	}
}

func TestNewByName(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		tracker bool
	}{
		{"random", "*balancer.Random", false},
		{"round_robin", "*balancer.RoundRobin", false},
		{"weighted_round_robin", "*balancer.WeightRoundRobin", false},
		{"consistent_hash", "*balancer.ConsistentHash", false},
		{"least_request", "*balancer.LeastRequest", true},
	}
	for _, tt := range tests {
		b, err := New(tt.name)
		if err != nil {
			t.Errorf("New(%q): %v", tt.name, err)
			continue
		}
		if got := fmt.Sprintf("%T", b); got != tt.typ {
			t.Errorf("New(%q) is a %s, want %s", tt.name, got, tt.typ)
		}
		if _, ok := b.(Tracker); ok != tt.tracker {
			t.Errorf("New(%q) implements Tracker: %v, want %v", tt.name, ok, tt.tracker)
		}
	}
	a, _ := New("round_robin")
	b, _ := New("round_robin")
	if a == b {
		t.Error("New returned the same balancer twice")
	}
}

func TestNewUnknown(t *testing.T) {
	for _, name := range []string{"", "roundrobin", "Random", "least_conn"} {
		b, err := New(name)
		if err == nil || b != nil {
			t.Fatalf("New(%q) = %v, %v; want an error", name, b, err)
		}
		if !errors.Is(err, ErrUnknownAlgorithm) {
			t.Errorf("New(%q) error %q does not wrap ErrUnknownAlgorithm", name, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, fmt.Sprintf("%q", name)) {
			t.Errorf("error %q does not name %q", msg, name)
		}
		for _, valid := range Names() {
			if !strings.Contains(msg, valid) {
				t.Errorf("error %q does not list %q", msg, valid)
			}
		}
	}
}
