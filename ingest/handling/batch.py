"""The batch driver: load what a batch needs, walk it, write its plan in one transaction."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg

from alerting import engine as alerting
from alerting.book import RuleCache
from ingest.cdc import CdcTracker
from ingest.commands import CommandTiming
from ingest.handling.core import DEFAULT_TIMING, Item, Outcome, Plan, _Device, _now
from ingest.handling.panel import cdc_row, cdc_state
from ingest.handling.telemetry import _types_of, metric_state, metric_state_row, state_key
from ingest.handling.walk import Walk
from ingest.kinds import telemetry as telemetry_kind
from ingest.kinds.panel import PanelReading
from ingest.messages import (
    AlarmReport,
    CommandReply,
    DeviceMessage,
    HeartbeatReport,
    JobReport,
    LastWill,
    RobotReport,
    StateSnapshot,
    StatusReport,
    TelemetryReport,
)
from ingest.partitioning import DeviceShare
from stores.postgres.ingest_store import (
    BatchTx,
    DeviceView,
    IngestStore,
    NewDevice,
)
from stores.postgres.partitions import Share

logger = logging.getLogger("ingest.handling")

# Work a batch's transaction does last, on its connection (a transport saving its position).
Within = Callable[[psycopg.Connection[Any]], None]


def _working(
    views: dict[int, DeviceView], open_alarms: set[tuple[int, str, int]]
) -> dict[int, _Device]:
    """The batch's devices, each with its open alarms."""
    by_device: dict[int, set[tuple[str, int]]] = {}
    for device_id, alarm_type, output in open_alarms:
        by_device.setdefault(device_id, set()).add((alarm_type, output))
    return {i: _Device.of(v, by_device.get(i, set())) for i, v in views.items()}


