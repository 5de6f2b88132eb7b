#!/usr/bin/env bash
# demo.sh — zkgate's demo as local processes: ZooKeeper, the gateway and echo
# backends that register themselves. No Docker needed.
#
#   scripts/demo.sh            start everything, print what to try, Ctrl-C stops it all
#   scripts/demo.sh scale N    (while a demo runs) start or gracefully stop backends to have N
#   scripts/demo.sh kill I     (while a demo runs) kill -9 backend I
#   scripts/demo.sh status     list the demo's processes
#   scripts/demo.sh --smoke    the whole story non-interactively; exits non-zero on any failure
#
# Ports (override with env): ZK_PORT=2181 GATEWAY_PORT=8080 ADMIN_PORT=9901
# BACKEND_BASE_PORT=9000 (backend i listens on BACKEND_BASE_PORT+i).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${DEMO_STATE:-$ROOT/.demo}
BIN=$ROOT/bin
ZK_PORT=${ZK_PORT:-2181}
GATEWAY_PORT=${GATEWAY_PORT:-8080}
ADMIN_PORT=${ADMIN_PORT:-9901}
BACKEND_BASE_PORT=${BACKEND_BASE_PORT:-9000}
SESSION_TIMEOUT=${SESSION_TIMEOUT:-4s}
ZK_CLASSPATH=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar
DEMO_NAME=demo
# shellcheck source=scripts/demo-lib.sh
. "$ROOT/scripts/demo-lib.sh"

ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/readyz")" = 200 ]; }

start_gateway() {
  need_port "$GATEWAY_PORT" "gateway proxy" GATEWAY_PORT
  need_port "$ADMIN_PORT" "gateway admin" ADMIN_PORT
  ZKGATE_ZOOKEEPER_SERVERS=127.0.0.1:$ZK_PORT \
  ZKGATE_ENTRY_POINTS_WEB_ADDRESS=127.0.0.1:$GATEWAY_PORT \
  ZKGATE_ADMIN_ADDRESS=127.0.0.1:$ADMIN_PORT \
  ZKGATE_LOG_FORMAT=text ZKGATE_SHUTDOWN_DRAIN_DELAY=1s \
  ZKGATE_ZOOKEEPER_SNAPSHOT_FILE="$STATE/membership.json" \
    "$BIN/zkgate" serve --config "$ROOT/configs/gateway.yaml" >"$STATE/logs/access.log" 2>"$STATE/logs/gateway.log" &
  echo $! >"$(pidfile gateway)"
  wait_for 30 "the gateway to be ready (log: $STATE/logs/gateway.log)" ready
  ok "gateway on http://127.0.0.1:$GATEWAY_PORT, admin on http://127.0.0.1:$ADMIN_PORT/"
}

backend_weight() { case $1 in 1) echo 3 ;; 2) echo 2 ;; *) echo 1 ;; esac; }

start_backend() {
  local i=$1 port=$((BACKEND_BASE_PORT + $1))
  need_port "$port" "backend-$i" BACKEND_BASE_PORT
  "$BIN/echo-backend" --listen "127.0.0.1:$port" --advertise "127.0.0.1:$port" --id "backend-$i" \
    --zookeeper "127.0.0.1:$ZK_PORT" --path /services/echo --weight "$(backend_weight "$i")" \
    --session-timeout "$SESSION_TIMEOUT" --drain 1s >"$STATE/logs/backend-$i.log" 2>&1 &
  echo $! >"$(pidfile "backend-$i")"
  disown $!  # its end (kill -9 included) is ours to report, not the shell's
  wait_for 20 "backend-$i to listen (log: $STATE/logs/backend-$i.log)" curl -sf "http://127.0.0.1:$port/healthz"
  ok "backend-$i on 127.0.0.1:$port (weight $(backend_weight "$i"))"
}

running_backends() { local f; for f in "$STATE"/pids/backend-*.pid; do [ -e "$f" ] || continue; basename "$f" .pid | sed 's/backend-//'; done | sort -n; }

scale() {
  local want=$1 have i
  [[ $want =~ ^[0-9]+$ ]] || die "scale: want a number of backends, got '$want'"
  have=$(running_backends | wc -l)
  if [ "$want" -gt "$have" ]; then
    i=0
    while [ "$(running_backends | wc -l)" -lt "$want" ]; do
      i=$((i + 1)); [ -f "$(pidfile "backend-$i")" ] || start_backend "$i"
    done
  else
    for i in $(running_backends | sort -rn | head -n $((have - want))); do
      stop_process "backend-$i" TERM
      ok "backend-$i stopped gracefully (SIGTERM: deregister, drain, exit)"
    done
  fi
}

kill_backend() {
  local i=$1 f; f=$(pidfile "backend-$i")
  [ -f "$f" ] || die "kill: backend-$i is not running (running: $(running_backends | tr '\n' ' '))"
  kill -KILL "$(cat "$f")"; rm -f "$f"
  ok "backend-$i killed with SIGKILL (its znode lives until its ${SESSION_TIMEOUT} session expires)"
}

down() {
  local i
  for i in $(running_backends); do stop_process "backend-$i" TERM; done
  stop_process gateway TERM
  stop_process zookeeper TERM
}

