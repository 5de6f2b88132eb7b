// Package e2e holds zkgate's end-to-end tests: real processes under load.
//
// TestMain builds the zkgate and echo-backend binaries once into a temporary
// directory. Each scenario then starts its own real ZooKeeper (internal/zktest:
// a standalone server, a 3-node ensemble, or a server behind a proxy that can
// cut the gateway off), a zkgate process with a configuration written into
// t.TempDir(), and echo backends that register themselves in ZooKeeper. A
// bounded load (internal/loadgen, 400 requests/s, every third a POST) flows
// through the gateway while the scenario scales backends up and down, kills
// them, hangs one, takes ZooKeeper away or expires the gateway's session, and
// asserts the counts.
//
// Every process is started from the test, stopped by its PID when the test
// ends (SIGTERM, then SIGKILL after a bound), and writes its stdout and stderr
// into files in t.TempDir(); a failed test prints their tails. The gateway's
// stdout is its access log (one JSON line per request), which the scenarios
// read to say which requests failed, on which endpoint, with which method.
//
// Run them with
//
//	go test -race -count=1 -v ./e2e/
//
// Each scenario logs a one-line summary; TestMain prints a table of all of
// them at the end and writes it to $TMPDIR/zkgate-e2e-summary.txt. Without
// ZooKeeper installed the scenarios skip, or fail when CI=true.
package e2e
