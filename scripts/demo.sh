#!/usr/bin/env bash
# Run the whole main job locally: services, upstream simulator, API, worker, beat, Prometheus.
#   scripts/demo.sh             foreground; Ctrl-C stops everything it started
#   scripts/demo.sh --detach    start in the background, return once the API is ready
#   scripts/demo.sh --stop      stop a detached (or orphaned) demo
# UPSTREAM=live uses the real Open-Meteo instead of the simulator.
# APIMIRROR_REFRESH_INTERVAL (default 60 s here, 900 s in production) sets the refresh cycle.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="$ROOT/.demo"
API_PORT=8000 SIM_PORT=8081 WORKER_METRICS=9101 BEAT_METRICS=9102 PROM_PORT=9090
PROCS=(prometheus beat worker api upstream-sim)

say() { printf '[demo] %s\n' "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive() { [ -f "$DEMO/$1.pid" ] && kill -0 "$(cat "$DEMO/$1.pid")" 2>/dev/null; }

running() {
  local name
  for name in "${PROCS[@]}"; do alive "$name" && return 0; done
  return 1
}

stop_one() {
  local name="$1" pid
  [ -f "$DEMO/$name.pid" ] || return 0
  pid="$(cat "$DEMO/$name.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    # Each process leads its own group (setsid), so this reaches uv, python and Celery's children.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    say "stopped $name (pid $pid)"
  fi
  rm -f "$DEMO/$name.pid"
}

stop_all() {
  local name
  for name in "${PROCS[@]}"; do stop_one "$name"; done
}

start() {
  local name="$1"; shift
  setsid "$@" >"$DEMO/$name.log" 2>&1 < /dev/null &
  echo $! >"$DEMO/$name.pid"
}

wait_http() {
  local url="$1" name="$2"
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    alive "$name" || break
    sleep 0.2
  done
  say "$name did not become ready at $url; the end of .demo/$name.log:"
  tail -20 "$DEMO/$name.log" >&2 || true
  stop_all
  exit 1
}

seed() {
  local spec name lat lon
  for spec in "Berlin 52.52 13.41" "Paris 48.85 2.35" "Lisbon 38.72 -9.14" \
              "New-York 40.71 -74.01" "Tokyo 35.68 139.69"; do
    read -r name lat lon <<<"$spec"
    curl -sS -o /dev/null -X POST "http://127.0.0.1:$API_PORT/api/v1/locations" \
      -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
      -d "{\"name\":\"$name\",\"latitude\":$lat,\"longitude\":$lon,\"tags\":[\"demo\"]}" || true
  done
  # Refresh once now rather than one interval after start (it spends from the same budget).
  curl -sS -o /dev/null -X POST "http://127.0.0.1:$API_PORT/api/v1/sources/openmeteo/refresh" \
    -H "Authorization: Bearer $TOKEN" || true
}

case "${1:-}" in
  --stop)
    if running; then stop_all; say "demo stopped"; else say "no demo is running"; fi
    exit 0 ;;
  --detach) MODE=detach ;;
  "") MODE=foreground ;;
  *) echo "usage: $0 [--detach|--stop]" >&2; exit 2 ;;
esac

cd "$ROOT"
mkdir -p "$DEMO"
if running; then
  say "a demo is already running (pids in $DEMO). Stop it with 'make demo-stop' first."
  exit 1
fi
for port in $API_PORT $WORKER_METRICS $BEAT_METRICS; do
  if port_open "$port"; then say "port $port is already in use by another program; the demo needs it."; exit 1; fi
done

[ "$MODE" = foreground ] && trap 'echo; stop_all; exit 0' INT TERM
scripts/services.sh start
uv sync --frozen --quiet

export APIMIRROR_ENV="${APIMIRROR_ENV:-development}"
export APIMIRROR_REFRESH_INTERVAL="${APIMIRROR_REFRESH_INTERVAL:-60}"
export APIMIRROR_MULTIPROC_ROOT="$DEMO/metrics"
export APIMIRROR_REDIS_PREFIX="${APIMIRROR_REDIS_PREFIX:-apimirror-demo}"
export MONGODB_DB="${MONGODB_DB:-apimirror_demo}"
if [ -n "${APIMIRROR_API_TOKENS:-}" ]; then
  TOKEN="${APIMIRROR_API_TOKENS%%,*}"