up() {
  [ -x "$BIN/zkgate" ] && [ -x "$BIN/echo-backend" ] && [ -x "$BIN/loadgen" ] || die "binaries missing in $BIN: run 'make build' (or 'make demo')"
  "$ROOT/scripts/ensure-deps.sh" zookeeper
  "$ROOT/scripts/ensure-deps.sh" curl
  if [ -d "$STATE/pids" ] && ls "$STATE"/pids/*.pid >/dev/null 2>&1; then
    for f in "$STATE"/pids/*.pid; do alive "$(basename "$f" .pid)" && die "a demo is already running (scripts/demo.sh status); stop it with Ctrl-C in its terminal"; done
  fi
  rm -rf "$STATE"; mkdir -p "$STATE/pids" "$STATE/logs"
  trap down EXIT
  say "starting ZooKeeper, the gateway and three backends (state and logs in $STATE)"
  start_zk
  start_gateway
  for i in 1 2 3; do start_backend "$i"; done
  # A backend answers before the gateway has seen its znode: wait until the
  # gateway routes to all three, so that the first requests find them.
  wait_for 20 "the gateway to route to three healthy backends" routed 3
  ok "the gateway routes to three healthy backends"
}

routed() { # routed N: the gateway's admin API counts N healthy endpoints of the echo service
  curl -sf "http://127.0.0.1:$ADMIN_PORT/api/services/echo" | grep -Eq "\"healthy\": ?$1[,}]"
}

load() { # load SECONDS [extra loadgen flags]: steady GET and 20 KB POST load through the gateway, the echoes checked
  local secs=$1; shift
  "$BIN/loadgen" -url "http://127.0.0.1:$GATEWAY_PORT/echo/" -rate 200 -duration "${secs}s" -post-every 3 -post-bytes 20000 "$@"
}

smoke() {
  up
  local out
  say "1. requests spread over three backends"
  out=$(load 3) || die "requests failed: $out"
  echo "    $out"
  for i in 1 2 3; do grep -q "backend-$i=" <<<"$out" || die "backend-$i received no traffic"; done
  ok "all three backends answered, no request failed"

  say "2. scale up to five while traffic flows"
  load 6 >"$STATE/load2.out" & local lp=$!
  sleep 1; scale 5
  wait $lp || die "requests failed while scaling up: $(cat "$STATE/load2.out")"
  out=$(cat "$STATE/load2.out"); echo "    $out"
  for i in 4 5; do grep -q "backend-$i=" <<<"$out" || die "new backend-$i received no traffic"; done
  ok "backend-4 and backend-5 received traffic without a gateway restart"

  say "3. scale down to two with SIGTERM while traffic flows"
  load 8 >"$STATE/load3.out" & lp=$!
  sleep 1; scale 2
  wait $lp || die "requests failed while scaling down: $(cat "$STATE/load3.out")"
  echo "    $(cat "$STATE/load3.out")"
  ok "no request failed during the graceful scale-down"

  say "4. kill -9 one of the two remaining backends while traffic flows"
  load 6 >"$STATE/load4.out" & lp=$!
  sleep 1; kill_backend 2
  wait $lp || die "requests failed after kill -9: $(cat "$STATE/load4.out")"
  echo "    $(cat "$STATE/load4.out")"
  ok "the gateway kept answering: failed connections were retried on backend-1"

  say "smoke run passed"
}

tips() {
  cat <<TXT

zkgate demo is running. Try, in another terminal:

  for i in \$(seq 20); do curl -s 127.0.0.1:$GATEWAY_PORT/echo/ | grep instance; done
  open http://127.0.0.1:$ADMIN_PORT/                 # live status page
  curl -s 127.0.0.1:$ADMIN_PORT/api/services/echo    # what the gateway sees
  scripts/demo.sh scale 5                            # two more backends, no gateway restart
  scripts/demo.sh scale 2                            # graceful scale-down (SIGTERM)
  scripts/demo.sh kill 1                             # kill -9 backend-1
  curl -s 127.0.0.1:$((BACKEND_BASE_PORT + 2))/fail  # backend-2, the one left, fails its health check
  cat $STATE/membership.json                         # the membership snapshot a restart during a ZooKeeper outage routes from

Logs are in $STATE/logs: gateway.log (what the gateway does), access.log (one JSON
line per request), zookeeper.log, backend-N.log. Press Ctrl-C to stop everything.
TXT
}

case "${1:-up}" in
  up)      up; tips; trap 'exit 0' INT TERM; while alive gateway; do sleep 1; done; die "the gateway exited; see $STATE/logs/gateway.log" ;;
  --smoke|smoke) smoke ;;
  scale)   [ $# -eq 2 ] || die "usage: scripts/demo.sh scale N"; alive gateway || die "no demo is running"; scale "$2" ;;
  kill)    [ $# -eq 2 ] || die "usage: scripts/demo.sh kill I"; kill_backend "$2" ;;
  status)  for f in "$STATE"/pids/*.pid; do [ -e "$f" ] || continue; n=$(basename "$f" .pid); if alive "$n"; then echo "$n pid $(cat "$f") running"; else echo "$n pid $(cat "$f") gone"; fi; done ;;
  *)       sed -n '2,12p' "$0"; exit 2 ;;
esac
