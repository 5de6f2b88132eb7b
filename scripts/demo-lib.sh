# demo-lib.sh — what the demo scripts share: messages, the processes they
# start (by PID file under $STATE/pids), port checks, waits, and a local
# ZooKeeper. Sourced by demo.sh and demo-fleet.sh after they set DEMO_NAME,
# STATE, ZK_PORT and ZK_CLASSPATH.

say()  { printf '\033[1m==> %s\033[0m\n' "$*"; }
ok()   { printf '    ok: %s\n' "$*"; }
die()  { printf '%s: %s\n' "$DEMO_NAME" "$*" >&2; exit 1; }

pidfile() { echo "$STATE/pids/$1.pid"; }
alive() { # alive NAME: the process we started is running (zombies count as dead)
  local f; f=$(pidfile "$1"); [ -f "$f" ] || return 1
  local pid; pid=$(cat "$f")
  [ -r "/proc/$pid/stat" ] || return 1
  local st; st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$st" != Z ]
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
need_port() { port_free "$1" || die "port $1 ($2) is already in use on 127.0.0.1; stop what uses it or set $3=<port>"; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${secs}s waiting for $what"
    sleep 0.1
  done
}

zk_serving() { # a "Mode:" line in srvr means the server really serves
  exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" || return 1
  printf 'srvr' >&3
  local out; out=$(timeout 2 cat <&3); exec 3<&-
  grep -q '^Mode:' <<<"$out"
}
start_zk() {
  need_port "$ZK_PORT" ZooKeeper ZK_PORT
  mkdir -p "$STATE/zk/data"
  cat >"$STATE/zk/zoo.cfg" <<CFG
tickTime=500
dataDir=$STATE/zk/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
minSessionTimeout=1000
maxSessionTimeout=60000
CFG
  java -Xmx256m -XX:+UseSerialGC -Dzookeeper.log.dir="$STATE/zk" -cp "$ZK_CLASSPATH" \
    org.apache.zookeeper.server.ZooKeeperServerMain "$STATE/zk/zoo.cfg" >"$STATE/logs/zookeeper.log" 2>&1 &
  echo $! >"$(pidfile zookeeper)"
  wait_for 60 "ZooKeeper on 127.0.0.1:$ZK_PORT (log: $STATE/logs/zookeeper.log)" zk_serving
  ok "ZooKeeper serving on 127.0.0.1:$ZK_PORT"
}

stop_process() { # stop_process NAME [SIGNAL]: signal the PID we started, wait until it is gone
  local name=$1 sig=${2:-TERM} f; f=$(pidfile "$name")
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if alive "$name"; then
    kill "-$sig" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while alive "$name" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    alive "$name" && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}
