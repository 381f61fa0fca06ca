"""Handlers of robots (seed 004): state messages split into their parts' streams, and
job reports."""

from __future__ import annotations

from ingest.cdc import MetricReading, StateKey
from ingest.handling.core import WalkCore, _Device, _hour, _value
from ingest.kinds import robot as robot_kind
from ingest.messages import (
    JobReport,
    Rejected,
    RejectReason,
    RobotPart,
    RobotReport,
)
from stores.influx.points import (
    MetricPoint,
    metric_line,
)
from stores.postgres.ingest_store import (
    JobChange,
)


class RobotHandlers(WalkCore):
    """The state and job messages of robots (identified by their robot_id)."""

    def _known_robot(self, robot_id: str) -> _Device:
        device_id = self._robots.get(robot_id)
        if device_id is None:
            raise Rejected(
                RejectReason.UNREGISTERED, f"no robot {robot_id} (its state message registers it)"
            )
        return self._devices[device_id]

    def _robot(self, dev: _Device, msg: RobotReport) -> None:
        """A robot's state: each part's stream judged by its declaration and written to its
        measurement; the robots row follows what the robot says of itself."""
        results = [self._robot_part(dev, msg, part) for part in msg.parts]
        if results and all(result is None for result in results):
            self.plan.duplicates += 1  # every part older than what was processed: redelivery
            return
        self._seen(dev, msg.received_at, "robot")
        patch = self.plan.robot_patches.setdefault(dev.device_id, {})
        patch["last_seen"] = msg.received_at
        patch["status"] = msg.status or "online"
        if msg.location is not None:
            patch["location"] = msg.location
        if msg.ip_address is not None:
            patch["ip_address"] = msg.ip_address

    def _robot_part(self, dev: _Device, msg: RobotReport, part: RobotPart) -> bool | None:
        """Observe one part's values; whether a point was written, None for a duplicate."""
        spec = robot_kind.PARTS[part.section]
        key: StateKey = (dev.device_id, spec.stream(part.instance))
        state = self._tracker.state(key)
        before = state.reference if state is not None else None
        # A metric the part left out keeps its stored value: a reading is a whole state.
        merged = {
            m.name: part.values[m.name] if m.name in part.values else _value(before, m.name)
            for m in spec.kind.metrics
        }
        when = self._stream_time(key, msg.event_time)
        reading = MetricReading(spec.kind.name, when, msg.device_ts, merged)
        decision = self._tracker.observe(key, reading, spec.kind)
        self.plan.cdc_devices.add(key)
        if decision.duplicate:
            return None
        self._observe(
            dev,
            spec.kind.name,
            msg.received_at,
            part.values,
            source=spec.stream(part.instance) if spec.instance_tag else "",
            context={"unit": part.unit} if part.unit else None,
        )
        hour = _hour(when)
        self.plan.counts[(dev.device_id, hour, "received")] += 1
        if not decision.write or decision.change_type is None:
            return False
        self.plan.counts[(dev.device_id, hour, "written")] += 1
        tags = {"robot_id": dev.identity.hostname or "", "device_id": str(dev.device_id)}
        if spec.instance_tag is not None and part.instance is not None:
            tags[spec.instance_tag] = part.instance
        if part.unit:
            tags["unit"] = part.unit
        self.plan.lines.append(
            metric_line(
                MetricPoint(
                    measurement=spec.measurement,
                    tags=tags,
                    time=when,
                    values=merged,
                    is_online=True,
                    change_type=decision.change_type.value,
                    changes=decision.changes,
                    device_time=msg.device_ts,
                )
            )
        )
        return True

    def _job(self, dev: _Device, msg: JobReport) -> None:
        """A job's progress: applied in the store so that a redelivered or late report
        never moves a job back (items only grow, a finished job stays finished)."""
        self._seen(dev, msg.received_at, "job")
        self.plan.jobs.append(
            JobChange(
                device_id=dev.device_id,
                robot_id=dev.identity.hostname or "",
                job_key=msg.job_key,
                at=msg.received_at,
                items_total=msg.items_total,
                items_done=msg.items_done,
                last_item=msg.last_item,
                status=msg.status,
                reason=msg.reason,
            )
        )

    def _went_offline(self, dev: _Device) -> None:
        if dev.view.kind == robot_kind.KIND:
            self.plan.robot_patches.setdefault(dev.device_id, {})["status"] = "offline"
