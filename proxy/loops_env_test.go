package proxy

import (
	"os"
	"strconv"
)

// ZKGATE_TEST_LOOPS=N runs every Server of the package's tests that does
// not set ServerConfig.Loops with N loops (make test runs the package so
// once more).
func init() {
	if n, err := strconv.Atoi(os.Getenv("ZKGATE_TEST_LOOPS")); err == nil && n > 0 {
		testLoops = n
	}
}
