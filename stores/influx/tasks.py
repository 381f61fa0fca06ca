"""The hourly downsampling of the CDC history: an InfluxDB task, and the same Flux on demand.

The computation lives in ``flux/hourly_stats.flux`` for the panels' heartbeat
(``hourlyStats()`` for one window, ``toHourly()`` to write its rows, ``toGroups()`` to write
their sums per zone and country, ``pointKinds()`` and ``toKinds()`` for the points by change
type) and in ``flux/metric_hourly.flux`` for every metric history (``metricHourly()`` and
``toMetricHourly()``: telemetry and the robot's parts, named by the caller from the kinds'
declarations); this module only renders the calls around them:

* ``ensure_hourly_task`` installs it as a task that runs every hour (a few minutes past, so
  the hour's last points have arrived) and recomputes the last ``RECOMPUTE_HOURS`` whole
  hours each time: points that reach InfluxDB late (an outbox replayed after an outage)
  still count, and writing an hour again overwrites its points;
* ``run_hourly_stats`` runs it now over any range of whole hours, for backfills (points
  older than the task's reach, e.g. a device's backlog stamped with its own clock) and tests.

fleetwatch never deletes, deactivates or reschedules a task in normal operation. InfluxDB
2.7's scheduler (the official image included) spins a core after a queued task is removed
until the next task is due (README, Operations notes). So the task is created once, later
updates change only its Flux and keep ``TASK_EVERY`` and ``TASK_OFFSET`` (a new schedule
would leave the scheduler waking for the old one), and the only deletion is of a duplicate
left by two concurrent ``fleetwatch migrate``: it is due at the same moment as the task that
stays, so the scheduler's next wake-up still finds a run due.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.domain.task import Task
from influxdb_client.domain.task_create_request import TaskCreateRequest
from influxdb_client.domain.task_update_request import TaskUpdateRequest

from stores.influx.client import api_errors

logger = logging.getLogger(__name__)

FLUX_FILE = Path(__file__).with_name("flux") / "hourly_stats.flux"
METRIC_FLUX_FILE = FLUX_FILE.with_name("metric_hourly.flux")
TASK_NAME = "fleetwatch-hourly-stats"
# Never change these two for an installed base: see the module's note on the scheduler.
TASK_EVERY = "1h"
TASK_OFFSET = "5m"
RECOMPUTE_HOURS = 3
HOURS_PER_QUERY = 24
"""A backfill asks for at most this many hours (one ``hourlyStats()`` each) per query."""

_HOUR = timedelta(hours=1)
_DEVICE_HOURS = "device_hours"
_METRIC_HOURS = "metric_hours"
_IMPORT = re.compile(r'^import "[^"]+"\n?', re.MULTILINE)


@cache
def hourly_stats_flux() -> str:
    """The Flux library of the downsampling (``hourlyStats``, ``toHourly``, ``toGroups``,
    ``metricHourly``, ``toMetricHourly``), both files with their imports merged."""
    panel = FLUX_FILE.read_text(encoding="utf-8")
    metric = METRIC_FLUX_FILE.read_text(encoding="utf-8")
    imports = sorted(
        {line for text in (panel, metric) for line in text.splitlines() if _IMPORT.match(line)}
    )
    bodies = [_IMPORT.sub("", text).strip() for text in (panel, metric)]
    return "\n".join(imports) + "\n\n" + "\n\n".join(bodies) + "\n"


def task_name(hourly_bucket: str) -> str:
    """The task filling ``hourly_bucket``: one per target bucket, so that two deployments
    (or test runs) sharing an organisation never take over each other's task."""
    return f"{TASK_NAME} ({hourly_bucket})"


