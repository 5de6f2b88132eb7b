#!/usr/bin/env bash
# ab.sh: CPU per request of two zkgate builds and nginx, side by side, in rotating rounds.
#
#   scripts/ab.sh [-n ROUNDS] [-d SECONDS] [-w NGINX_WORKERS] [-c CONNECTIONS] [-l] A_BIN B_BIN [NAME=VALUE ...]
#
# The by-hand measurement behind the figures in docs/design/loops.md. A_BIN and B_BIN are
# zkgate binaries (the same one twice compares a setting: the NAME=VALUE pairs are B's
# environment). Each round runs `wrk -t1 -c64` (-c: CONNECTIONS) for SECONDS against A, B and nginx with
# NGINX_WORKERS workers (make bench's configuration, `zkbench nginxconf`), in an order that
# rotates, all in front of one zkbench backend answering 13 bytes; CPU is the utime + stime
# of each proxy's processes over the run (nginx: master and workers), divided by the
# requests. -l turns on every proxy's access log, written to a file (nginx: its combined
# format, as make bench's log rows). zkgate runs make bench's configuration (a route /echo
# with strip_prefix and one on "", round robin) with the backend given statically, not
# through ZooKeeper. Loopback only; everything it starts is stopped by PID when it ends.
set -euo pipefail

rounds=9 secs=5 workers=2 conns=64 log=false
while getopts "n:d:w:c:l" o; do
	case $o in
	n) rounds=$OPTARG ;;
	d) secs=$OPTARG ;;
	w) workers=$OPTARG ;;
	c) conns=$OPTARG ;;
	l) log=true ;;
	*) sed -n '2,4p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || { sed -n '2,4p' "$0" >&2; exit 2; }
a_bin=$(realpath "$1") b_bin=$(realpath "$2")
shift 2
b_env=("$@")

root=$(cd "$(dirname "$0")/.." && pwd)
for tool in wrk nginx curl; do
	command -v "$tool" >/dev/null || { echo "ab.sh: $tool is missing (scripts/ensure-deps.sh $tool)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/zkgate-ab.XXXXXX)
zkbench=$work/zkbench
(cd "$root" && CGO_ENABLED=0 go build -o "$zkbench" ./internal/benchkit/cmd/zkbench)

# Ports: a block picked from the PID so that two runs do not collide.
base=$((21000 + ($$ % 400) * 10))
backend=127.0.0.1:$base a_port=$((base + 1)) b_port=$((base + 2)) ng_port=$((base + 3))

# make bench's configurations (zkgate's with the backend given statically, no ZooKeeper).
mkdir -p "$work/a" "$work/b"
with_log=()
if $log; then with_log=(--access-log); fi
"$zkbench" zkgateconf --port "$a_port" --admin-port $((base + 5)) --upstream "$backend" "${with_log[@]}" >"$work/a/gateway.yaml"
"$zkbench" zkgateconf --port "$b_port" --admin-port $((base + 6)) --upstream "$backend" "${with_log[@]}" >"$work/b/gateway.yaml"
"$zkbench" nginxconf --dir "$work/nginx" --port "$ng_port" --workers "$workers" --upstream "$backend" "${with_log[@]}"

pids=()
stop() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
"$zkbench" backend --listen "$backend" --id b1 >"$work/backend.log" 2>&1 & pids+=($!)
# zkgate writes its access log to standard output: a file here.
"$a_bin" serve --config "$work/a/gateway.yaml" >"$work/a.log" 2>"$work/a.err" & a_pid=$!; pids+=($a_pid)
env "${b_env[@]}" "$b_bin" serve --config "$work/b/gateway.yaml" >"$work/b.log" 2>"$work/b.err" & b_pid=$!; pids+=($b_pid)
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e stderr -g "daemon off;" >"$work/nginx.log" 2>&1 & ng_pid=$!; pids+=($ng_pid)

ready=
for _ in $(seq 100); do
	if curl -sf -o /dev/null "http://127.0.0.1:$a_port/echo/" && curl -sf -o /dev/null "http://127.0.0.1:$b_port/echo/" &&
		curl -sf -o /dev/null "http://127.0.0.1:$ng_port/echo/"; then
		ready=1
		break
	fi
	sleep 0.1
done
[ -n "$ready" ] || { echo "ab.sh: a proxy did not answer within 10 s; logs in $work" >&2; exit 1; }
ng_pids="$ng_pid $(pgrep -P "$ng_pid" | tr '\n' ' ')"

ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
hz=$(getconf CLK_TCK)
run() { # name port pids...
	local name=$1 port=$2 before after n
	shift 2
	before=$(ticks "$@")
	n=$(wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/echo/" | awk '/requests in/{print $1}')
	after=$(ticks "$@")
	awk -v name="$name" -v n="$n" -v t=$((after - before)) -v hz="$hz" \
		'BEGIN{printf "%s %d %.2f\n", name, n, t / hz * 1e6 / n}'
}
for port in $a_port $b_port $ng_port; do wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$port/echo/" >/dev/null; done
echo "# name requests cpu-us-per-request (rounds of ${secs}s, wrk -t1 -c$conns, nginx workers $workers, access logs $log; B's environment: ${b_env[*]:-none})"
for i in $(seq "$rounds"); do
	case $((i % 3)) in
	1) run A "$a_port" "$a_pid"; run B "$b_port" "$b_pid"; run nginx "$ng_port" $ng_pids ;;
	2) run B "$b_port" "$b_pid"; run nginx "$ng_port" $ng_pids; run A "$a_port" "$a_pid" ;;
	0) run nginx "$ng_port" $ng_pids; run A "$a_port" "$a_pid"; run B "$b_port" "$b_pid" ;;
	esac
done | tee "$work/rounds.txt"
awk '{n[$1]++; r[$1] += $2; c[$1] += $3} END {for (k in n) printf "mean %s: %.0f requests, %.2f us per request\n", k, r[k] / n[k], c[k] / n[k]}' "$work/rounds.txt" | sort
stop
trap - EXIT
rm -rf "$work"
