#!/usr/bin/env bash
# Runs the whole fleetwatch system on this machine: broker and both stores, migrations, ingest,
# the dashboard and a simulated fleet feeding it. With a Docker engine it uses compose.yaml;
# otherwise the local services (scripts/services.sh) and the processes run directly here.
# Ctrl-C stops the fleetwatch processes; `scripts/services.sh down` stops the services.
set -euo pipefail
cd "$(dirname "$0")/.."

devices="${FLEETWATCH_DEMO_DEVICES:-300}"
scripts/bootstrap.sh
if docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  [ -f .env ] || cp .env.example .env
  exec docker compose --profile demo up --build
fi

scripts/services.sh up
eval "$(scripts/services.sh env)"
fw=.venv/bin/fleetwatch
"$fw" migrate

pids=()
stop() {
  trap - INT TERM
  echo "[run] stopping fleetwatch processes" >&2
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  exit 0
}
trap stop INT TERM

"$fw" ingest & pids+=($!)
# The fleet starts once ingest is subscribed, so not a single boot message goes unseen.
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:${FLEETWATCH_HEALTH_PORT:-9108}/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
"$fw" simulate --devices "$devices" --speed 1 & pids+=($!)
dashboard="(not part of this version)"
if "$fw" dashboard --help >/dev/null 2>&1; then
  "$fw" dashboard & pids+=($!)
  dashboard="http://127.0.0.1:${FLEETWATCH_DASHBOARD_PORT:-8501}"
fi

cat <<MSG

fleetwatch is running with a simulated fleet of $devices panels:
  dashboard       $dashboard
  InfluxDB        $FLEETWATCH_INFLUX_URL  (org $FLEETWATCH_INFLUX_ORG, user fleetwatch, password fleetwatch-admin, token $FLEETWATCH_INFLUX_TOKEN;
                  the locally built influxd has no web UI: query with 'fleetwatch flux query')
  ingest health   http://127.0.0.1:9108/readyz  and  /metrics
  PostgreSQL      $FLEETWATCH_DATABASE_URL
  MQTT            mqtt://$FLEETWATCH_MQTT_HOST:$FLEETWATCH_MQTT_PORT (topics under fleet/)
Ctrl-C stops it. In another shell:  eval "\$(scripts/services.sh env)"; .venv/bin/fleetwatch command list
MSG
wait "${pids[@]}"
