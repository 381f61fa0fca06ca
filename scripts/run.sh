#!/usr/bin/env bash
# Runs fleetwatch on this machine: the broker and both stores (Docker engine: compose.yaml;
# otherwise the local services), migrations, then every fleetwatch process this checkout has.
# Ctrl-C stops the fleetwatch processes; `scripts/services.sh down` stops the services.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
if docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  exec docker compose up --build
fi
scripts/services.sh up
eval "$(scripts/services.sh env)"
.venv/bin/fleetwatch check
cat <<MSG

fleetwatch services are up:
  PostgreSQL  $FLEETWATCH_DATABASE_URL
  MQTT        mqtt://$FLEETWATCH_MQTT_HOST:$FLEETWATCH_MQTT_PORT (topics under ${FLEETWATCH_TOPIC_PREFIX:-fleet}/)
  InfluxDB    $FLEETWATCH_INFLUX_URL  (org $FLEETWATCH_INFLUX_ORG, token $FLEETWATCH_INFLUX_TOKEN)
Export the same settings in your shell with:  eval "\$(scripts/services.sh env)"
MSG
