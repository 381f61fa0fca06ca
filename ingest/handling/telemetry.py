"""Handlers of telemetry devices of declared types (seed 002): JSON readings checked
against the device's type, and the persisted CDC references of metric-declared kinds."""

from __future__ import annotations

import json
import logging

from ingest.cdc import CdcState, Decision, MetricReading, StateKey
from ingest.handling.core import WalkCore, _Device, _hour, _value
from ingest.kinds import telemetry as telemetry_kind
from ingest.kinds.telemetry import DeviceType, checked_values
from ingest.messages import (
    Rejected,
    RejectReason,
    StateSnapshot,
    TelemetryReport,
)
from stores.influx.points import (
    TELEMETRY,
    MetricPoint,
    metric_line,
)
from stores.postgres.ingest_store import (
    BatchTx,
    DeviceView,
    MetricStateRow,
)

logger = logging.getLogger("ingest.handling")


class TelemetryHandlers(WalkCore):
    """The readings of devices of declared types (identified by their serial)."""

    def _known_serial(self, serial: str) -> _Device:
        device_id = self._by_serial.get(serial)
        if device_id is None or device_id not in self._types:
            raise Rejected(
                RejectReason.UNKNOWN_SERIAL,
                f"no device with serial {serial} (add it, or let its type auto-register)",
            )
        return self._devices[device_id]

    def _snapshot(self, dev: _Device, msg: StateSnapshot) -> None:
        """A device's whole state (seed 003 ``status``): kept as sent, and the values its
        type declares go through the CDC and the rules as a reading."""
        device_type = self._types[dev.device_id]
        if msg.device_type and msg.device_type != device_type.name:
            raise Rejected(
                RejectReason.WRONG_DEVICE_TYPE,
                f"status of a {msg.device_type[:40]!r} from a {device_type.name} device",
            )
        state = json.dumps(msg.state, separators=(",", ":"), allow_nan=False)
        self.plan.snapshots.append((dev.device_id, device_type.name, state, msg.event_time))
        declared = {m.name for m in device_type.metrics}
        values = {name: v for name, v in msg.metrics.items() if name in declared}
        self._telemetry(dev, replace_metrics(msg, values))

    def _telemetry(self, dev: _Device, msg: TelemetryReport) -> None:
        """A reading of a device of a declared type: checked against the type, then CDC.

        A reading without metrics (a WebSocket heartbeat) only proves the device alive.
        """
        device_type = self._types[dev.device_id]
        if not msg.metrics:
            self._seen(dev, msg.received_at, "heartbeat")
            self.plan.counts[(dev.device_id, _hour(msg.received_at), "received")] += 1
            return
        values = checked_values(device_type, msg.metrics)
        state = self._tracker.snapshot([dev.device_id]).get(dev.device_id)
        # A metric the message left out keeps its stored value: a reading is a whole state.
        before = state.reference if state is not None else None
        merged = {
            m.name: values[m.name] if m.name in values else _value(before, m.name)
            for m in device_type.metrics
        }
        reading = MetricReading(
            telemetry_kind.KIND, self._history_time(dev, msg.event_time), msg.device_ts, merged
        )
        hour = _hour(reading.received_at)
        decision = self._tracker.observe(dev.device_id, reading, device_type.kind)
        self.plan.cdc_devices.add(dev.device_id)
        if decision.duplicate:
            self.plan.duplicates += 1
            return
        self._seen(dev, msg.received_at, "telemetry")
        self._observe(dev, telemetry_kind.KIND, msg.received_at, values)
        self.plan.counts[(dev.device_id, hour, "received")] += 1
        if decision.write and decision.change_type is not None:
            self.plan.counts[(dev.device_id, hour, "written")] += 1
            self.plan.lines.append(self._history_line(dev, reading, decision))

    def _telemetry_line(self, dev: _Device, reading: MetricReading, decision: Decision) -> str:
        device_type = self._types[dev.device_id]
        return metric_line(
            MetricPoint(
                measurement=TELEMETRY,
                tags={
                    "device_id": str(dev.device_id),
                    "hostname": dev.identity.hostname or "",
                    "device_type": device_type.name,
                },
                time=reading.received_at,
                values={m.name: reading.value(m.name) for m in device_type.metrics},
                is_online=reading.is_online,
                change_type=decision.change_type.value if decision.change_type else "MANUAL",
                changes=decision.changes,
                device_time=reading.device_ts,
            )
        )


def _types_of(tx: BatchTx, views: dict[int, DeviceView]) -> dict[int, DeviceType]:
    """The declared type of each of these devices that has one."""
    typed = {i: v.device_type_id for i, v in views.items() if v.device_type_id is not None}
    if not typed:
        return {}
    types = {row.id: telemetry_kind.from_row(row) for row in tx.device_types(typed.values())}
    return {i: types[t] for i, t in typed.items() if t in types}


def metric_state_row(key: StateKey, state: CdcState) -> MetricStateRow:
    """The persisted form of a CDC state of a device (or one of its streams) whose kind is
    declared by metrics alone."""
    ref = state.reference
    if not isinstance(ref, MetricReading):
        raise TypeError(f"expected a metric reading, got {type(ref).__name__}")
    device_id, stream = key if isinstance(key, tuple) else (key, "")
    return MetricStateRow(
        device_id=device_id,
        stream=stream,
        kind=ref.kind,
        written_at=ref.received_at,
        values=dict(ref.values),
        is_online=ref.is_online,
        last_device_ts=state.last_device_ts,
    )


def metric_state(row: MetricStateRow) -> CdcState:
    """A CDC state from its persisted form."""
    reference = MetricReading(row.kind, row.written_at, None, dict(row.values), row.is_online)
    return CdcState(reference=reference, last_device_ts=row.last_device_ts)


def state_key(row: MetricStateRow) -> StateKey:
    """The tracker's key of a persisted state."""
    return (row.device_id, row.stream) if row.stream else row.device_id


def replace_metrics(msg: StateSnapshot, metrics: dict[str, bool | int | float]) -> TelemetryReport:
    """The reading a snapshot's declared ``metrics`` make."""
    return TelemetryReport(
        hostname=msg.hostname,
        received_at=msg.received_at,
        device_ts=msg.device_ts,
        message_id=msg.message_id,
        version="",
        metrics=metrics,
        device_type=None,
    )
