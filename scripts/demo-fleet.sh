#!/usr/bin/env bash
# demo-fleet.sh — fleet mode as local processes: ZooKeeper, three gateways
# whose routes and services are kept in ZooKeeper, and one echo backend.
#
#   scripts/demo-fleet.sh           start everything, print what to try, Ctrl-C stops it all
#   scripts/demo-fleet.sh --smoke   the whole story non-interactively; exits non-zero on any failure
#
# Ports (override with env): ZK_PORT=2191, gateway i (1..3) proxies on
# GATEWAY_BASE_PORT+i (8180) and serves its admin on ADMIN_BASE_PORT+i (9910);
# the backend listens on BACKEND_PORT (9190). The admin token is TOKEN
# (demo-token).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${DEMO_STATE:-$ROOT/.demo-fleet}
BIN=$ROOT/bin
ZK_PORT=${ZK_PORT:-2191}
GATEWAY_BASE_PORT=${GATEWAY_BASE_PORT:-8180}
ADMIN_BASE_PORT=${ADMIN_BASE_PORT:-9910}
BACKEND_PORT=${BACKEND_PORT:-9190}
TOKEN=${TOKEN:-demo-token}
ZK_CLASSPATH=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar
DEMO_NAME=demo-fleet
# shellcheck source=scripts/demo-lib.sh
. "$ROOT/scripts/demo-lib.sh"

proxy() { echo "http://127.0.0.1:$((GATEWAY_BASE_PORT + $1))"; }
admin() { echo "http://127.0.0.1:$((ADMIN_BASE_PORT + $1))"; }
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$(admin "$1")/readyz")" = 200 ]; }
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
api() { # api METHOD GATEWAY PATH [BODY]: an admin call with the token; prints the status, then the body
  local body=${4:-}
  curl -s -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" --data-binary "$body" "$(admin "$2")$3"
}

start_gateway() { # start_gateway I: a fleet gateway named gw-I; its file holds only static settings
  local i=$1 pp=$((GATEWAY_BASE_PORT + $1)) ap=$((ADMIN_BASE_PORT + $1))
  need_port "$pp" "gw-$i proxy" GATEWAY_BASE_PORT
  need_port "$ap" "gw-$i admin" ADMIN_BASE_PORT
  cat >"$STATE/gw-$i.yaml" <<CFG
entry_points: { web: { address: "127.0.0.1:$pp" } }
admin: { address: "127.0.0.1:$ap", token: "$TOKEN" }
log: { format: text, access_log: { enabled: false } }
shutdown: { drain_delay: 0s }
zookeeper: { servers: ["127.0.0.1:$ZK_PORT"], session_timeout: 4s, snapshot_file: "$STATE/gw-$i.membership.json" }
fleet: { enabled: true, name: gw-$i }
CFG
  "$BIN/zkgate" serve --config "$STATE/gw-$i.yaml" 2>"$STATE/logs/gw-$i.log" &
  echo $! >"$(pidfile "gw-$i")"
  wait_for 30 "gw-$i to be ready (log: $STATE/logs/gw-$i.log)" ready "$i"
  ok "gw-$i: proxy $(proxy "$i"), admin $(admin "$i")/"
}

start_backend() {
  need_port "$BACKEND_PORT" backend BACKEND_PORT
  "$BIN/echo-backend" --listen "127.0.0.1:$BACKEND_PORT" --advertise "127.0.0.1:$BACKEND_PORT" --id backend-1 \
    --zookeeper "127.0.0.1:$ZK_PORT" --path /services/echo --session-timeout 4s --drain 1s >"$STATE/logs/backend-1.log" 2>&1 &
  echo $! >"$(pidfile backend-1)"
  wait_for 20 "backend-1 to listen (log: $STATE/logs/backend-1.log)" curl -sf "http://127.0.0.1:$BACKEND_PORT/healthz"
  ok "backend-1 on 127.0.0.1:$BACKEND_PORT, registered at /services/echo"
}

down() {
  stop_process backend-1
  for i in 1 2 3; do stop_process "gw-$i"; done
  stop_process zookeeper
}

