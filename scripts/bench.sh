#!/usr/bin/env bash
# bench.sh — zkgate against a direct connection, nginx, HAProxy and Caddy with
# wrk (one worker / one thread, and both cores), the memory of connections
# held open through zkgate, nginx and HAProxy (idle and upgraded) and a
# steady load beside idle ones, zkgate's TLS entry point against nginx with
# the same certificate (HTTPS keep-alive with wrk, a new TLS connection per
# request and HTTP/2 with h2load), a 64 KiB JSON answer gzipped by zkgate
# against nginx's `gzip on` at the same level, gRPC unary calls through
# zkgate and nginx's grpc_pass against the gRPC backend directly, and
# ZooKeeper discovery propagation; writes docs/bench/results.md and
# docs/bench/results.svg and prints the tables.
# `make bench` runs it after `make build` (about 30 minutes).
#
# Installs wrk, h2load, nginx, haproxy, caddy and ZooKeeper from Debian when missing
# (as root), but never enables or starts their system services: each runs as
# a foreground process of the harness with its own configuration under .bench/,
# on its own loopback port, and is stopped by its PID on every exit (errors
# and Ctrl-C included).
#
# Tuning (environment):
#   BENCH_ROUNDS=3          interleaved rounds
#   BENCH_DURATION=5s       each wrk run at -c64 (throughput, CPU, latency under load)
#   BENCH_LAT_DURATION=3s   each wrk run at -c1 (latency)
#   BENCH_WARMUP=1s         one unrecorded run per target and body first (0 = none)
#   BENCH_CONNS=64          wrk connections of the main runs
#   BENCH_HELD_CONNS=8000   connections held open through each of zkgate, nginx and
#                           HAProxy, idle then upgraded, and beside the wrk -c64 load
#                           (0 = skip that part, about 2 minutes; at most 8900: a
#                           process may hold 20,000 descriptors, a proxy holds two
#                           per upgraded connection)
#   BENCH_PAIRS=6           back-to-back pairs after the rounds, each body, each of: zkgate
#                           against nginx-2-log and nginx-log, zkgate-nolog against nginx-2,
#                           haproxy-2 and nginx (0 = skip, about 11 minutes; an odd number is
#                           rounded up)
#   BENCH_PROP_EVENTS=100   discovery propagation events (0 = skip)
#   BENCH_TARGETS=          comma-separated subset: zkgate,zkgate-3,zkgate-nolog,zkgate-nethttp,zkgate-policies,go-reverseproxy,nginx,nginx-log,haproxy,caddy,nginx-2,nginx-2-log,haproxy-2,go-epoll
#                           and of the TLS section: zkgate-tls,zkgate-tls-go,nginx-tls,nginx-tls-2, and of the
#                           compression section: zkgate-gzip,nginx-gzip,nginx-gzip-2, and of the gRPC section: zkgate-grpc,nginx-grpc (a section runs
#                           when one of its targets is named: naming TLS targets only runs that
#                           section alone; naming none of a section's skips it)
#   BENCH_GZIP_LEVEL=5      compression level of zkgate (compress.level) and nginx (gzip_comp_level)
#   BENCH_BASE_PORT=19100   ports BASE..BASE+39 on 127.0.0.1 must be free
#   BENCH_TIMEOUT=40m       hard bound on the whole run
#
# Iterating quickly: BENCH_ROUNDS=2 BENCH_DURATION=3s BENCH_PAIRS=2 BENCH_PROP_EVENTS=20 scripts/bench.sh
# Only the connection part: BENCH_ROUNDS=1 BENCH_TARGETS=zkgate,nginx,haproxy BENCH_PAIRS=0 BENCH_PROP_EVENTS=0 scripts/bench.sh
# Only both cores, back to back (about 9 minutes): BENCH_ROUNDS=1 BENCH_TARGETS=zkgate,zkgate-nolog,nginx-2,nginx-2-log,haproxy-2 BENCH_HELD_CONNS=0 BENCH_PROP_EVENTS=0 scripts/bench.sh
# Only the TLS section (about 3 minutes): BENCH_TARGETS=zkgate-tls,zkgate-tls-go,nginx-tls,nginx-tls-2 BENCH_PROP_EVENTS=0 scripts/bench.sh
# Only the compression section (about 2 minutes): BENCH_TARGETS=zkgate-gzip,nginx-gzip,nginx-gzip-2 BENCH_PROP_EVENTS=0 scripts/bench.sh
# Only the gRPC section (about a minute): BENCH_TARGETS=zkgate-grpc,nginx-grpc BENCH_PROP_EVENTS=0 scripts/bench.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${BENCH_STATE:-$ROOT/.bench}
GO=${GO:-go}

die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

[ -x "$ROOT/bin/zkgate" ] || die "$ROOT/bin/zkgate missing: run 'make build' (or 'make bench')"
"$ROOT/scripts/ensure-deps.sh" wrk h2load nginx haproxy caddy zookeeper
# Debian's packages live in /usr/sbin, which a non-root PATH may lack.
export PATH=$PATH:/usr/sbin:/sbin

mkdir -p "$STATE"
(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -o "$STATE/zkbench" ./internal/benchkit/cmd/zkbench)

# The harness stops everything it started on SIGINT/SIGTERM and on errors;
# its children also die with it (PR_SET_PDEATHSIG) should it be killed.
# timeout bounds the whole run and sends SIGTERM (then SIGKILL 30s later).
harness=
stop() { [ -n "$harness" ] && kill -TERM "$harness" 2>/dev/null; wait "$harness" 2>/dev/null; }
trap 'stop; exit 130' INT TERM
timeout --foreground -k 30s "${BENCH_TIMEOUT:-40m}" "$STATE/zkbench" run --root "$ROOT" --state "$STATE" "$@" &
harness=$!
set +e
wait "$harness"; rc=$?
set -e
harness=
[ "$rc" = 124 ] && die "timed out after ${BENCH_TIMEOUT:-40m} (BENCH_TIMEOUT)"
exit "$rc"
