#!/usr/bin/env bash
# Runs the whole test suite against real services, from a fresh clone or a warm checkout:
#   1. a virtual environment (.venv) with fleetwatch and its test tools,
#   2. PostgreSQL, Mosquitto and InfluxDB: containers when a Docker engine answers, otherwise
#      the local services that scripts/services.sh installs and starts, Kafka with them;
#      Kafka's jars in any case, from which the Kafka tests start clusters of their own,
#   3. lint, type check and pytest (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
log() { printf '[test] %s\n' "$*" >&2; }

scripts/bootstrap.sh
scripts/browser.sh

if [ -z "${FLEETWATCH_DATABASE_URL:-}" ] && ! .venv/bin/python -c \
    'import docker, sys; docker.from_env(timeout=3).ping()' >/dev/null 2>&1; then
  log "no Docker engine: using local services"
  scripts/services.sh up
  eval "$(scripts/services.sh env)"
fi
# Fetched here rather than inside a test's time limit the first time (Java 17 and Maven).
scripts/services.sh kafka-libs >/dev/null

log "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
log "mypy"
.venv/bin/mypy
log "pytest"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
log "finished in $((SECONDS - started))s"
# pytest's 5 means no test ran, which is a failure for this project.
exit $status
