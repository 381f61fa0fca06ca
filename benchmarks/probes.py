"""What the benchmark measures from outside ingest: PostgreSQL counts, latency, CPU, RSS.

Commit latency (publish -> committed) is measured on probe heartbeats: every heartbeat of a
few chosen devices (see ``benchmarks.stream``). The publisher records the wall time at which
it hands each probe to the broker. A watcher thread reads ``device_status.uptime`` of the
probe devices every ``interval_s``; ``uptime`` grows with every message of a device and
ingest applies a device's messages in order, so the first read showing ``uptime >= u``
proves the heartbeat carrying ``u`` (and all before it) is committed. Its latency is that
read's start time minus the publish time: an upper bound, late by at most one interval.

CPU and memory come from ``/proc``: per process for ingest, the publisher and the services
(and on Kafka the bridge and the broker), and the whole machine's busy time, so that
competing load shows in the report.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.stream import Probe

logger = logging.getLogger(__name__)

SERVICE_PROCESSES = ("mosquitto", "postgres", "influxd")

_COUNT_SQL = """
WITH counted AS (
  SELECT d.kind = 'panel' AS panel, coalesce(sum(c.received), 0) AS received,
         coalesce(sum(c.written), 0) AS written
    FROM heartbeat_counts c JOIN devices d ON d.id = c.device_id GROUP BY 1)
SELECT (SELECT coalesce(sum(received), 0) FROM counted WHERE panel),
       (SELECT coalesce(sum(written), 0) FROM counted WHERE panel),
       (SELECT coalesce(sum(state_duration), 0) FROM device_status),
       (SELECT count(*) FROM alarm_sequences),
       (SELECT count(*) FROM dead_letters),
       (SELECT count(*) FROM influx_outbox),
       (SELECT count(*) FROM device_status),
       (SELECT count(*) FROM device_status s JOIN devices d ON d.id = s.device_id
         WHERE d.kind = 'panel' AND NOT s.device_synced),
       (SELECT coalesce(sum(received), 0) FROM counted WHERE NOT panel),
       (SELECT coalesce(sum(written), 0) FROM counted WHERE NOT panel)
"""

_UPTIME_SQL = """
SELECT d.hostname, s.uptime
  FROM devices d JOIN device_status s ON s.device_id = d.id
 WHERE d.hostname = ANY(%s) AND s.uptime IS NOT NULL
"""


@dataclass(frozen=True, slots=True)
class Committed:
    """Messages visible in PostgreSQL, by kind.

    Attributes:
        heartbeats: panels' heartbeats applied (``heartbeat_counts.received``; redeliveries
            excluded).
        points: heartbeat points the CDC wrote (``heartbeat_counts.written``).
        statuses: status messages applied (sum of each device's running count).
        alarms: alarm events accepted (``alarm_sequences`` rows).
        dead_letters: messages rejected.
        outbox: points committed but not yet confirmed by InfluxDB.
        devices: devices registered.
        unsynced: panels whose reported device_db_id is not their id.
        readings: telemetry readings applied (their ``heartbeat_counts.received``).
        reading_points: telemetry points the CDC wrote.
    """

    heartbeats: int = 0
    points: int = 0
    statuses: int = 0
    alarms: int = 0
    dead_letters: int = 0
    outbox: int = 0
    devices: int = 0
    unsynced: int = 0
    readings: int = 0
    reading_points: int = 0

    @property
    def messages(self) -> int:
        """Every message accounted for, accepted or dead-lettered."""
        return self.heartbeats + self.statuses + self.alarms + self.dead_letters + self.readings


def count_committed(conn: psycopg.Connection[Any]) -> Committed:
    """One consistent snapshot of what ingest has committed."""
    row = conn.execute(_COUNT_SQL).fetchone()
    if row is None:  # an aggregate query always returns its row
        raise RuntimeError("count query returned nothing")
    return Committed(*(int(value) for value in row))


class LatencyWatcher(threading.Thread):
    """Polls the probe devices' ``uptime`` and remembers when each new value appeared."""

    def __init__(self, database_url: str, hostnames: Sequence[str], interval_s: float) -> None:
        super().__init__(name="latency-watcher", daemon=True)
        self._url = database_url
        self._hostnames = list(hostnames)
        self._interval_s = interval_s
        self._halt = threading.Event()
        # hostname -> (read start times, uptimes read), both ascending
        self._seen: dict[str, tuple[list[float], list[int]]] = {h: ([], []) for h in hostnames}
        self.error: BaseException | None = None

    def run(self) -> None:
        """Poll until ``stop``; a failure is kept in ``error`` for the report."""
        try:
            with psycopg.connect(self._url, autocommit=True) as conn:
                while not self._halt.is_set():
                    started = time.time()
                    for hostname, uptime in conn.execute(_UPTIME_SQL, [self._hostnames]):
                        times, uptimes = self._seen[hostname]
                        if not uptimes or uptime > uptimes[-1]:
                            times.append(started)
                            uptimes.append(uptime)
                    self._halt.wait(max(0.0, self._interval_s - (time.time() - started)))
        except psycopg.Error as exc:
            logger.exception("latency watcher failed")
            self.error = exc

    def stop(self) -> None:
        """Ask the thread to finish and wait for it."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)

    def latencies(self, sent: Iterable[tuple[Probe, float]]) -> tuple[list[float], int]:
        """Publish-to-commit seconds of each probe seen committed; and how many were not."""
        found, missing = [], 0
        for probe, published in sent:
            times, uptimes = self._seen[probe.hostname]
            index = bisect.bisect_left(uptimes, probe.uptime)
            if index == len(uptimes):
                missing += 1
            else:
                found.append(times[index] - published)
        return found, missing


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty), ``fraction`` in [0, 1]."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _clock_ticks()  # utime, stime


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM (peak resident set) of a live process, in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def listening_pid(port: int) -> int | None:
    """The process of this machine listening on TCP ``port`` (e.g. the Kafka broker's JVM,
    whose program name, ``java``, says nothing); None if there is none or it is not ours
    to see."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name)
        except OSError:  # gone, or not ours
            continue
    return None


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores; not idle, not iowait)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _clock_ticks()