def task_flux(
    org: str, raw_bucket: str, hourly_bucket: str, metric_measurements: Sequence[str] = ()
) -> str:
    """The complete Flux of the task: the library, the task options and the scheduled run
    (the heartbeat's statistics, and each of ``metric_measurements``' per metric)."""
    name = task_name(hourly_bucket)
    bounds = [f"date.sub(d: {back}h, from: stop)" for back in range(RECOMPUTE_HOURS, 0, -1)]
    stats = _stats([*bounds, "stop"])
    metrics = _metric_stats(metric_measurements, [*bounds, "stop"])
    metric_run = (
        f"""
{metrics}
    |> toMetricHourly(bucket: {_string(hourly_bucket)}, org: {_string(org)})
"""
        if metrics
        else ""
    )
    return f"""{hourly_stats_flux().rstrip()}

option task = {{name: {_string(name)}, every: {TASK_EVERY}, offset: {TASK_OFFSET}}}

// In a task now() is the scheduled time (the hour), whatever the offset: recompute the
// {RECOMPUTE_HOURS} whole hours before it.
raw = {_string(raw_bucket)}
stop = date.truncate(t: now(), unit: 1h)

{stats}
    |> toHourly(bucket: {_string(hourly_bucket)}, org: {_string(org)})
    |> toGroups(bucket: {_string(hourly_bucket)}, org: {_string(org)})

pointKinds(bucket: raw, start: {bounds[0]}, stop: stop)
    |> toKinds(bucket: {_string(hourly_bucket)}, org: {_string(org)})
{metric_run}"""


def find_tasks(client: InfluxDBClient, org: str, name: str) -> list[Task]:
    """The tasks of ``org`` called ``name``, oldest first."""
    with api_errors(client, f"looking up task {name!r}"):
        tasks = client.tasks_api().find_tasks(name=name, org=org) or []
    return sorted(tasks, key=lambda task: task.created_at or datetime.min.replace(tzinfo=UTC))


def ensure_hourly_task(
    client: InfluxDBClient,
    org: str,
    raw_bucket: str,
    hourly_bucket: str,
    metric_measurements: Sequence[str] = (),
) -> Task:
    """The hourly downsampling task from ``raw_bucket`` into ``hourly_bucket``; idempotent.

    ``metric_measurements`` are the metric histories (telemetry, the robot's parts) whose
    metrics it downsamples besides the heartbeat.

    Matched by name (``task_name(hourly_bucket)``): created when missing, its Flux replaced
    when it differs from this version's (new code, another raw bucket or org), left alone
    otherwise; an operator's deactivation is kept. Duplicates left by a race between two
    ``fleetwatch migrate`` are deleted. Raises StoreError (StoreUnavailableError when
    InfluxDB does not answer).
    """
    name = task_name(hourly_bucket)
    flux = task_flux(org, raw_bucket, hourly_bucket, metric_measurements)
    description = f"device_hourly_stats from {raw_bucket} into {hourly_bucket} (fleetwatch)"
    api = client.tasks_api()
    existing = find_tasks(client, org, name)
    if not existing:
        request = TaskCreateRequest(org=org, flux=flux, status="active", description=description)
        with api_errors(client, f"creating task {name!r}"):
            task = api.create_task(task_create_request=request)
        logger.info("created task %s (every %s, offset %s)", name, TASK_EVERY, TASK_OFFSET)
        return task
    task, *duplicates = existing
    for duplicate in duplicates:
        logger.warning("deleting duplicate task %s (id %s)", name, duplicate.id)
        with api_errors(client, f"deleting duplicate task {name!r}"):
            api.delete_task(duplicate.id)
    if task.flux == flux:
        logger.debug("task %s is up to date", name)
        return task
    update = TaskUpdateRequest(flux=flux, description=description)
    with api_errors(client, f"updating task {name!r}"):
        task = api.update_task_request(task_id=task.id, task_update_request=update)
    logger.info("updated the Flux of task %s", name)
    return task