up() {
  [ -x "$BIN/zkgate" ] && [ -x "$BIN/echo-backend" ] || die "binaries missing in $BIN: run 'make build' (or 'make demo-fleet')"
  "$ROOT/scripts/ensure-deps.sh" zookeeper
  "$ROOT/scripts/ensure-deps.sh" curl
  if [ -d "$STATE/pids" ] && ls "$STATE"/pids/*.pid >/dev/null 2>&1; then
    for f in "$STATE"/pids/*.pid; do alive "$(basename "$f" .pid)" && die "a fleet demo is already running; stop it with Ctrl-C in its terminal"; done
  fi
  rm -rf "$STATE"; mkdir -p "$STATE/pids" "$STATE/logs"
  trap down EXIT
  say "starting ZooKeeper, one backend and three fleet gateways (state and logs in $STATE)"
  start_zk
  start_backend
  for i in 1 2 3; do start_gateway "$i"; done
}

served_by_all() { # served_by_all PATH: every gateway answers 200
  local i
  for i in 1 2 3; do [ "$(status "$(proxy "$i")$1")" = 200 ] || return 1; done
}

smoke() {
  up
  local out code
  say "1. a route and its service written through gw-1, in one transaction"
  out=$(api PUT 1 /api/routes/echo '{"route": {"service": "echo", "match": {"path_prefix": "/echo"}, "strip_prefix": true},
    "service": {"discovery": {"zookeeper": {"path": "/services/echo"}}}}')
  code=${out##*$'\n'}
  [ "$code" = 200 ] || die "PUT /api/routes/echo answered $code: $out"
  wait_for 10 "the route to be served by all three gateways" served_by_all /echo/
  ok "served by gw-1, gw-2 and gw-3: $(curl -s "$(proxy 3)/echo/hello" | tr -d '\n ' | head -c 80)"

  say "2. a bad write is refused, nothing written"
  out=$(api PUT 2 /api/routes/bad '{"service": "echo", "match": {"path_prefix": "bad"}}')
  code=${out##*$'\n'}
  [ "$code" = 400 ] || die "a bad route answered $code: $out"
  grep -q 'routes/bad: match.path_prefix' <<<"$out" || die "the refusal does not name the znode and key: $out"
  api GET 3 /api/fleet | grep -q '/routes/bad"' && die "the refused route was written"
  ok "400: $(sed -n 's/.*"error": "\(.*\)"$/\1/p' <<<"$out" | head -c 160)"

  say "3. zkgate config push, then pull"
  cat >"$STATE/routes.yaml" <<'YAML'
routes:
  - { name: echo, service: echo, match: { path_prefix: /echo }, strip_prefix: true }
  - { name: api, service: echo, match: { path_prefix: /api, methods: [GET] }, timeout: 5s }
services:
  echo: { discovery: { zookeeper: { path: /services/echo } } }
YAML
  "$BIN/zkgate" config push --config "$STATE/gw-1.yaml" "$STATE/routes.yaml" || die "config push failed"
  wait_for 10 "the pushed api route to be served by all three gateways" served_by_all /api/x
  "$BIN/zkgate" config pull --config "$STATE/gw-2.yaml" -o "$STATE/pulled.yaml" || die "config pull failed"
  "$BIN/zkgate" validate --config "$STATE/pulled.yaml" >/dev/null || die "the pulled file does not validate"
  ok "pushed, served everywhere; pulled into $STATE/pulled.yaml ($(grep -c 'name:' "$STATE/pulled.yaml") routes)"

  say "4. the fleet as one gateway sees it"
  out=$(curl -s -H "Authorization: Bearer $TOKEN" "$(admin 3)/api/fleet")
  [ "$(grep -o '"behind": false' <<<"$out" | wc -l)" = 3 ] || die "want three gateways on one version: $out"
  ok "three gateways announced, none behind"
  say "fleet demo smoke passed"
}

interactive() {
  up
  cat <<EOF

Three gateways, no routes yet. Try:

  curl -s -X PUT -H 'Authorization: Bearer $TOKEN' $(admin 1)/api/routes/echo \\
    -d '{"route": {"service": "echo", "match": {"path_prefix": "/echo"}}, "service": {}}'
  curl -s $(proxy 2)/echo/hello                         # served by another gateway
  curl -s -H 'Authorization: Bearer $TOKEN' $(admin 3)/api/fleet
  $BIN/zkgate config pull --config $STATE/gw-1.yaml

Ctrl-C stops everything.
EOF
  while alive gw-1; do sleep 1; done
}

case ${1:-} in
  --smoke) smoke ;;
  "") interactive ;;
  *) die "unknown argument '$1' (usage: scripts/demo-fleet.sh [--smoke])" ;;
esac
