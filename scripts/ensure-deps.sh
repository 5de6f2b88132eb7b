#!/usr/bin/env bash
# ensure-deps.sh PKG... — make sure the named tools are installed.
#
# Each argument is a logical dependency: zookeeper, chromium, docker-compose,
# wrk, h2load (Debian's nghttp2-client), nginx, haproxy, caddy. A missing one is installed from Debian's packages
# with apt-get when we run as root on Debian/Ubuntu; otherwise the script stops
# and says exactly what to install.
set -euo pipefail

missing=()
for dep in "$@"; do
  case "$dep" in
    zookeeper)      [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null || missing+=(zookeeper) ;;
    chromium)       command -v chromium >/dev/null || missing+=(chromium) ;;
    docker-compose) command -v docker-compose >/dev/null || missing+=(docker-compose) ;;
    h2load)         command -v h2load >/dev/null || missing+=(nghttp2-client) ;;
    curl|wrk|nginx|haproxy|caddy)
                    command -v "$dep" >/dev/null || [ -x "/usr/sbin/$dep" ] || missing+=("$dep") ;;
    *) echo "ensure-deps: unknown dependency $dep" >&2; exit 2 ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-deps: installing ${missing[*]} from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Install servers (nginx, haproxy, zookeeper) without starting their system
  # services: the project runs its own instances on loopback ports.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The zookeeper package pulls a JRE through its dependencies; make sure java is there.
  if [[ " ${missing[*]} " == *" zookeeper "* ]] && ! command -v java >/dev/null; then
    apt-get install -y -qq --no-install-recommends default-jre-headless >/dev/null
  fi
  exit 0
fi

echo "ensure-deps: missing ${missing[*]}." >&2
echo "  Install them with: sudo apt-get update && sudo apt-get install ${missing[*]}" >&2
echo "  (ZooKeeper comes from Debian's 'zookeeper' package and needs a Java runtime.)" >&2
exit 1
