#!/usr/bin/env bash
# Local PostgreSQL, Mosquitto, InfluxDB 2.x and Kafka for development and tests on a Debian
# machine without a Docker engine. Everything listens on loopback only.
#
#   scripts/services.sh up          install (if needed), start and initialise all four
#   scripts/services.sh down        stop them
#   scripts/services.sh status      say which are reachable
#   scripts/services.sh env         print the FLEETWATCH_* settings that point at them
#   scripts/services.sh influxd     only build (or reuse) the influxd binary, print its path
#   scripts/services.sh kafka-libs  only fetch (or reuse) Kafka's jars, print their directory
#   scripts/services.sh pid NAME    print the process id of a running service (influxdb,
#                                   mosquitto, kafka)
#
# influxd is built from its Go module source once and cached outside the repository,
# keyed by version and by the corrections in scripts/influxd-patches; later runs reuse the
# cached binary. Kafka's jars come from Maven Central through Maven (scripts/kafka/pom.xml
# names the version) and are cached the same way, keyed by version and by that pom.
set -euo pipefail

# v2.7.12 is the newest 2.x whose whole dependency tree the module proxy serves (v2.10.0
# needs flux v0.201.0, which the proxy refuses with 403).
INFLUXDB_VERSION="${FLEETWATCH_INFLUXDB_VERSION:-v2.7.12}"
PG_PORT="${FLEETWATCH_PG_PORT:-5432}"
MQTT_PORT="${FLEETWATCH_MQTT_BROKER_PORT:-1883}"
INFLUX_PORT="${FLEETWATCH_INFLUX_PORT:-8086}"
KAFKA_PORT="${FLEETWATCH_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${FLEETWATCH_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
PG_CLUSTER="fleetwatch"
PG_USER="fleetwatch"
PG_PASSWORD="${FLEETWATCH_PG_PASSWORD:-fleetwatch}"
PG_DB="fleetwatch"
INFLUX_ORG="fleetwatch"
INFLUX_BUCKET="heartbeats"
INFLUX_TOKEN="${FLEETWATCH_INFLUX_TOKEN:-fleetwatch-operator-token}"
INFLUX_USER="fleetwatch"
INFLUX_PASSWORD="${FLEETWATCH_INFLUX_PASSWORD:-fleetwatch-admin}"