class BatchHandler:
    """Applies batches of decoded items to PostgreSQL in one transaction each.

    The CDC tracker is advanced during the walk and rolled back if the transaction fails, so
    a retried batch is judged exactly as the first attempt was.
    """

    def __init__(
        self,
        store: IngestStore,
        tracker: CdcTracker,
        timing: CommandTiming = DEFAULT_TIMING,
        *,
        link: str = "",
    ) -> None:
        self._store = store
        self._tracker = tracker
        self._timing = timing
        self._rules = RuleCache()
        self._link = link
        # Batches and liveness sweeps share the tracker: one at a time.
        self._lock = threading.Lock()

    def seed(self, share: DeviceShare | None = None) -> int:
        """Load every persisted CDC state, or those of the devices of a worker's ``share``;
        returns how many."""
        where = None if share is None else share.sql_args
        rows = self._store.load_cdc_states(where)
        typed = self._store.load_metric_states(where)
        with self._lock:
            self._tracker.seed({row.device_id: cdc_state(row) for row in rows})
            self._tracker.seed({state_key(row): metric_state(row) for row in typed})
        return len(rows) + len(typed)

    def release(self) -> None:
        """Forget every CDC state: the devices are being handed to another worker, which
        loads their states as committed, and may hand them back later (``seed`` again)."""
        with self._lock:
            self._tracker.clear()

    def handle(self, items: Sequence[Item], within: Within | None = None) -> Outcome:
        """Write one batch; raises StoreUnavailableError (nothing written) to be retried.

        ``within`` runs last in the batch's transaction (a transport saving how far it read).
        """
        return self._transaction(lambda tx: self._walk(tx, items), within)

    def sweep_silent(
        self,
        now: datetime,
        silence: timedelta,
        limit: int = 10_000,
        transports: Sequence[str] | None = None,
        share: DeviceShare | None = None,
    ) -> Outcome:
        """Mark devices (of ``transports``, or all; of a worker's ``share``, or all) silent
        for ``silence`` offline (timeout), with log rows and points."""
        return self._transaction(
            lambda tx: self._silence(
                tx,
                cutoff=now - silence,
                now=now,
                limit=limit,
                transports=transports,
                share=None if share is None else share.sql_args,
            )
        )

    def sweep_rules(self, now: datetime) -> alerting.Effects:
        """End the rules' durations that ran out without a new value (a device that went
        silent while a condition was pending, a clear condition that held)."""
        with self._store.batch() as tx:
            book = self._rules.book(tx.connection)
            if not book:
                return alerting.Effects()
            return alerting.sweep(tx.connection, book, now, link=self._link)

    def _transaction(
        self, build: Callable[[BatchTx], Walk], within: Within | None = None
    ) -> Outcome:
        with self._lock:
            # The tracker remembers what the walk changes: a batch that does not commit is
            # undone, so its retry is judged exactly as this attempt was.
            self._tracker.begin()
            try:
                with self._store.batch() as tx:
                    walk = build(tx)
                    plan = walk.plan
                    # Pipelined: PostgreSQL runs each write while the next one's parameters
                    # are prepared, instead of the two taking turns.
                    with tx.connection.pipeline():
                        point_ids = self._write(tx, walk, plan)
                    effects = self._evaluate(tx, walk)
                    if within is not None:
                        within(tx.connection)
            except BaseException:
                self._tracker.rollback()
                raise
            self._tracker.commit()
        reasons = Counter(letter.reason for letter in plan.dead_letters)
        return Outcome(
            accepted=plan.accepted,
            duplicates=plan.duplicates,
            dead_letters=reasons,
            points_written=len(plan.lines),
            point_ids=point_ids,
            lines=plan.lines,
            ignored=plan.ignored,
            heartbeats_received=sum(n for k, n in plan.counts.items() if k[2] == "received"),
            heartbeat_points=sum(n for k, n in plan.counts.items() if k[2] == "written"),
            events_opened=len(effects.opened),
            verdicts=tuple(plan.verdicts),
        )

    def _evaluate(self, tx: BatchTx, walk: Walk) -> alerting.Effects:
        """The rules on the batch's values, in its transaction (after its writes: the
        devices' rows are locked, so processes evaluating the same device take turns)."""
        observations = walk.plan.observations
        if not observations or walk.book is None:
            return alerting.Effects()
        return alerting.apply(tx.connection, walk.book, observations, link=self._link)

    def _walk(self, tx: BatchTx, items: Sequence[Item]) -> Walk:
        book = self._rules.book(tx.connection)
        messages = [item.message for item in items if item.message is not None]
        macs = {
            m.mac for m in messages if isinstance(m, StatusReport | HeartbeatReport | AlarmReport)
        }
        by_mac = tx.find_by_mac(macs)
        new = {
            m.mac: NewDevice(m.mac, m.hostname, m.country, m.zone, m.latitude, m.longitude)
            for m in messages
            if isinstance(m, StatusReport) and m.mac not in by_mac
        }
        by_mac.update(tx.register(list(new.values())))
        wills = {m.hostname for m in messages if isinstance(m, LastWill)}
        by_host = tx.find_by_hostname(wills) if wills else {}
        replies = {m.request_id for m in messages if isinstance(m, CommandReply)}
        commands = tx.commands(replies) if replies else {}
        by_serial = self._typed_devices(
            tx, [m for m in messages if isinstance(m, TelemetryReport | StateSnapshot)]
        )
        robots = tx.find_robots(
            {m.hostname for m in messages if isinstance(m, RobotReport | JobReport)}
        )
        new_robots = {m.hostname for m in messages if isinstance(m, RobotReport)} - set(robots)
        if new_robots:
            robots.update(tx.register_robots(new_robots))
        ids = (
            set(by_mac.values())
            | set(by_host.values())
            | {c.device_id for c in commands.values()}
            | set(by_serial.values())
            | set(robots.values())
        )
        views = tx.lock_views(ids)
        alarm_ids = {
            by_mac[m.mac] for m in messages if isinstance(m, AlarmReport) and m.mac in by_mac
        }
        open_alarms = tx.open_alarms(alarm_ids) if alarm_ids else set()
        digests = tx.alarm_digests(
            (by_mac[m.mac], m.sequence)
            for m in messages
            if isinstance(m, AlarmReport) and m.mac in by_mac
        )
        devices = _working(views, open_alarms)
        unsynced = {
            m.mac
            for m in messages
            if isinstance(m, StatusReport | HeartbeatReport)
            and m.mac in by_mac
            and m.device_db_id != by_mac[m.mac]
        }
        syncing = tx.devices_syncing(by_mac[mac] for mac in unsynced) if unsynced else set()
        walk = Walk(
            devices,
            by_mac,
            by_host,
            digests,
            self._tracker,
            commands=commands,
            syncing=syncing,
            timing=self._timing,
            serials=by_serial,
            types=_types_of(tx, views),
            robots=robots,
            watched=book.watched,
            taken=self._taken_ids(tx, messages),
        )
        walk.book = book
        for item in items:
            walk.apply(item)
        return walk

    @staticmethod
    def _taken_ids(
        tx: BatchTx, messages: Sequence[DeviceMessage]
    ) -> tuple[dict[str, int], set[tuple[int, str]]]:
        """For the messages that carry ids: their devices' ids by hostname, and which of
        their (device, id) pairs were taken by an earlier batch."""
        keyed = [m for m in messages if m.message_id is not None]
        if not keyed:
            return {}, set()
        hosts = tx.find_by_hostname({m.hostname for m in keyed})
        pairs = {(hosts[m.hostname], str(m.message_id)) for m in keyed if m.hostname in hosts}
        return hosts, tx.taken_message_ids(pairs)

    @staticmethod
    def _typed_devices(
        tx: BatchTx, readings: Sequence[TelemetryReport | StateSnapshot]
    ) -> dict[str, int]:
        """Ids by serial of the devices these readings come from, registering the unknown
        serials whose announced type allows it."""
        if not readings:
            return {}
        by_serial = tx.find_by_serial({m.hostname for m in readings})
        announced = {
            m.hostname: m.device_type
            for m in readings
            if m.hostname not in by_serial and m.device_type is not None
        }
        if announced:
            types = tx.device_types_named(set(announced.values()))
            new = {
                serial: row.id
                for serial, name in announced.items()
                if (row := types.get(str(name))) is not None and row.auto_register and row.id
            }
            if new:
                logger.info("auto-registering %d device(s): %s", len(new), sorted(new)[:10])
                by_serial.update(tx.register_typed(telemetry_kind.KIND, new))
        return by_serial

    def _silence(
        self,
        tx: BatchTx,
        *,
        cutoff: datetime,
        now: datetime,
        limit: int,
        transports: Sequence[str] | None,
        share: Share | None,
    ) -> Walk:
        ids = tx.silent_devices(cutoff, limit, transports, share)
        views = tx.lock_views(ids)
        devices = _working(views, set())
        book = self._rules.book(tx.connection)
        walk = Walk(
            devices, {}, {}, {}, self._tracker, types=_types_of(tx, views), watched=book.watched
        )
        walk.book = book
        for device_id in ids:
            walk.went_silent(device_id, now, views[device_id].last_seen)
        return walk

    def _write(self, tx: BatchTx, walk: Walk, plan: Plan) -> list[int]:
        devices = walk._devices
        states = self._tracker.snapshot(plan.cdc_devices)
        # A device's main history keeps its redelivery guard in its status row, which this
        # batch updates anyway; its reference is written only when a point changed it.
        for key, state in states.items():
            if isinstance(key, int) and key in devices:
                devices[key].set("last_device_ts", state.last_device_ts)
        rewritten = self._tracker.rewritten()
        states = {k: s for k, s in states.items() if k in rewritten or not isinstance(k, int)}
        tx.update_devices({i: d.device_patch for i, d in devices.items() if d.device_patch})
        tx.patch_status({i: d.patch for i, d in devices.items() if d.patch})
        tx.apply_alarm_changes(plan.alarm_changes)
        tx.update_commands(plan.command_updates)
        tx.create_commands(plan.new_commands, _now())
        tx.record_alarm_sequences(plan.sequences)
        tx.insert_dead_letters(plan.dead_letters)
        tx.log_connections(plan.connections)
        tx.patch_robots(plan.robot_patches)
        tx.apply_jobs(plan.jobs)
        tx.insert_snapshots(plan.snapshots)
        tx.record_message_ids(plan.message_ids)
        panels = {
            i: s
            for i, s in states.items()
            if isinstance(i, int) and isinstance(s.reference, PanelReading)
        }
        tx.save_cdc_states([cdc_row(i, s) for i, s in panels.items() if isinstance(i, int)])
        tx.save_metric_states(
            [metric_state_row(i, s) for i, s in states.items() if i not in panels]
        )
        counts: dict[tuple[int, datetime], tuple[int, int]] = {}
        for (device_id, hour, kind), n in plan.counts.items():
            received, written = counts.get((device_id, hour), (0, 0))
            counts[(device_id, hour)] = (
                (received + n, written) if kind == "received" else (received, written + n)
            )
        tx.add_heartbeat_counts(counts)
        return tx.enqueue_points(plan.lines)