else
  TOKEN="$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"
  export APIMIRROR_API_TOKENS="$TOKEN"
fi

APP=("$ROOT/.venv/bin/python" -m apimirror.cli)
if [ "${UPSTREAM:-sim}" = live ]; then
  export APIMIRROR_UPSTREAM_BASE_URL="https://api.open-meteo.com"
  PROCS=(prometheus beat worker api)
else
  if port_open "$SIM_PORT"; then say "port $SIM_PORT is already in use by another program; the demo needs it."; exit 1; fi
  export APIMIRROR_UPSTREAM_BASE_URL="http://127.0.0.1:$SIM_PORT"
  start upstream-sim "${APP[@]}" upstream-sim --port "$SIM_PORT"
  wait_http "http://127.0.0.1:$SIM_PORT/healthz" upstream-sim
fi

start api "${APP[@]}" api --port "$API_PORT"
wait_http "http://127.0.0.1:$API_PORT/readyz" api
start worker "${APP[@]}" worker --concurrency 2 --metrics-port "$WORKER_METRICS"
start beat "${APP[@]}" beat --metrics-port "$BEAT_METRICS"
wait_http "http://127.0.0.1:$WORKER_METRICS/metrics" worker
wait_http "http://127.0.0.1:$BEAT_METRICS/metrics" beat

PROM_URL="(not started: Prometheus is not installed)"
if command -v prometheus >/dev/null && [ -f "$ROOT/deploy/prometheus/prometheus.local.yml" ]; then
  if port_open "$PROM_PORT"; then
    PROM_URL="(not started: port $PROM_PORT is in use)"
  else
    start prometheus prometheus --config.file="$ROOT/deploy/prometheus/prometheus.local.yml" \
      --storage.tsdb.path="$DEMO/prometheus" --web.listen-address="127.0.0.1:$PROM_PORT"
    wait_http "http://127.0.0.1:$PROM_PORT/-/ready" prometheus
    PROM_URL="http://127.0.0.1:$PROM_PORT"
  fi
fi

seed
FIRST="$(curl -fsS "http://127.0.0.1:$API_PORT/api/v1/locations?limit=1" | sed -n 's/.*"id":"\([0-9a-f]\{24\}\)".*/\1/p')"
cat <<EOF

apimirror demo is running (upstream: ${UPSTREAM:-simulator}).
  API            http://127.0.0.1:$API_PORT/api/v1/locations   (docs: http://127.0.0.1:$API_PORT/docs)
  current data   http://127.0.0.1:$API_PORT/api/v1/locations/$FIRST/current
  sources        http://127.0.0.1:$API_PORT/api/v1/sources
  API metrics    http://127.0.0.1:$API_PORT/metrics
  worker metrics http://127.0.0.1:$WORKER_METRICS/metrics
  beat metrics   http://127.0.0.1:$BEAT_METRICS/metrics
  Prometheus     $PROM_URL
  write token    $TOKEN
The first refresh was queued at start-up; then refreshes run every ${APIMIRROR_REFRESH_INTERVAL}s
in the demo (production default: 900 s). Logs: $DEMO/*.log
EOF
[ "${UPSTREAM:-sim}" = live ] || echo "  simulator      http://127.0.0.1:$SIM_PORT/admin/faults  (fault switches; stats at /admin/stats)"

if [ "$MODE" = detach ]; then
  say "detached; stop with 'make demo-stop'"
  exit 0
fi
say "press Ctrl-C to stop"
while true; do
  for name in "${PROCS[@]}"; do
    if [ -f "$DEMO/$name.pid" ] && ! alive "$name"; then
      say "$name exited; the end of .demo/$name.log:"; tail -20 "$DEMO/$name.log" >&2 || true
      stop_all; exit 1
    fi
  done
  sleep 1
done
