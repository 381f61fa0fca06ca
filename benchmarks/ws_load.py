"""WebSocket devices against ``fleetwatch api``: connections held, throughput, latency,
memory, and a reconnect storm after the server is killed.

    python -m benchmarks.ws_load --devices 5000 --interval 10 --duration 60

In a sandbox of its own (database with the built-in device types, bucket), registers
``--devices`` ESP32 devices with a token each, starts ``fleetwatch api`` as a separate
process, and plays the devices from ``--clients`` spawned client processes
(``benchmarks.ws_clients``). Phases:

1. connect: every device opens ``/ws/{device_id}``, says hello, and from then on sends a
   heartbeat every ``--interval`` s (from a random offset);
2. steady: once all are connected, ``--duration`` s of that load are measured;
3. storm: the server is killed (SIGKILL) and started again after ``--down`` s; devices keep
   making heartbeats, reconnect with backoff and resend what was not acknowledged;
4. drain: heartbeats stop; every frame made must be acknowledged, and PostgreSQL must hold
   each exactly once.

Everything printed is measured in the run; nothing is asserted about time. The exit status
is 0 when every frame was acknowledged and stored once, 1 otherwise, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import http.client
import math
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from access.devices import new_token
from benchmarks.probes import CpuMeter, our_backends, peak_rss_kib, percentile
from benchmarks.sandbox import Sandbox, SandboxError, process_env, sandbox
from benchmarks.ws_clients import Counts, FleetSpec, Progress, Sample, rss_kib, run_fleet
from fleetwatch import logs
from fleetwatch.settings import (
    ApiSettings,
    InfluxSettings,
    LogSettings,
    MqttSettings,
    PostgresSettings,
    load,
)
from ingest.kinds import builtin_types
from ingest.kinds import telemetry as telemetry_kind
from stores.postgres import device_types

DEVICE_TYPE = "ESP32"
READY_TIMEOUT_S = 90.0
PROBE_INTERVAL_S = 0.25
T = TypeVar("T")


def say(text: str = "") -> None:
    """One line of the report, at once."""
    print(text, flush=True)


def note(text: str) -> None:
    """Progress, on stderr."""
    print(f"  ... {text}", file=sys.stderr, flush=True)


# --- the fleet in the database --------------------------------------------------------------


def register(db: psycopg.Connection[Any], count: int) -> list[tuple[str, str]]:
    """``count`` WebSocket devices of type ESP32, a live token each: (device id, token)."""
    builtin_types.install(db)
    type_id = device_types.by_name(db, [DEVICE_TYPE])[DEVICE_TYPE].id
    names = [f"wsload-{n:05d}" for n in range(count)]
    tokens = [new_token() for _ in names]
    with db.transaction():
        rows = db.execute(
            "INSERT INTO devices (kind, serial_number, hostname, name, device_type_id, transport) "
            "SELECT %s, h, h, h, %s, 'websocket' FROM unnest(%s::text[]) AS h "
            "RETURNING id, hostname",
            [telemetry_kind.KIND, type_id, names],
        ).fetchall()
        ids = {str(hostname): int(device_id) for device_id, hostname in rows}
        db.execute(
            "INSERT INTO device_status (device_id) SELECT unnest(%s::int[])", [list(ids.values())]
        )
        db.execute(
            "INSERT INTO device_tokens (device_id, prefix, token_hash, created_by) "
            "SELECT d, p, h, 'ws_load' FROM unnest(%s::int[], %s::text[], %s::text[]) "
            "AS t(d, p, h)",
            [[ids[n] for n in names], [t.prefix for t in tokens], [t.digest for t in tokens]],
        )
    return [(name, token.secret) for name, token in zip(names, tokens, strict=True)]


@dataclass(frozen=True, slots=True)
class Stored:
    """What PostgreSQL holds of the frames, per device."""

    ids: dict[str, int]  # device_message_ids rows: frame ids taken (unique by key)
    received: dict[str, int]  # heartbeat_counts.received: heartbeats applied, each time
    dead_letters: int


def stored(db: psycopg.Connection[Any]) -> Stored:
    """Count, per device, the frame ids taken and the heartbeats applied."""
    ids = db.execute(
        "SELECT d.hostname, count(m.message_id) FROM devices d "
        "LEFT JOIN device_message_ids m ON m.device_id = d.id GROUP BY d.hostname"
    ).fetchall()
    received = db.execute(
        "SELECT d.hostname, coalesce(sum(c.received), 0) FROM devices d "
        "LEFT JOIN heartbeat_counts c ON c.device_id = d.id GROUP BY d.hostname"
    ).fetchall()
    row = db.execute("SELECT count(*) FROM dead_letters").fetchone()
    return Stored(
        {str(h): int(n) for h, n in ids},
        {str(h): int(n) for h, n in received},
        int(row[0]) if row else 0,
    )


# --- the server -----------------------------------------------------------------------------


class Server:
    """``fleetwatch api`` in a process of its own, started (again) on one port."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the server is not running")
        return self.process.pid

    def start(self) -> float:
        """Start it; the time it accepted connections (after its lifespan: the device ingest
        is up)."""
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"----- start {self.starts} -----\n".encode())
            out.flush()
            self.process = subprocess.Popen(  # noqa: S603 - our own command
                [sys.executable, "-m", "fleetwatch", "api", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"fleetwatch api exited ({code}); see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return time.monotonic()
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"fleetwatch api did not listen in {READY_TIMEOUT_S:.0f}s")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no close frames, acknowledgements in flight lost."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> float | None:
        """SIGTERM; seconds until it exited (None: killed after 60 s)."""
        if self.process is None or self.process.poll() is not None:
            return None
        started = time.monotonic()
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        return time.monotonic() - started

    def rss_kib(self) -> int:
        return rss_kib(self.pid) or 0

    def open_files(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return 0

    def peak_kib(self) -> int:
        return peak_rss_kib(self.pid) or 0


class ServerProbe:
    """GET /docs (no database, a small page) every ``PROBE_INTERVAL_S`` from a thread of
    this process: how long the server takes to answer shows how long its event loop is
    busy, and stalls in it, whatever the devices' clients do."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._answers: list[float] = []
        self._failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server probe", daemon=True)

    def __enter__(self) -> ServerProbe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(35)

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.wait(PROBE_INTERVAL_S):
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=30)
                conn.request("GET", "/docs")
                conn.getresponse().read()
                with self._lock:
                    self._answers.append(time.monotonic() - started)
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                with self._lock:
                    self._failures += 1

    def take(self) -> tuple[list[float], int]:
        """Answer times and failed requests since the previous call."""
        with self._lock:
            answers, failures = self._answers, self._failures
            self._answers, self._failures = [], 0
        return answers, failures


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the clients ----------------------------------------------------------------------------


class Clients:
    """The client processes, asked together."""

    def __init__(self, channels: list[Connection], pids: list[int]) -> None:
        self.channels, self.pids = channels, pids

    def ask(self, command: str, *args: object) -> list[Any]:
        for channel in self.channels:
            channel.send((command, *args))
        answers = [channel.recv() for channel in self.channels]
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return answers

    def progress(self, since: float = 0.0) -> Progress:
        parts: list[Progress] = self.ask("progress", since)
        return Progress(
            connected=sum(p.connected for p in parts),
            last_connected_at=max(p.last_connected_at for p in parts),
            frames=sum(p.frames for p in parts),
            acked=sum(p.acked for p in parts),
            back=sum(p.back for p in parts),
            cleared=sum(p.cleared for p in parts),
            last_back_at=max(p.last_back_at for p in parts),
            last_cleared_at=max(p.last_cleared_at for p in parts),
            rss_kib=sum(p.rss_kib for p in parts),
        )

    def sample(self, since: float = 0.0) -> Sample:
        parts: list[Sample] = self.ask("sample", since)
        return Sample(
            latencies=[x for p in parts for x in p.latencies],
            connect_s=[x for p in parts for x in p.connect_s],
            back_after=[x for p in parts for x in p.back_after],
            cleared_after=[x for p in parts for x in p.cleared_after],
            resent=sum(p.resent for p in parts),
            failures=_sum_counts([p.failures for p in parts]),
            close_codes=_sum_counts([p.close_codes for p in parts]),
            errors=_sum_counts([p.errors for p in parts]),
            loop_lag=[x for p in parts for x in p.loop_lag],
        )

    def counts(self) -> Counts:
        parts: list[Counts] = self.ask("counts")
        return Counts(
            frames={k: v for p in parts for k, v in p.frames.items()},
            acked={k: v for p in parts for k, v in p.acked.items()},
        )


def _sum_counts(parts: Sequence[dict[T, int]]) -> dict[T, int]:
    total: Counter[T] = Counter()
    for part in parts:
        total.update(part)
    return dict(total)


@contextmanager
def clients(specs: Sequence[FleetSpec]) -> Iterator[Clients]:
    """One spawned process per spec, ready for commands; stopped on exit."""
    context = multiprocessing.get_context("spawn")
    channels, processes = [], []
    try:
        for spec in specs:
            ours, theirs = context.Pipe()
            process = context.Process(target=run_fleet, args=(spec, theirs), daemon=True)
            process.start()
            channels.append(ours)
            processes.append(process)
        for channel in channels:
            if channel.recv() != "ready":
                raise RuntimeError("a client process did not start")
        yield Clients(channels, [p.pid for p in processes if p.pid is not None])
    finally:
        for process in processes:
            process.kill()
            process.join(10)


# --- the run --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    devices: int
    interval_s: float
    duration_s: float
    clients: int
    down_s: float
    connect_concurrency: int
    backoff_min_s: float
    backoff_max_s: float
    connect_timeout_s: float
    storm_timeout_s: float
    drain_timeout_s: float
    deflate: bool


def _ms(values: Sequence[float]) -> str:
    if not values:
        return "none"
    return (
        f"p50 {1000 * percentile(values, 0.5):.1f} ms  p99 {1000 * percentile(values, 0.99):.1f}"
        f" ms  max {1000 * max(values):.1f} ms  (n={len(values):,})"
    )


def _s(values: Sequence[float]) -> str:
    if not values:
        return "none"
    return (
        f"p50 {percentile(values, 0.5):.2f} s  p99 {percentile(values, 0.99):.2f} s  "
        f"max {max(values):.2f} s  (n={len(values):,})"
    )


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.1f} MiB"


def _counts(title: str, counts: dict[Any, int]) -> None:
    if counts:
        listed = ", ".join(f"{k}: {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        say(f"  {title}: {listed}")
    else:
        say(f"  {title}: none")


def _loops(probe: ServerProbe, sample: Sample) -> None:
    answers, failures = probe.take()
    failed = f"; {failures} failed" if failures else ""
    say(f"  server answers GET /docs: {_ms(answers)}{failed}")
    say(f"  client event loop late by: {_ms(sample.loop_lag)}")


def _cpu(meter: CpuMeter, seconds: float) -> None:
    spent = meter.stop()
    busy = {k: v for k, v in spent.items() if v >= 0.05}
    listed = ", ".join(f"{k} {v:.1f} s ({100 * v / seconds:.0f} %)" for k, v in busy.items())
    say(f"  CPU over {seconds:.1f} s (of one core): {listed}")


def _wait(clients: Clients, done: Any, timeout_s: float, since: float, what: str) -> Progress:  # noqa: ANN401
    """Poll progress until ``done(progress)`` or the timeout; the last progress."""
    deadline, said = time.monotonic() + timeout_s, time.monotonic()
    while True:
        progress = clients.progress(since)
        if done(progress) or time.monotonic() > deadline:
            return progress
        if time.monotonic() - said > 5:
            acked = f"{progress.acked:,}/{progress.frames:,}"
            note(
                f"{what}: connected {progress.connected:,}, back {progress.back:,}, "
                f"cleared {progress.cleared:,}, acked {acked}"
            )
            said = time.monotonic()
        time.sleep(0.2)


def run(box: Sandbox, options: Options, api: ApiSettings, log: Path) -> int:  # noqa: PLR0915 - one story, told in order
    """All phases; the exit status."""
    n = options.devices
    with ExitStack() as stack:
        db = stack.enter_context(psycopg.connect(box.database_url, autocommit=True))
        started = time.monotonic()
        fleet = register(db, n)
        took = time.monotonic() - started
        say(f"registered {n:,} {DEVICE_TYPE} devices with tokens in {took:.1f} s ({box.run_id})")

        port = free_port()
        server_log = LogSettings(log_level="WARNING")
        env = process_env(box.pg, box.influx, api, server_log)
        server = Server(env, port, log)
        stack.callback(server.stop)
        begun = time.monotonic()
        server.start()
        say(
            f"fleetwatch api pid {server.pid} on port {port}: accepting after "
            f"{time.monotonic() - begun:.1f} s; log {log}"
        )
        limit, used = resource.getrlimit(resource.RLIMIT_NOFILE)[0], server.open_files()
        if n > limit - used:
            say(
                f"  NOTE: the server has {used} files open idle and may open {limit:,}: at most "
                f"{limit - used:,} devices can connect"
            )

        per = math.ceil(n / options.clients)
        specs = [
            FleetSpec(
                base_url=f"http://127.0.0.1:{port}",
                devices=tuple(fleet[i : i + per]),
                device_type=DEVICE_TYPE,
                connect_concurrency=options.connect_concurrency,
                backoff_min_s=options.backoff_min_s,
                backoff_max_s=options.backoff_max_s,
                seed=i,
                interval_s=options.interval_s,
                deflate=options.deflate,
            )
            for i in range(0, n, per)
        ]
        players = stack.enter_context(clients(specs))
        probe = stack.enter_context(ServerProbe(port))
        time.sleep(2.0)
        idle_kib = server.rss_kib()
        probe.take()
        players.sample()

        def meter() -> CpuMeter:
            processes = {"server": server.pid}
            processes.update({f"client {i + 1}": pid for i, pid in enumerate(players.pids)})
            cpu = CpuMeter(processes, lambda: our_backends(db))
            cpu.start()
            return cpu

        # 1. connect -------------------------------------------------------------------------
        say()
        say(
            f"1. connect: {n:,} devices from {len(specs)} client process(es), at most "
            f"{options.connect_concurrency} handshakes in flight per process, permessage-deflate "
            f"{'offered' if options.deflate else 'not offered (as ESP32 firmware)'}; each "
            f"device beats every {options.interval_s:g} s from its first connect"
        )
        cpu, t0 = meter(), time.monotonic()
        players.ask("connect")
        up = _wait(players, lambda p: p.connected == n, options.connect_timeout_s, t0, "connect")
        took = time.monotonic() - t0
        connect = players.sample()
        if up.connected == n:
            say(f"  all {n:,} connected after {up.last_connected_at - t0:.2f} s")
        else:
            say(f"  connected {up.connected:,} of {n:,} when it gave up after {took:.0f} s")
        say(f"  one connect (TCP, upgrade, token check, hello): {_s(connect.connect_s)}")
        say(f"  send -> ack meanwhile: {_ms(connect.latencies)}")
        _counts("failed connects", connect.failures)
        _counts("sockets closed", connect.close_codes)
        _counts("error frames", connect.errors)
        _loops(probe, connect)
        _cpu(cpu, took)
        time.sleep(2.0)
        held_kib = server.rss_kib()
        per_conn = (held_kib - idle_kib) / max(1, up.connected)
        say(
            f"  server RSS {_mib(idle_kib)} before, {_mib(held_kib)} with {up.connected:,} "
            f"devices: {per_conn:.1f} KiB per connected device; client processes "
            f"{_mib(up.rss_kib)}"
        )

        # 2. steady --------------------------------------------------------------------------
        say()
        rate = n / options.interval_s
        say(
            f"2. steady: a heartbeat per device every {options.interval_s:g} s "
            f"({rate:,.0f} msg/s offered) for {options.duration_s:g} s"
        )
        cpu, t_start = meter(), time.monotonic()
        start = players.progress()
        players.sample()
        probe.take()
        rss = [server.rss_kib()]
        while time.monotonic() < t_start + options.duration_s:
            time.sleep(1.0)
            rss.append(server.rss_kib())
        end, t_end = players.progress(), time.monotonic()
        steady = players.sample()
        window = t_end - t_start
        made, acked = end.frames - start.frames, end.acked - start.acked
        say(f"  connections held at the end: {end.connected:,} of {n:,}")
        say(
            f"  frames made {made:,} ({made / window:,.0f}/s), acknowledged {acked:,} "
            f"({acked / window:,.0f} msg/s) over {window:.1f} s; unacknowledged at the end "
            f"{end.frames - end.acked:,}"
        )
        say(f"  send -> ack (an upper bound of receive -> commit): {_ms(steady.latencies)}")
        _counts("failed connects", steady.failures)
        _counts("sockets closed", steady.close_codes)
        _counts("error frames", steady.errors)
        _loops(probe, steady)
        _cpu(cpu, window)
        trace = " ".join(f"{kib / 1024:.0f}" for kib in rss[:: max(1, len(rss) // 12)])
        say(
            f"  server RSS {_mib(rss[0])} at the start, {_mib(rss[-1])} at the end (every "
            f"~{len(rss) // 12 or 1} s, MiB: {trace}); client processes {_mib(end.rss_kib)}"
        )

        # 3. storm ---------------------------------------------------------------------------
        say()
        say(
            f"3. reconnect storm: server SIGKILLed, started again after {options.down_s:g} s; "
            f"devices back off {options.backoff_min_s:g}-{options.backoff_max_s:g} s "
            f"(doubling, jittered) and keep beating"
        )
        before = players.progress()
        t_kill = time.monotonic()
        server.kill()
        time.sleep(options.down_s)
        t_restart = time.monotonic()
        t_listen = server.start()
        cpu = meter()
        back = _wait(
            players,
            lambda p: p.back == n and p.cleared == n,
            options.storm_timeout_s,
            t_kill,
            "storm",
        )
        t_done = time.monotonic()
        storm = players.sample(t_kill)
        say(
            f"  killed with {before.connected:,} connected and {before.frames - before.acked:,} "
            f"frames unacknowledged; restarted at +{t_restart - t_kill:.1f} s, accepting at "
            f"+{t_listen - t_kill:.1f} s (server start {t_listen - t_restart:.1f} s)"
        )
        if back.back == n:
            say(
                f"  all {n:,} reconnected at +{back.last_back_at - t_kill:.2f} s after the "
                f"kill ({back.last_back_at - t_listen:.2f} s after it accepted)"
            )
        else:
            say(f"  reconnected {back.back:,} of {n:,} when it gave up at +{t_done - t_kill:.0f} s")
        if back.cleared == n:
            say(
                f"  every backlog acknowledged at +{back.last_cleared_at - t_kill:.2f} s "
                f"({back.last_cleared_at - t_listen:.2f} s after it accepted)"
            )
        else:
            say(f"  backlogs acknowledged: {back.cleared:,} of {n:,} devices")
        say(f"  per device, reconnected after the kill: {_s(storm.back_after)}")
        say(f"  per device, backlog acknowledged after the kill: {_s(storm.cleared_after)}")
        say(f"  frames resent on reconnection: {storm.resent:,}")
        say(f"  send -> ack in the storm (a resent frame from its resend): {_ms(storm.latencies)}")
        _counts("failed connects", storm.failures)
        _counts("sockets closed", storm.close_codes)
        _counts("error frames", storm.errors)
        _loops(probe, storm)
        _cpu(cpu, t_done - t_listen)
        say(f"  restarted server RSS {_mib(server.rss_kib())} (peak {_mib(server.peak_kib())})")

        # 4. drain and count -----------------------------------------------------------------
        say()
        say("4. drain: heartbeats stop; every frame made must be acknowledged and stored once")
        players.ask("quiet")
        final = _wait(
            players, lambda p: p.acked == p.frames, options.drain_timeout_s, t_kill, "drain"
        )
        tail = players.sample(t_kill)
        counts = players.counts()
        kept = stored(db)
        frames, acked = sum(counts.frames.values()), sum(counts.acked.values())
        ids, received = sum(kept.ids.values()), sum(kept.received.values())
        lost = sum(max(0, counts.acked[d] - kept.ids.get(d, 0)) for d in counts.acked)
        twice = sum(max(0, kept.received.get(d, 0) - kept.ids.get(d, 0)) for d in counts.acked)
        unequal = sum(
            1
            for d in counts.frames
            if not counts.frames[d] == kept.ids.get(d, 0) == kept.received.get(d, 0)
        )
        say(
            f"  devices: frames made {frames:,}, acknowledged {acked:,}, never acknowledged "
            f"{frames - acked:,}; connected {final.connected:,}"
        )
        say(
            f"  PostgreSQL: device_message_ids {ids:,} rows (frame ids taken), "
            f"heartbeat_counts.received {received:,} (heartbeats applied), dead letters "
            f"{kept.dead_letters:,}"
        )
        say(
            f"  acknowledged but not stored: {lost:,}; applied more than once: {twice:,}; "
            f"devices whose counts (made, ids, applied) differ: {unequal:,}"
        )
        _counts("sockets closed", tail.close_codes)
        _counts("error frames", tail.errors)

        closing = time.monotonic()
        players.ask("close")
        say(f"  closed {final.connected:,} sockets in {time.monotonic() - closing:.1f} s")
        stopped = server.stop()
        say(
            f"  server stopped on SIGTERM in {stopped:.1f} s"
            if stopped is not None
            else "  server did not stop on SIGTERM in 60 s (killed)"
        )
        ok = frames == acked == ids == received and lost == twice == unequal == 0
    say()
    _server_log(log)
    return 0 if ok else 1


def _server_log(log: Path) -> None:
    """What the server logged at WARNING and above, grouped."""
    lines = log.read_text(errors="replace").splitlines()
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    for line in lines:
        parts = line.split(maxsplit=4)
        if len(parts) >= 4 and parts[2] in {"WARNING", "ERROR", "CRITICAL"}:
            levels[parts[2]] += 1
            messages[f"{parts[2]} {parts[3]} {' '.join(parts[4:])[:110]}"] += 1
        elif line.startswith(("Traceback", "OSError", "Exception")):
            messages[line[:120]] += 1
    found = ", ".join(f"{k} {v:,}" for k, v in levels.items()) or "no warnings or errors"
    say(f"server log ({len(lines):,} lines): {found}")
    for message, count in messages.most_common(12):
        say(f"  {count:>6,} x {message}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ws_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between heartbeats")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of steady load")
    parser.add_argument("--clients", type=int, help="client processes (default: 1 per 5,000)")
    parser.add_argument("--down", type=float, default=5.0, help="seconds the server stays down")
    parser.add_argument(
        "--connect-concurrency",
        type=int,
        default=100,
        help="handshakes in flight per client process",
    )
    parser.add_argument("--backoff-min", type=float, default=1.0)
    parser.add_argument("--backoff-max", type=float, default=10.0)
    parser.add_argument("--connect-timeout", type=float, default=180.0)
    parser.add_argument("--storm-timeout", type=float, default=180.0)
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="devices offer permessage-deflate (the websockets default; ESP32 clients do not)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and bucket")
    parser.add_argument("--log", type=Path, help="server log file (default: a temporary file)")
    args = parser.parse_args(argv)
    options = Options(
        devices=args.devices,
        interval_s=args.interval,
        duration_s=args.duration,
        clients=args.clients or max(1, math.ceil(args.devices / 5000)),
        down_s=args.down,
        connect_concurrency=args.connect_concurrency,
        backoff_min_s=args.backoff_min,
        backoff_max_s=args.backoff_max,
        connect_timeout_s=args.connect_timeout,
        storm_timeout_s=args.storm_timeout,
        drain_timeout_s=args.drain_timeout,
        deflate=args.deflate,
    )
    logs.configure("WARNING")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    say(f"open files limit {hard:,} (server and client processes); {os.cpu_count()} cores")
    log = args.log or Path(tempfile.mkstemp(prefix="ws_load_", suffix=".log")[1])
    pg, mqtt, influx = load(PostgresSettings), load(MqttSettings), load(InfluxSettings)
    try:
        with sandbox(pg, mqtt, influx, keep=args.keep) as box:
            return run(box, options, load(ApiSettings), log)
    except (SandboxError, RuntimeError, OSError, psycopg.Error) as exc:
        print(f"ws_load: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
