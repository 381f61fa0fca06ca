"""Panic press to webhook: how long a person waits to hear of an alarm.

    python -m benchmarks.alert_latency --presses 200

In a sandbox of its own (database, bucket, topic prefix), runs ``fleetwatch ingest`` and
``fleetwatch notify`` as separate processes with default settings, a webhook receiver on
loopback, and a rule "PANIC1 pressed" whose template posts to it. Registers ``--presses``
panels, then presses each one's PANIC1 once, ``--interval-ms`` apart (one alarm at a time,
as people press them, not a flood), and times each from the MQTT publish to the webhook's
arrival. Prints p50, p90, p99 and max; exit status 1 when a press never arrived.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from alerting.book import template_to_row
from alerting.manage import save_rule
from alerting.recipients import Recipient
from alerting.rules import Action, Rule, RuleOperator
from alerting.templates import Template
from benchmarks.sandbox import Sandbox, process_env, sandbox
from fleetwatch import logs
from fleetwatch.settings import InfluxSettings, MqttSettings, PostgresSettings, load
from ingest.contract import TopicKind, TopicScheme, pb
from stores.postgres import alerting_store as store

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0


class _Arrivals:
    """Webhook arrivals by hostname, with their monotonic time."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.lock = threading.Condition()

    def add(self, hostname: str) -> None:
        with self.lock:
            self.times.setdefault(hostname, time.monotonic())
            self.lock.notify_all()

    def wait(self, count: int, timeout_s: float) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: len(self.times) >= count, timeout_s)


@contextmanager
def _receiver(arrivals: _Arrivals) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.end_headers()
            arrivals.add(str(json.loads(body)["event"]["hostname"]))

        def log_message(self, format: str, *args: Any) -> None:  # noqa: ANN401
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _panel(n: int) -> tuple[str, str]:
    return f"ESG_ALARM_{n:05d}", f"02:00:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"


def _publish(client: paho.Client, topic: str, message: Any) -> None:  # noqa: ANN401
    client.publish(topic, message.SerializeToString(), qos=1).wait_for_publish(10)


def run(box: Sandbox, presses: int, interval_s: float) -> list[float]:
    """Latencies (s) of the presses that arrived, in press order."""
    arrivals = _Arrivals()
    scheme = TopicScheme(box.mqtt.topic_prefix)
    env = process_env(box.pg, box.mqtt, box.influx)
    with _receiver(arrivals) as url, psycopg.connect(box.database_url, autocommit=True) as db:
        store.save_template(
            db,
            template_to_row(
                Template(name="bench", message="{message}", recipients=(Recipient("webhook", url),))
            ),
            "benchmark",
            replace=True,
        )
        save_rule(db, Rule(name="PANIC1 pressed", kind="panel", metric="alarm_panic1",
                           operator=RuleOperator.EQ, critical=1.0, cooldown_minutes=0.0,
                           actions=(Action(template="bench"),)), "benchmark")  # fmt: skip
        fleetwatch = [sys.executable, "-m", "fleetwatch"]
        processes = [
            subprocess.Popen([*fleetwatch, "ingest"], env=env),  # noqa: S603 - our own command
            subprocess.Popen([*fleetwatch, "notify", "--channel", "webhook"], env=env),  # noqa: S603
        ]
        try:
            return _press(box, db, scheme, arrivals, presses, interval_s)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)


def _press(  # noqa: PLR0917 - the run's parts, passed on
    box: Sandbox,
    db: psycopg.Connection[Any],
    scheme: TopicScheme,
    arrivals: _Arrivals,
    presses: int,
    interval_s: float,
) -> list[float]:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=box.publisher_id)
    client.connect(box.mqtt.mqtt_host, box.mqtt.mqtt_port)
    client.loop_start()
    try:
        panels = [_panel(n) for n in range(presses)]
        deadline = time.monotonic() + START_TIMEOUT_S
        # Until ingest has subscribed, what is published is not kept for it: statuses are
        # published again until it has registered every panel.
        while _registered(db) < presses:
            if time.monotonic() > deadline:
                raise RuntimeError(f"ingest registered {_registered(db)} of {presses} panels")
            for hostname, mac in panels:
                _publish(client, scheme.topic(hostname, TopicKind.STATUS),
                         pb.StatusMessage(mac_address=mac.upper(), hostname=hostname, zone=1,
                                          timestamp=int(time.time() * 1000)))  # fmt: skip
            time.sleep(1.0)
        published: dict[str, float] = {}
        for sequence, (hostname, mac) in enumerate(panels, start=1):
            alarm = pb.AlarmEvent(mac_address=mac.upper(), sequence=sequence,
                                  timestamp=int(time.time() * 1000), type=pb.AlarmEvent.PANIC1,
                                  state=pb.AlarmEvent.ACTIVE, priority=pb.AlarmEvent.CRITICAL,
                                  physical_state=True)  # fmt: skip
            published[hostname] = time.monotonic()
            _publish(client, scheme.topic(hostname, TopicKind.ALARM), alarm)
            time.sleep(interval_s)
        arrivals.wait(presses, 30.0)
    finally:
        client.loop_stop()
        client.disconnect()
    with arrivals.lock:
        return [arrivals.times[h] - published[h] for h, _ in panels if h in arrivals.times]


def _registered(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM devices").fetchone()
    return int(row[0]) if row else 0


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(latencies: Sequence[float], presses: int, interval_s: float) -> str:
    """The figures, one block."""
    if not latencies:
        return f"panic press -> webhook: none of {presses} presses arrived"
    ms = [1000 * s for s in latencies]
    return (
        f"panic press -> webhook, {presses} presses {interval_s * 1000:.0f} ms apart, default "
        f"settings (ingest batch wait 50 ms, worker woken by NOTIFY):\n"
        f"  arrived {len(ms)} of {presses}\n"
        f"  p50 {_quantile(ms, 0.5):.0f} ms  p90 {_quantile(ms, 0.9):.0f} ms  "
        f"p99 {_quantile(ms, 0.99):.0f} ms  max {max(ms):.0f} ms  mean {statistics.mean(ms):.0f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every press arrived."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alert_latency")
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=100.0)
    args = parser.parse_args(argv)
    logs.configure("WARNING")
    pg, mqtt, influx = load(PostgresSettings), load(MqttSettings), load(InfluxSettings)
    with sandbox(pg, mqtt, influx, keep=False) as box:
        latencies = run(box, args.presses, args.interval_ms / 1000)
    print(report(latencies, args.presses, args.interval_ms / 1000))
    return 0 if len(latencies) == args.presses else 1


if __name__ == "__main__":
    raise SystemExit(main())
