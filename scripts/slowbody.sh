#!/usr/bin/env bash
# slowbody.sh [BODY_BYTES] — slow request bodies through zkgate (issue 15,
# class 6): 300 clients (slowhttptest -B) announce a body of BODY_BYTES
# (default 8192) and send it a byte every 2 s. Every 2 s it prints how many
# connections the backend holds and how long a normal GET takes. A body of up
# to 64 KiB is read whole by the gateway before a backend is contacted, so the
# backend should hold only the normal GETs' keep-alive connection; a larger
# one is streamed and must be cut at body_timeout (30 s). Everything runs on
# loopback, is bounded (40 s of attack) and stops by itself; it ends only the
# processes it started.
#
# Needs: make build, Debian's zookeeper and slowhttptest.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BODY=${1:-8192}
STATE=$(mktemp -d)
ZK_PORT=${ZK_PORT:-2199} GW_PORT=${GW_PORT:-18080} ADMIN_PORT=${ADMIN_PORT:-19901} BE_PORT=${BE_PORT:-19300}
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$STATE"
}
trap cleanup EXIT
command -v slowhttptest >/dev/null || { echo "slowbody: install slowhttptest (apt-get install slowhttptest)" >&2; exit 1; }

cat >"$STATE/zoo.cfg" <<CFG
tickTime=2000
dataDir=$STATE/zk
clientPort=$ZK_PORT
admin.enableServer=false
4lw.commands.whitelist=srvr
CFG
java -Xmx256m -XX:+UseSerialGC -Dzookeeper.log.dir="$STATE" -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
	org.apache.zookeeper.server.ZooKeeperServerMain "$STATE/zoo.cfg" >"$STATE/zk.log" 2>&1 &
pids+=($!)
"$ROOT/bin/echo-backend" --listen "127.0.0.1:$BE_PORT" --zookeeper "" >"$STATE/backend.log" 2>&1 &
pids+=($!)
cat >"$STATE/gateway.yaml" <<CFG
entry_points: { web: { address: "127.0.0.1:$GW_PORT" } }
admin: { address: "127.0.0.1:$ADMIN_PORT" }
zookeeper: { servers: ["127.0.0.1:$ZK_PORT"] }
log: { access_log: { enabled: false } }
routes: [{ name: echo, match: { path_prefix: / }, service: echo, balancer: round_robin }]
services: { echo: { discovery: { static: { endpoints: ["127.0.0.1:$BE_PORT"] } } } }
CFG
"$ROOT/bin/zkgate" serve --config "$STATE/gateway.yaml" >"$STATE/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
	curl -s -m 1 -o /dev/null "http://127.0.0.1:$GW_PORT/" && break
	sleep 0.2
done
curl -sf -m 2 -o /dev/null "http://127.0.0.1:$GW_PORT/" || { echo "slowbody: the gateway does not answer" >&2; cat "$STATE/gateway.log" >&2; exit 1; }

slowhttptest -B -c 300 -r 300 -i 2 -s "$BODY" -x 1 -t POST -u "http://127.0.0.1:$GW_PORT/x" -l 40 -p 3 \
	>"$STATE/slowhttptest.out" 2>&1 &
attack=$!
most=0
for i in $(seq 1 20); do
	sleep 2
	n=$(ss -Htn state established "( sport = :$BE_PORT )" | wc -l)
	t=$(curl -s -m 5 -o /dev/null -w '%{time_total}' "http://127.0.0.1:$GW_PORT/x" || echo failed)
	echo "t=$((i * 2))s backend connections=$n normal GET=${t}s"
	[ "$n" -gt "$most" ] && most=$n
done
wait "$attack" || true
echo "body of $BODY bytes: at most $most backend connections during the attack"
