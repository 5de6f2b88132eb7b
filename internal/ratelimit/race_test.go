//go:build race

package ratelimit

// raceEnabled reports whether the race detector is on: the memory tests
// then send fewer keys, which under it cost a thousand times more.
const raceEnabled = true