_OUR_BACKENDS_SQL = """
SELECT pid FROM pg_stat_activity
 WHERE datname = current_database() OR datname IS NULL  -- ours, and the shared workers
"""


def our_backends(conn: psycopg.Connection[Any]) -> set[int]:
    """PostgreSQL server processes working for the benchmark's database (ingest's backend,
    the probes', autovacuum there) or for every database (writer, checkpointer, ...);
    backends of other databases, e.g. a test run's, are left out."""
    return {int(row[0]) for row in conn.execute(_OUR_BACKENDS_SQL)}


def _process_cpu(names: Sequence[str]) -> dict[int, tuple[str, float]]:
    """Program name and CPU seconds so far of every process running one of ``names``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        seconds = cpu_seconds(int(entry.name)) if comm in names else None
        if seconds is not None:
            found[int(entry.name)] = (comm, seconds)
    return found


class CpuMeter:
    """CPU seconds spent between ``start`` and ``stop`` by ingest, this process, the broker,
    the stores, and everything else on the machine ("other": e.g. a test run competing for
    the cores). PostgreSQL counts only ``postgres_pids()`` processes; the broker and InfluxDB
    count whole, whoever their other clients are. Processes that exit in between are missed
    (the benchmark's own live through the measurement)."""

    def __init__(self, processes: dict[str, int], postgres_pids: Callable[[], set[int]]) -> None:
        self._processes = processes
        self._postgres_pids = postgres_pids
        self._before: dict[int, tuple[str, float]] = {}
        self._postgres: set[int] = set()
        self._machine = 0.0

    def _sample(self) -> dict[int, tuple[str, float]]:
        sample = _process_cpu(SERVICE_PROCESSES)
        for name, pid in self._processes.items():
            seconds = cpu_seconds(pid)
            if seconds is not None:
                sample[pid] = (name, seconds)
        return sample

    def start(self) -> None:
        """Take the starting sample."""
        self._postgres = self._postgres_pids()
        self._before, self._machine = self._sample(), _machine_busy_seconds()

    def stop(self) -> dict[str, float]:
        """CPU seconds since ``start`` by name."""
        postgres = self._postgres | self._postgres_pids()
        after, machine = self._sample(), _machine_busy_seconds()
        spent = dict.fromkeys([*self._processes, *SERVICE_PROCESSES], 0.0)
        for pid, (name, end) in after.items():
            if name == "postgres" and pid not in postgres:
                continue
            begin = self._before.get(pid, (name, 0.0))[1]  # started since: all of it is new
            spent[name] += end - begin
        spent["other"] = max(0.0, machine - self._machine - sum(spent.values()))
        return spent
