#!/usr/bin/env bash
# Install, start and stop the real services apimirror needs, on loopback, in throwaway dirs.
#   scripts/services.sh install         apt packages + FerretDB binary (cached; built once)
#   scripts/services.sh start           FerretDB + Redis unless MONGODB_URL / REDIS_URL are set
#   scripts/services.sh stop            stop what `start` started (by recorded PID)
#   scripts/services.sh status
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${APIMIRROR_SERVICES_DIR:-$ROOT/.services}"
CACHE="${APIMIRROR_CACHE_DIR:-$HOME/.cache/apimirror}"
FERRETDB_VERSION="v1.24.2"
FERRETDB_BIN="${FERRETDB_BIN:-$CACHE/bin/ferretdb-$FERRETDB_VERSION}"
MONGO_PORT="${APIMIRROR_MONGO_PORT:-27017}"
REDIS_PORT="${APIMIRROR_REDIS_PORT:-6379}"

log() { printf '[services] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_apt() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
  command -v curl >/dev/null || missing+=(curl)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Debian starts these as system services on install; we run our own copies on demand.
  for svc in redis-server prometheus prometheus-alertmanager prometheus-node-exporter; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
      as_root systemctl stop "$svc" || true
    fi
  done
}

install_ferretdb() {
  [ -x "$FERRETDB_BIN" ] && return 0
  command -v go >/dev/null || { log "Go is needed to build FerretDB ($FERRETDB_VERSION)"; exit 1; }
  log "building FerretDB $FERRETDB_VERSION (once; cached at $FERRETDB_BIN)"
  mkdir -p "$CACHE/bin"
  # `go install ...@v1.24.2` builds, but the binary panics at start because the module zip
  # lacks the generated build/version/version.txt. So fetch the same module through the
  # Go proxy, add that one file, and build it exactly as `go install` would.
  local src tmp
  src="$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  tmp="$(mktemp -d)"
  cp -r "$src/." "$tmp/"
  chmod -R u+w "$tmp"
  echo "$FERRETDB_VERSION" >"$tmp/build/version/version.txt"
  (cd "$tmp" && go build -trimpath -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb)
  mv "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
  rm -rf "$tmp"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() {
  local port="$1" name="$2"
  for _ in $(seq 1 100); do port_open "$port" && return 0; sleep 0.1; done
  log "$name did not open port $port; its log:"; tail -20 "$STATE/$name.log" >&2 || true; exit 1
}

start_ferretdb() {
  if [ -n "${MONGODB_URL:-}" ]; then log "MONGODB_URL is set: using that server"; return 0; fi
  if pid_alive "$STATE/ferretdb.pid"; then log "FerretDB already running (pid $(cat "$STATE/ferretdb.pid"))"; return 0; fi
  if port_open "$MONGO_PORT"; then log "port $MONGO_PORT is taken by another server: using it"; return 0; fi
  install_ferretdb
  mkdir -p "$STATE/ferretdb-data"
  nohup "$FERRETDB_BIN" --handler=sqlite --sqlite-url="file:$STATE/ferretdb-data/" \
    --listen-addr="127.0.0.1:$MONGO_PORT" --state-dir="$STATE/ferretdb-data" \
    --telemetry=disable --log-level=warn --debug-addr=- >"$STATE/ferretdb.log" 2>&1 &
  echo $! >"$STATE/ferretdb.pid"
  wait_port "$MONGO_PORT" ferretdb
  log "FerretDB on mongodb://127.0.0.1:$MONGO_PORT/ (pid $(cat "$STATE/ferretdb.pid"))"
}

start_redis() {
  if [ -n "${REDIS_URL:-}" ]; then log "REDIS_URL is set: using that server"; return 0; fi
  if pid_alive "$STATE/redis.pid"; then log "Redis already running (pid $(cat "$STATE/redis.pid"))"; return 0; fi
  if port_open "$REDIS_PORT"; then log "port $REDIS_PORT is taken by another server: using it"; return 0; fi
  mkdir -p "$STATE/redis-data"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$STATE/redis-data" --daemonize yes --pidfile "$STATE/redis.pid" \
    --logfile "$STATE/redis.log" >/dev/null
  wait_port "$REDIS_PORT" redis
  log "Redis on redis://127.0.0.1:$REDIS_PORT/0 (pid $(cat "$STATE/redis.pid"))"
}

stop_one() {
  local name="$1" pidfile="$STATE/$1.pid"
  if pid_alive "$pidfile"; then
    local pid; pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

mkdir -p "$STATE"
case "${1:-}" in
  install) install_apt; install_ferretdb ;;
  start) start_ferretdb; start_redis ;;
  stop) stop_one ferretdb; stop_one redis; rm -rf "$STATE/ferretdb-data" "$STATE/redis-data" ;;
  status)
    for n in ferretdb redis; do
      if pid_alive "$STATE/$n.pid"; then echo "$n: running (pid $(cat "$STATE/$n.pid"))"; else echo "$n: stopped"; fi
    done ;;
  ferretdb-bin) install_ferretdb; echo "$FERRETDB_BIN" ;;
  *) echo "usage: $0 install|start|stop|status|ferretdb-bin" >&2; exit 2 ;;
esac
