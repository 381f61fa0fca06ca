#!/usr/bin/env bash
# Runs the whole fleetwatch system on this machine: broker and both stores, migrations, ingest,
# the dashboard and a simulated fleet feeding it. With a Docker engine it uses compose.yaml;
# otherwise the local services (scripts/services.sh) and the processes run directly here.
# Ctrl-C stops the fleetwatch processes; `scripts/services.sh down` stops the services.
set -euo pipefail
cd "$(dirname "$0")/.."

devices="${FLEETWATCH_DEMO_DEVICES:-300}"
telemetry="${FLEETWATCH_DEMO_TELEMETRY:-60}"
robots="${FLEETWATCH_DEMO_ROBOTS:-5}"
scripts/bootstrap.sh
if docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  [ -f .env ] || cp .env.example .env
  exec docker compose --profile demo up --build
fi

scripts/services.sh up
eval "$(scripts/services.sh env)"
fw=.venv/bin/fleetwatch

# The dashboard reads with credentials of its own, which migrate creates: the PostgreSQL role
# fleetwatch_dashboard (SELECT only; a fresh password each run, migrate sets it again) and an
# InfluxDB read token on the heartbeat buckets, written (0600) beside the services' state.
# Sign-in, audit rows and operator actions go through a second role, fleetwatch_actions,
# granted only those writes.
state_dir="${FLEETWATCH_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/fleetwatch}"
new_password() { .venv/bin/python -c 'import secrets; print(secrets.token_hex(16))'; }
dashboard_env=(
  "FLEETWATCH_DASHBOARD_DATABASE_URL=postgresql://fleetwatch_dashboard:$(new_password)@${FLEETWATCH_DATABASE_URL#*@}"
  "FLEETWATCH_DASHBOARD_ACTIONS_DATABASE_URL=postgresql://fleetwatch_actions:$(new_password)@${FLEETWATCH_DATABASE_URL#*@}"
  "FLEETWATCH_DASHBOARD_INFLUX_TOKEN_FILE=$state_dir/dashboard/influx-read-token"
)
env "${dashboard_env[@]}" "$fw" migrate
# The demo's people, with fresh passwords every run (printed below): demo-admin,
# demo-operator and demo-viewer. A real deployment adds its first admin with
#   fleetwatch users add NAME --email ADDRESS --role admin
demo_users="$("$fw" users demo)"
# The device types the simulated telemetry devices are of (they register themselves).
"$fw" device-types load --demo

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
# Notifications of events (email, SMS, webhook) and the daily and weekly reports.
"$fw" notify & pids+=($!)
# The HTTP API, which also serves the WebSocket boards (seed 003) at /ws/{device_id}.
"$fw" api & pids+=($!)
# Four boards over WebSocket, with tokens demo-admin issues (kept 0600 beside the services'
# state): two ESP32-CAMs, an ESP32 and an ESP32-S3.
mkdir -p "$state_dir"
boards_file="$state_dir/demo-ws-boards"
(umask 077 && : >"$boards_file")
admin_password="$(awk '$1 == "demo-admin" {print $2}' <<<"$demo_users")"
for board in cam-01:ESP32-CAM cam-02:ESP32-CAM board-01:ESP32 board-02:ESP32-S3; do
  serial="${board%%:*}" type="${board#*:}"
  "$fw" devices add "$serial" --type "$type" >/dev/null 2>&1 || true  # kept from an earlier run
  token="$(printf '%s\n' "$admin_password" | "$fw" devices token "$serial" --as demo-admin 2>/dev/null)"
  echo "$serial $type $token" >>"$boards_file"
done
"$fw" simulate-ws --tokens "$boards_file" & pids+=($!)
"$fw" simulate --kind "panel=$devices" --kind "telemetry=$telemetry" --kind "robot=$robots" \
  --speed 1 & pids+=($!)
dashboard="(not part of this version)"
if "$fw" dashboard --help >/dev/null 2>&1; then
  # Without the service's credentials, so nothing but the read-only ones can be used.
  env -u FLEETWATCH_DATABASE_URL -u FLEETWATCH_INFLUX_TOKEN -u FLEETWATCH_DASHBOARD_INFLUX_TOKEN \
    "${dashboard_env[@]}" "$fw" dashboard & pids+=($!)
  dashboard="http://127.0.0.1:${FLEETWATCH_DASHBOARD_PORT:-8501}  (reads as fleetwatch_dashboard, acts as fleetwatch_actions)"
fi

cat <<MSG

fleetwatch is running with a simulated fleet of $devices panels, $telemetry telemetry devices,
$robots robots and 4 WebSocket boards (2 ESP32-CAM, ESP32, ESP32-S3):
  dashboard       $dashboard
                  sign in as one of (username, password; new ones each run):
$(sed 's/^/                    /' <<<"$demo_users")
  InfluxDB        $FLEETWATCH_INFLUX_URL  (org $FLEETWATCH_INFLUX_ORG, user fleetwatch, password fleetwatch-admin, token $FLEETWATCH_INFLUX_TOKEN;
                  the locally built influxd has no web UI: query with 'fleetwatch flux query')
  ingest health   http://127.0.0.1:9108/readyz  and  /metrics
  HTTP API        http://127.0.0.1:${FLEETWATCH_API_PORT:-8600}/docs  (a person's token: fleetwatch users token create NAME --as demo-operator);
                  WebSocket boards at ws://127.0.0.1:${FLEETWATCH_API_PORT:-8600}/ws/{device_id}
  notifications   fleetwatch notify is running; add recipients to the built-in rules' template:
                  .venv/bin/fleetwatch templates edit operators --recipient email:you@example.com --as demo-operator
  PostgreSQL      $FLEETWATCH_DATABASE_URL
  MQTT            mqtt://$FLEETWATCH_MQTT_HOST:$FLEETWATCH_MQTT_PORT (topics under fleet/)
Ctrl-C stops it. In another shell:  eval "\$(scripts/services.sh env)"; .venv/bin/fleetwatch command list
MSG
wait "${pids[@]}"
