package proxy

import (
	"net/http"
	"reflect"
	"testing"
)

// TestH2ScratchCloneMatchesHeaderClone: the worker's reused snapshot is
// what Header.Clone makes (nil values kept nil, empty ones empty), is not
// changed by later edits of the source, and a second clone leaves no field
// of the first behind.
func TestH2ScratchCloneMatchesHeaderClone(t *testing.T) {
	sc := new(h2Scratch)
	first := http.Header{
		"Content-Type": {"text/plain"},
		"Set-Cookie":   {"a=1", "b=2", "c=3"},
		"X-Nil":        nil,
		"X-Empty":      {},
		"Trailer":      {"X-Sum"},
	}
	got := sc.clone(first)
	if want := first.Clone(); !reflect.DeepEqual(got, want) {
		t.Fatalf("clone = %v, want %v", got, want)
	}
	if got["X-Nil"] != nil || got["X-Empty"] == nil {
		t.Fatalf("nil and empty values not kept apart: %#v / %#v", got["X-Nil"], got["X-Empty"])
	}
	first["Set-Cookie"][0] = "changed"
	first["Set-Cookie"] = append(first["Set-Cookie"], "d=4")
	first.Set("Content-Type", "application/json")
	first.Add("X-Sum", "9")
	if want := []string{"a=1", "b=2", "c=3"}; !reflect.DeepEqual(got["Set-Cookie"], want) || got.Get("Content-Type") != "text/plain" || got["X-Sum"] != nil {
		t.Fatalf("the snapshot changed with its source: %v", got)
	}
	second := http.Header{"Location": {"/next"}}
	got = sc.clone(second)
	if !reflect.DeepEqual(got, second.Clone()) {
		t.Fatalf("second clone = %v, want only %v", got, second)
	}
	if got := sc.clone(nil); len(got) != 0 || got == nil {
		t.Fatalf("clone(nil) = %#v, want an empty, usable header", got)
	}
}