def run_hourly_stats(
    client: InfluxDBClient,
    org: str,
    raw_bucket: str,
    hourly_bucket: str,
    *,
    start: datetime,
    stop: datetime,
    metric_measurements: Sequence[str] = (),
) -> int:
    """Compute and write the statistics of every hour in [start, stop) now; the heartbeat's
    device-hours written (the metric histories' rows are logged).

    ``start`` and ``stop`` are timezone-aware, on the hour, and ``stop`` is not in the
    future (an hour still running has no final figures). This is the task's Flux over
    another range: use it to backfill, or to recompute hours whose points arrived late.
    Writing an hour again replaces its rows. Raises StoreError (StoreUnavailableError when
    InfluxDB does not answer).
    """
    for name, moment in (("start", start), ("stop", stop)):
        if moment.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware")
        if moment.astimezone(UTC) != _floor_hour(moment):
            raise ValueError(f"{name} must be on the hour, got {moment.isoformat()}")
    if stop <= start:
        raise ValueError(f"empty range: {start.isoformat()} to {stop.isoformat()}")
    if stop > datetime.now(UTC):
        raise ValueError(f"stop {stop.isoformat()} is in the future")
    hours = [start + n * _HOUR for n in range(int((stop - start) / _HOUR))]
    written = metric_rows = 0
    for first in range(0, len(hours), HOURS_PER_QUERY):
        batch = hours[first : first + HOURS_PER_QUERY]
        flux = _query_flux(org, raw_bucket, hourly_bucket, batch, metric_measurements)
        devices, metrics = _run(client, org, flux)
        written += devices
        metric_rows += metrics
    logger.info(
        "downsampled %d hours from %s into %s: %d device-hours, %d metric-hours written",
        len(hours),
        raw_bucket,
        hourly_bucket,
        written,
        metric_rows,
    )
    return written


def _query_flux(
    org: str,
    raw_bucket: str,
    hourly_bucket: str,
    hours: list[datetime],
    metric_measurements: Sequence[str],
) -> str:
    bounds = [*(_time(hour) for hour in hours), _time(hours[-1] + _HOUR)]
    stats = _stats(bounds)
    metrics = _metric_stats(metric_measurements, bounds)
    metric_run = (
        f"""
{metrics}
    |> toMetricHourly(bucket: {_string(hourly_bucket)}, org: {_string(org)})
    |> group()
    |> count(column: "avg")
    |> yield(name: "{_METRIC_HOURS}")
"""
        if metrics
        else ""
    )
    return f"""{hourly_stats_flux().rstrip()}

raw = {_string(raw_bucket)}

{stats}
    |> toHourly(bucket: {_string(hourly_bucket)}, org: {_string(org)})
    |> toGroups(bucket: {_string(hourly_bucket)}, org: {_string(org)})
    |> group()
    |> sum(column: "devices")
    |> yield(name: "{_DEVICE_HOURS}")

pointKinds(bucket: raw, start: {_time(hours[0])}, stop: {_time(hours[-1] + _HOUR)})
    |> toKinds(bucket: {_string(hourly_bucket)}, org: {_string(org)})
    |> group()
    |> count()
    |> yield(name: "kinds")
{metric_run}"""


def _stats(bounds: list[str]) -> str:
    """Flux streaming the rows of one ``hourlyStats()`` per pair of consecutive ``bounds``
    (Flux time expressions), from the raw bucket named by the variable ``raw``."""
    calls = [
        f"hourlyStats(bucket: raw, start: {start}, stop: {stop})"
        for start, stop in itertools.pairwise(bounds)
    ]
    return _union(calls)


def _union(calls: list[str]) -> str:
    """Flux streaming the rows of every call; "" for none."""
    if len(calls) <= 1:  # union() wants two streams at least
        return "".join(calls)
    listed = "".join(f"        {call},\n" for call in calls)
    return f"union(\n    tables: [\n{listed}    ],\n)"


def _metric_stats(measurements: Sequence[str], bounds: list[str]) -> str:
    """Flux streaming the rows of one ``metricHourly()`` per measurement and pair of
    consecutive ``bounds``; "" for no measurement."""
    calls = [
        f"metricHourly(bucket: raw, measurement: {_string(measurement)}, "
        f"start: {start}, stop: {stop})"
        for measurement in sorted(set(measurements))
        for start, stop in itertools.pairwise(bounds)
    ]
    return _union(calls)


def _run(client: InfluxDBClient, org: str, flux: str) -> tuple[int, int]:
    """Device-hours of the heartbeat and metric-hours of the metric histories written."""
    with api_errors(client, "computing the hourly statistics"):
        tables = client.query_api().query(flux, org=org)
    devices = metrics = 0
    for table in tables:
        for record in table.records:
            result = record.values.get("result")
            if result == _DEVICE_HOURS:  # each group row counts the device rows in it
                devices += int(record["devices"])
            elif result == _METRIC_HOURS:
                metrics += int(record["avg"])
    return devices, metrics


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _time(moment: datetime) -> str:
    """A Flux time literal (RFC 3339, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _string(value: str) -> str:
    """A Flux string literal: quotes, backslashes and interpolation escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'