CACHE_DIR="${FLEETWATCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetwatch}"
STATE_DIR="${FLEETWATCH_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/fleetwatch}"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATCH_DIR="$SCRIPT_DIR/influxd-patches"
# The corrections applied to the module source before building (see each file's header).
# Their digest is part of the cache key, so a binary built without them is never reused.
patches_digest() { cat "$PATCH_DIR"/*.patch | sha256sum | cut -c1-12; }
INFLUXD_BIN="$CACHE_DIR/influxd-$INFLUXDB_VERSION-$(patches_digest)/influxd"
KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")"
KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION-$(sha256sum <"$KAFKA_POM" | cut -c1-12)"
KAFKA_LIBS="$KAFKA_HOME/libs"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  # policy-rc.d keeps the packages from starting their own default instances.
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  as_root rm -f /usr/sbin/policy-rc.d
}

wait_for() {  # wait_for NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && die "$name did not become ready within ${limit}s"
    sleep 0.5
  done
}

# --- InfluxDB build ------------------------------------------------------------------------

build_influxd() {
  if [ -x "$INFLUXD_BIN" ]; then
    log "influxd $INFLUXDB_VERSION: cached binary reused"
    return 0
  fi
  command -v go >/dev/null || die "Go is required to build influxd"
  command -v cargo >/dev/null || die "Rust (cargo) is required to build Flux for influxd"
  apt_install build-essential pkg-config clang patch
  local started=$SECONDS work
  work="$(mktemp -d "${TMPDIR:-/tmp}/influxd-build.XXXXXX")"
  # shellcheck disable=SC2064 # expand now: $work is local
  trap "rm -rf '$work'" EXIT
  log "building influxd $INFLUXDB_VERSION from its Go module source (cold build: several minutes)"
  # The module may ask for a newer Go than the local one; GOTOOLCHAIN=auto fetches that
  # toolchain through the module proxy instead of failing.
  export GOTOOLCHAIN="${GOTOOLCHAIN_OVERRIDE:-auto}" GOFLAGS=-mod=mod
  local src
  src="$(cd "$work" && go mod download -json "github.com/influxdata/influxdb/v2@$INFLUXDB_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -d "$src" ] || die "could not download github.com/influxdata/influxdb/v2@$INFLUXDB_VERSION"
  # The module cache is read-only and the module's go.mod carries a replace directive, so
  # it is built in a writable copy rather than with 'go install module@version'.
  cp -r "$src" "$work/influxdb"
  chmod -R u+w "$work/influxdb"
  local patch
  for patch in "$PATCH_DIR"/*.patch; do
    # --forward refuses a patch already applied: a source that no longer matches must stop
    # the build rather than yield an uncorrected binary under the corrected cache key.
    patch -p1 --forward --quiet -d "$work/influxdb" <"$patch" \
      || die "correction $(basename "$patch") does not apply to influxdb $INFLUXDB_VERSION"
    log "applied $(basename "$patch")"
  done
  # The wrapper version influxdb's go.mod names may be missing from the proxy; the newest
  # published one is an equally good wrapper.
  local pkgcfg_version
  pkgcfg_version="$(awk '$1 == "github.com/influxdata/pkg-config" {print $2; exit}' "$work/influxdb/go.mod")"
  if ! (cd "$work" && GOBIN="$work/bin" go install "github.com/influxdata/pkg-config@$pkgcfg_version"); then
    log "pkg-config wrapper $pkgcfg_version unavailable; using the newest published one"
    (cd "$work" && GOBIN="$work/bin" go install "github.com/influxdata/pkg-config@latest")
  fi
  mkdir -p "$(dirname "$INFLUXD_BIN")"
  # Flux pins an old Rust channel in rust-toolchain.toml that cannot be downloaded here;
  # the stable toolchain builds it.
  # Flux's crates deny(warnings), and newer rustc lints break that build. RUSTFLAGS does not
  # reach build scripts when cargo is given --target, so a rustc wrapper caps lints everywhere.
  cat >"$work/bin/rustc-cap-lints" <<'WRAP'
#!/bin/sh
case " $* " in *" --cap-lints"*) exec "$@" ;; *) exec "$@" --cap-lints=warn ;; esac
WRAP
  chmod +x "$work/bin/rustc-cap-lints"
  (cd "$work/influxdb" && PKG_CONFIG="$work/bin/pkg-config" RUSTUP_TOOLCHAIN=stable \
    RUSTC_WRAPPER="$work/bin/rustc-cap-lints" \
    go build -tags 'sqlite_foreign_keys,sqlite_json,flux_nosqlite' \
      -ldflags "-s -w -X main.version=${INFLUXDB_VERSION#v}" \
      -o "$INFLUXD_BIN.tmp" ./cmd/influxd)
  mv "$INFLUXD_BIN.tmp" "$INFLUXD_BIN"
  log "influxd $INFLUXDB_VERSION built in $((SECONDS - started))s"
}

# --- PostgreSQL ----------------------------------------------------------------------------

pg_cluster_line() { pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port {print; exit}'; }

postgres_up() {
  apt_install postgresql postgresql-contrib
  local line version name
  line="$(pg_cluster_line)"
  if [ -z "$line" ]; then
    version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
    log "creating PostgreSQL $version cluster '$PG_CLUSTER' on port $PG_PORT"
    as_root pg_createcluster "$version" "$PG_CLUSTER" -p "$PG_PORT" >/dev/null
    line="$(pg_cluster_line)"
  fi
  read -r version name _ <<<"$line"
  if ! pg_cluster_line | grep -q online; then
    # Test and demo instance: durability against power loss is not needed, speed is.
    as_root tee "/etc/postgresql/$version/$name/conf.d/fleetwatch.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
    as_root pg_ctlcluster "$version" "$name" start
  fi
  wait_for PostgreSQL 60 pg_isready -q -h 127.0.0.1 -p "$PG_PORT"
  as_root runuser -u postgres -- psql -q -p "$PG_PORT" -v ON_ERROR_STOP=1 <<SQL >/dev/null
SELECT 'CREATE ROLE $PG_USER LOGIN SUPERUSER'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') \gexec
ALTER ROLE $PG_USER WITH LOGIN SUPERUSER PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB') \gexec
SQL
  log "PostgreSQL ready on 127.0.0.1:$PG_PORT"
}

postgres_down() {
  local line version name
  line="$(pg_cluster_line)"
  [ -n "$line" ] || return 0
  read -r version name _ <<<"$line"
  as_root pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
}

# --- Mosquitto -----------------------------------------------------------------------------

mosquitto_up() {
  apt_install mosquitto mosquitto-clients
  local dir="$STATE_DIR/mosquitto"
  mkdir -p "$dir/data"
  if [ -f "$dir/mosquitto.pid" ] && kill -0 "$(cat "$dir/mosquitto.pid")" 2>/dev/null; then
    log "Mosquitto already running on 127.0.0.1:$MQTT_PORT"
    return 0
  fi
  cat >"$dir/mosquitto.conf" <<CONF
# Written by scripts/services.sh; loopback only, for development and tests.
user root
pid_file $dir/mosquitto.pid
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $dir/data/
autosave_interval 10
# Ingest's persistent session must be able to hold a backlog while it restarts.
max_queued_messages 1000000
max_inflight_messages 0
log_dest file $dir/mosquitto.log
CONF
  mosquitto -c "$dir/mosquitto.conf" -d
  wait_for Mosquitto 30 mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t '$SYS/broker/version' -C 1 -W 2
  log "Mosquitto ready on 127.0.0.1:$MQTT_PORT"
}

mosquitto_down() { stop_pidfile "$STATE_DIR/mosquitto/mosquitto.pid"; }

# --- InfluxDB ------------------------------------------------------------------------------

influx_healthy() { curl -fsS "http://127.0.0.1:$INFLUX_PORT/health" >/dev/null 2>&1; }

influxdb_up() {
  build_influxd
  local dir="$STATE_DIR/influxdb"
  mkdir -p "$dir"
  local pid
  pid="$(cat "$dir/influxd.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
      && [ "$(readlink -f "/proc/$pid/exe")" != "$(readlink -f "$INFLUXD_BIN")" ]; then
    # Started from another build (an older version, or one without the corrections).
    log "restarting influxd: the running one is not $INFLUXD_BIN"
    influxdb_down
  fi
  if ! influx_healthy; then
    # A session of its own: not stopped with the shell (or the process group) that ran us.
    setsid "$INFLUXD_BIN" \
      --http-bind-address "127.0.0.1:$INFLUX_PORT" \
      --bolt-path "$dir/influxd.bolt" \
      --engine-path "$dir/engine" \
      --sqlite-path "$dir/influxd.sqlite" \
      --reporting-disabled \
      --log-level warn </dev/null >"$dir/influxd.log" 2>&1 &
    echo $! >"$dir/influxd.pid"
    wait_for InfluxDB 60 influx_healthy
  fi
  if curl -fsS "http://127.0.0.1:$INFLUX_PORT/api/v2/setup" | grep -q '"allowed": *true'; then
    curl -fsS -X POST "http://127.0.0.1:$INFLUX_PORT/api/v2/setup" \
      -H 'Content-Type: application/json' \
      -d "{\"username\":\"$INFLUX_USER\",\"password\":\"$INFLUX_PASSWORD\",\"org\":\"$INFLUX_ORG\",\"bucket\":\"$INFLUX_BUCKET\",\"token\":\"$INFLUX_TOKEN\"}" >/dev/null
    log "InfluxDB initialised: org $INFLUX_ORG, bucket $INFLUX_BUCKET"
  fi
  log "InfluxDB ready on 127.0.0.1:$INFLUX_PORT"
}

influxdb_down() { stop_pidfile "$STATE_DIR/influxdb/influxd.pid"; }

# --- Kafka ---------------------------------------------------------------------------------

# The JVM of every Kafka process started here: a small heap (the machine also runs the
# stores, the broker and the tests) and the serial collector, which on a heap this size
# costs less CPU than G1 and starts no collector threads.
KAFKA_JAVA_OPTS=(
  -Xms64m -Xmx384m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$SCRIPT_DIR/kafka/log4j2.properties"
)
# Class data sharing: the classes a node loads while it starts, parsed and verified once
# into an archive that every later Kafka JVM maps, which halves their start-up. It belongs
# to the jars next to it and to one JDK build (recorded beside it); a JVM given an archive
# that no longer fits warns and starts without it.
KAFKA_CDS="$KAFKA_HOME/kafka.jsa"

kafka_command() {  # kafka_command MAIN ARGS...: the java command line, in KAFKA_COMMAND
  KAFKA_COMMAND=(java "${KAFKA_JAVA_OPTS[@]}")
  [ -f "$KAFKA_CDS" ] && KAFKA_COMMAND+=("-XX:SharedArchiveFile=$KAFKA_CDS")
  KAFKA_COMMAND+=(-cp "$KAFKA_LIBS/*" "$@")
}

kafka_java() { kafka_command "$@"; "${KAFKA_COMMAND[@]}"; }

need_java() {
  command -v java >/dev/null || apt_install default-jre-headless
  local major
  major="$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -1)"
  [ "${major:-0}" -ge 17 ] \
    || die "Kafka $KAFKA_VERSION needs Java 17 or newer (found ${major:-none})"
}

install_kafka() {
  need_java
  if [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]; then
    log "Kafka $KAFKA_VERSION: cached jars reused"
  else
    fetch_kafka
  fi
  [ "$(cat "$KAFKA_CDS.jdk" 2>/dev/null)" = "$(java -version 2>&1)" ] || build_kafka_cds
}

fetch_kafka() {
  command -v mvn >/dev/null || apt_install maven
  local started=$SECONDS partial="$KAFKA_HOME.partial.$$"
  rm -rf "$partial" "$KAFKA_HOME"
  mkdir -p "$partial"
  log "fetching Kafka $KAFKA_VERSION from Maven Central"
  # Maven prints its errors on standard output: keep them for the failure message only.
  if ! mvn -B -q -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$partial/libs" >"$partial/mvn.log" 2>&1; then
    cat "$partial/mvn.log" >&2
    rm -rf "$partial"
    die "Maven could not fetch Kafka $KAFKA_VERSION (see its output above)"
  fi
  rm -f "$partial/mvn.log"
  # The directory appears whole or not at all; a concurrent install that won the rename
  # left an equal one.
  mv -T "$partial" "$KAFKA_HOME" 2>/dev/null || rm -rf "$partial"
  [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] \
    || die "Kafka $KAFKA_VERSION: no server jar in $KAFKA_LIBS"
  log "Kafka $KAFKA_VERSION fetched in $((SECONDS - started))s ($(ls "$KAFKA_LIBS" | wc -l) jars)"
}

build_kafka_cds() {
  local started=$SECONDS work port pid
  work="$(mktemp -d "${TMPDIR:-/tmp}/kafka-cds.XXXXXX")"
  # A throwaway node on two ports nothing listens on (below the ephemeral range).
  port=$((20000 + RANDOM % 12000))
  while kafka_answers "$port" || kafka_answers $((port + 1)); do
    port=$((20000 + RANDOM % 12000))
  done
  write_kafka_conf "$work" "$port" $((port + 1))
  kafka_format "$work"
  java "${KAFKA_JAVA_OPTS[@]}" "-XX:ArchiveClassesAtExit=$work/kafka.jsa" -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$work/server.properties" >"$work/kafka.log" 2>&1 &
  pid=$!
  local deadline=$((SECONDS + 60))
  until kafka_answers "$port"; do
    if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then break; fi
    sleep 0.2
  done
  # The archive is written when the JVM exits normally, after the node's controlled stop.
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ -s "$work/kafka.jsa" ]; then
    mv -f "$work/kafka.jsa" "$KAFKA_CDS"
    java -version >"$KAFKA_CDS.jdk" 2>&1
    log "Kafka class archive made in $((SECONDS - started))s"
  else
    log "warning: no Kafka class archive (Kafka starts without one); see $work/kafka.log"
    return 0
  fi
  rm -rf "$work"
}

# A broker answers an ApiVersions request (v0: size 10, api key 18, version 0, correlation
# id 1, no client id) only once it processes requests, that is once it has caught up with
# the metadata and been unfenced; the reply starts with its size, then correlation id 1 and
# error code 0.
kafka_answers() {  # kafka_answers [PORT]
  local reply
  reply="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff" >&3
    head -c 10 <&3 | od -An -tx1' _ "${1:-$KAFKA_PORT}" 2>/dev/null | tr -d ' \n')"
  [ "${reply:8:12}" = 000000010000 ]
}

write_kafka_conf() {  # write_kafka_conf DIR PORT CONTROLLER_PORT
  local dir=$1 port=$2 controller_port=$3
  # One node that is both broker and controller (KRaft); one replica of everything.
  cat >"$dir/server.properties" <<CONF
# Written by scripts/services.sh; loopback only, for development and tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Topics are created on purpose (the bridge does, with its partitions and replicas); a
# mistyped name fails instead of making a one-partition topic.
auto.create.topics.enable=false
# Tests start and stop many consumer groups: no waiting for more members to join, and
# fewer coordinator partitions than the default 50 to create on first use.
group.initial.rebalance.delay.ms=0
offsets.topic.num.partitions=12
transaction.state.log.num.partitions=12
CONF
}

kafka_format() {  # kafka_format DIR: a new cluster's storage in DIR/data
  local cluster_id
  # The last line: a JVM that cannot use the class archive says so first.
  cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid | tail -n 1)"
  [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "not a Kafka cluster id: $cluster_id"
  kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$1/server.properties" >/dev/null
}

kafka_up() {
  install_kafka
  local dir="$STATE_DIR/kafka" pid
  mkdir -p "$dir"
  pid="$(cat "$dir/kafka.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$KAFKA_LIBS/"; then
      kafka_answers || wait_for Kafka 60 kafka_answers
      log "Kafka already running on 127.0.0.1:$KAFKA_PORT"
      return 0
    fi
    log "restarting Kafka: the running one is not Kafka $KAFKA_VERSION from $KAFKA_LIBS"
    kafka_down
  fi
  kafka_answers && die "something else answers Kafka requests on 127.0.0.1:$KAFKA_PORT"
  write_kafka_conf "$dir" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  if [ ! -f "$dir/data/meta.properties" ]; then
    kafka_format "$dir"
    log "Kafka storage formatted in $dir/data"
  fi
  kafka_command kafka.Kafka "$dir/server.properties"
  # A session of its own, as influxd's.
  setsid "${KAFKA_COMMAND[@]}" </dev/null >"$dir/kafka.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/kafka.pid"
  local deadline=$((SECONDS + 60))
  until kafka_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$dir/kafka.log" >&2
      die "Kafka exited while starting (log: $dir/kafka.log)"
    fi
    [ $SECONDS -ge $deadline ] && die "Kafka did not become ready within 60s (log: $dir/kafka.log)"
    sleep 0.2
  done
  log "Kafka ready on 127.0.0.1:$KAFKA_PORT"
}

kafka_down() { stop_pidfile "$STATE_DIR/kafka/kafka.pid"; }

print_pid() {
  local pidfile
  case "${1:-}" in
    influxdb) pidfile="$STATE_DIR/influxdb/influxd.pid" ;;
    mosquitto) pidfile="$STATE_DIR/mosquitto/mosquitto.pid" ;;
    kafka) pidfile="$STATE_DIR/kafka/kafka.pid" ;;
    *) die "usage: $0 pid influxdb|mosquitto|kafka" ;;
  esac
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null \
    || die "${1} is not running from this script (no live process in $pidfile)"
  cat "$pidfile"
}

stop_pidfile() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$pidfile"
}

# --- Commands ------------------------------------------------------------------------------

print_env() {
  cat <<ENV
export FLEETWATCH_DATABASE_URL=postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB
export FLEETWATCH_MQTT_HOST=127.0.0.1
export FLEETWATCH_MQTT_PORT=$MQTT_PORT
export FLEETWATCH_INFLUX_URL=http://127.0.0.1:$INFLUX_PORT
export FLEETWATCH_INFLUX_TOKEN=$INFLUX_TOKEN
export FLEETWATCH_INFLUX_ORG=$INFLUX_ORG
export FLEETWATCH_INFLUX_BUCKET=$INFLUX_BUCKET
export FLEETWATCH_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
ENV
}

print_status() {
  local rc=0
  if pg_isready -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; then echo "postgresql: up (127.0.0.1:$PG_PORT)"; else echo "postgresql: down"; rc=1; fi
  if mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t '$SYS/broker/version' -C 1 -W 2 >/dev/null 2>&1; then echo "mosquitto: up (127.0.0.1:$MQTT_PORT)"; else echo "mosquitto: down"; rc=1; fi
  if influx_healthy; then echo "influxdb: up (http://127.0.0.1:$INFLUX_PORT)"; else echo "influxdb: down"; rc=1; fi
  if kafka_answers; then echo "kafka: up (127.0.0.1:$KAFKA_PORT)"; else echo "kafka: down"; rc=1; fi
  return $rc
}

case "${1:-}" in
  influxd) build_influxd; echo "$INFLUXD_BIN" ;;
  kafka-libs) install_kafka; echo "$KAFKA_LIBS" ;;
  up)
    started=$SECONDS
    postgres_up; mosquitto_up; influxdb_up; kafka_up
    log "all services up in $((SECONDS - started))s"
    ;;
  down) kafka_down; influxdb_down; mosquitto_down; postgres_down; log "services stopped" ;;
  status) print_status ;;
  env) print_env ;;
  pid) print_pid "${2:-}" ;;
  *) echo "usage: $0 up|down|status|env|influxd|kafka-libs|pid NAME" >&2; exit 2 ;;
esac
