package logging

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                     "0s",
		3333333333 * time.Nanosecond:          "3.3s",
		12*time.Second + 400*time.Millisecond: "12s",
		90*time.Second + 300*time.Millisecond: "1m30s",
		250*time.Millisecond + 123456:         "250ms",
		50 * time.Millisecond:                 "50ms",
		3333333 * time.Nanosecond:             "3.3ms",
		1234 * time.Nanosecond:                "1µs",
		-3333333333 * time.Nanosecond:         "-3.3s",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%d) = %q, want %q", d, got, want)
		}
	}
}

func TestList(t *testing.T) {
	for _, tt := range []struct {
		items []string
		want  string
	}{
		{nil, ""},
		{[]string{"a"}, "a"},
		{[]string{"a", "b", "c", "d", "e"}, "a, b, c, d, e"},
		{[]string{"a", "b", "c", "d", "e", "f", "g"}, "a, b, c, d, e and 2 more"},
	} {
		if got := List(tt.items); got != tt.want {
			t.Errorf("List(%q) = %q, want %q", tt.items, got, tt.want)
		}
	}
}
