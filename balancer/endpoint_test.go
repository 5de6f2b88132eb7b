package balancer

import (
	"slices"
	"testing"
)

func TestNormalizeSortsByAddress(t *testing.T) {
	in := []Endpoint{{Addr: "c:1", Weight: 1}, {Addr: "a:1", Weight: 2}, {Addr: "b:1", Weight: 3}}
	got := Normalize(in)
	if want := []string{"a:1", "b:1", "c:1"}; !slices.Equal(addrs(got), want) {
		t.Fatalf("Normalize order = %v, want %v", addrs(got), want)
	}
	if got[0].Weight != 2 || got[1].Weight != 3 || got[2].Weight != 1 {
		t.Errorf("weights did not follow their endpoints: %+v", got)
	}
	if in[0].Addr != "c:1" {
		t.Errorf("Normalize modified its input: %+v", in)
	}
}

func TestNormalizeRaisesWeightsBelowOne(t *testing.T) {
	got := Normalize([]Endpoint{{Addr: "a:1", Weight: 0}, {Addr: "b:1", Weight: -5}, {Addr: "c:1", Weight: 7}})
	for i, want := range []int{1, 1, 7} {
		if got[i].Weight != want {
			t.Errorf("endpoint %s weight = %d, want %d", got[i].Addr, got[i].Weight, want)
		}
	}
}

func TestNormalizeMergesDuplicates(t *testing.T) {
	in := []Endpoint{
		{ID: "/s/first", Addr: "b:1", Weight: 2},
		{ID: "/s/other", Addr: "a:1", Weight: 1},
		{ID: "/s/second", Addr: "b:1", Weight: 5},
		{ID: "/s/third", Addr: "b:1", Weight: 3},
	}
	got := Normalize(in)
	if want := []string{"a:1", "b:1"}; !slices.Equal(addrs(got), want) {
		t.Fatalf("Normalize = %v, want %v", addrs(got), want)
	}
	if got[1].ID != "/s/first" {
		t.Errorf("duplicate kept ID %q, want the first occurrence's %q", got[1].ID, "/s/first")
	}
	if got[1].Weight != 5 {
		t.Errorf("duplicate weight = %d, want the largest, 5", got[1].Weight)
	}
	if in[0].Weight != 2 || in[2].Weight != 5 {
		t.Errorf("Normalize modified its input: %+v", in)
	}
}

func TestNormalizeEmpty(t *testing.T) {
	for _, in := range [][]Endpoint{nil, {}} {
		if got := Normalize(in); got == nil || len(got) != 0 {
			t.Errorf("Normalize(%#v) = %#v, want an empty non-nil list", in, got)
		}
	}
}

func TestEqual(t *testing.T) {
	base := []Endpoint{{ID: "1", Addr: "a:1", Weight: 1, Meta: map[string]string{"zone": "x"}}}
	with := func(f func(*Endpoint)) []Endpoint {
		e := base[0]
		f(&e)
		return []Endpoint{e}
	}
	tests := []struct {
		name string
		b    []Endpoint
		want bool
	}{
		{"identical", with(func(*Endpoint) {}), true},
		{"fresh equal meta", with(func(e *Endpoint) { e.Meta = map[string]string{"zone": "x"} }), true},
		{"other addr", with(func(e *Endpoint) { e.Addr = "b:1" }), false},
		{"other id", with(func(e *Endpoint) { e.ID = "2" }), false},
		{"other weight", with(func(e *Endpoint) { e.Weight = 2 }), false},
		{"other meta", with(func(e *Endpoint) { e.Meta = map[string]string{"zone": "y"} }), false},
		{"longer", append(with(func(*Endpoint) {}), Endpoint{Addr: "b:1", Weight: 1}), false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		if got := Equal(base, tt.b); got != tt.want {
			t.Errorf("%s: Equal = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !Equal(nil, []Endpoint{}) {
		t.Error("Equal(nil, empty) = false, want true")
	}
}

func TestNormalizedKeepsNormalizedInput(t *testing.T) {
	in := list(1, 2, 3)
	if got := normalized(in); &got[0] != &in[0] {
		t.Error("normalized copied a list that was already normalized")
	}
	for name, bad := range map[string][]Endpoint{
		"unsorted":  {{Addr: "b:1", Weight: 1}, {Addr: "a:1", Weight: 1}},
		"duplicate": {{Addr: "a:1", Weight: 1}, {Addr: "a:1", Weight: 2}},
		"weight 0":  {{Addr: "a:1", Weight: 0}},
	} {
		got := normalized(bad)
		if !Equal(got, Normalize(bad)) {
			t.Errorf("%s: normalized = %+v, want %+v", name, got, Normalize(bad))
		}
	}
}
