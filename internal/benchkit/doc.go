// Package benchkit is the harness behind `make bench`: it measures zkgate
// against a direct connection, nginx, HAProxy and Caddy with wrk, its TLS
// entry point against nginx with TLS (same certificate, made at run time:
// HTTPS keep-alive with wrk, a full handshake per request and HTTP/2 with
// h2load; tlsbench.go), its compression of a 64 KiB JSON answer against
// nginx's gzip at the same level (with and without Accept-Encoding: gzip;
// gzipbench.go), and the time ZooKeeper membership changes take to reach
// the gateway's routing.
//
// Everything runs as local processes on loopback: a ZooKeeper started from
// Debian's package, fast Go backends (Backend, registered in ZooKeeper like
// any Go service), each proxy in the foreground with a configuration written
// to the harness's state directory. Run starts them, interleaves rounds of
// wrk runs so that machine drift cancels, samples each proxy's CPU time and
// resident memory from /proc, writes docs/bench/results.md and
// docs/bench/results.svg, and stops every process it started, by PID, on
// every path out (errors and signals included).
//
// The command is internal/benchkit/cmd/zkbench; scripts/bench.sh builds and
// runs it.
package benchkit
