package logging

import (
	"strconv"
	"strings"
	"time"
)

// Duration formats d for a log line, rounded to what a reader needs:
// "3.3s", "12s", "1m30s", "250ms", "3.3ms". Every duration logged goes
// through it, as a field value or in a message, so that no line shows
// "3.333333333s" or, in JSON, a count of nanoseconds.
func Duration(d time.Duration) string {
	a := d.Abs()
	switch {
	case a >= 10*time.Second:
		d = d.Round(time.Second)
	case a >= time.Second:
		d = d.Round(100 * time.Millisecond)
	case a >= 10*time.Millisecond:
		d = d.Round(time.Millisecond)
	case a >= time.Millisecond:
		d = d.Round(100 * time.Microsecond)
	default:
		d = d.Round(time.Microsecond)
	}
	return d.String()
}

// ListLimit is how many items List names before "and N more".
const ListLimit = 5

// List names items for a log line, at most ListLimit of them: "a, b, c",
// or "a, b, c, d, e and 7 more". It returns "" for no items.
func List(items []string) string {
	n := min(len(items), ListLimit)
	s := strings.Join(items[:n], ", ")
	if rest := len(items) - n; rest > 0 {
		s += " and " + strconv.Itoa(rest) + " more"
	}
	return s
}
