package config

import "testing"

// canonicalKeys keeps, of keys naming one field, the last in byte order's
// value on every call: a map's order must not decide what is sent.
func TestCanonicalKeysIsDeterministic(t *testing.T) {
	for range 50 {
		got := canonicalKeys(map[string]string{"X-Api": "1", "x-api": "2", "X-API": "3", "Date": "d"})
		if len(got) != 2 || got["X-Api"] != "2" || got["Date"] != "d" {
			t.Fatalf("canonicalKeys = %v, want X-Api from the last spelling (x-api: 2) and Date", got)
		}
	}
}
