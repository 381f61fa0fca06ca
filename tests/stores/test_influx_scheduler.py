"""The influxd the project builds does not spin after a queued task is deleted.

InfluxDB 2.7's task scheduler resets its timer with a negative duration when it wakes for a
task that was deleted while a later one is queued, and then burns a core until that later
task is due (scripts/influxd-patches/scheduler-timer-sign.patch). The test plays exactly
that and reads influxd's CPU time from /proc.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from influxdb_client.domain.task_create_request import TaskCreateRequest

from fleetwatch.settings import InfluxSettings
from stores.influx import make_client

ROOT = Path(__file__).resolve().parents[2]
EVERY_S = 5
MEASURE_S = 5.0
MAX_CORE_SHARE = 0.10


def influxd_pid() -> int:
    """The process id of the influxd that scripts/services.sh started."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "pid", "influxdb"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            "this check reads influxd's CPU time from /proc and needs the influxd that "
            f"`scripts/services.sh up` runs on this machine: {done.stderr.strip()}",
            pytrace=False,
        )
    return int(done.stdout.strip())


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def task_flux(name: str, schedule: str) -> str:
    return f"""import "array"

option task = {{name: "{name}", {schedule}}}

array.from(rows: [{{v: 1}}]) |> yield(name: "noop")
"""


def test_deleting_a_queued_task_leaves_influxd_idle(influx_service: InfluxSettings) -> None:
    """A task due in seconds is deleted while a later one stays queued: once its due time
    has passed, influxd uses under a tenth of a core."""
    pid = influxd_pid()
    tag = uuid.uuid4().hex[:8]
    org = influx_service.influx_org
    with make_client(influx_service) as client:
        api = client.tasks_api()
        # Due on 1 January: it stays first in the queue once the short task is gone.
        later = api.create_task(
            task_create_request=TaskCreateRequest(
                org=org, flux=task_flux(f"t-later-{tag}", 'cron: "0 0 1 1 *"'), status="active"
            )
        )
        try:
            soon = api.create_task(
                task_create_request=TaskCreateRequest(
                    org=org, flux=task_flux(f"t-soon-{tag}", f"every: {EVERY_S}s"), status="active"
                )
            )
            api.delete_task(soon.id)
            deleted_at = datetime.now(UTC).timestamp()
            # The scheduler still wakes at the deleted task's due time: the next multiple of
            # EVERY_S seconds. Measure from a little after it.
            due = (int(deleted_at) // EVERY_S + 1) * EVERY_S
            time.sleep(max(due - datetime.now(UTC).timestamp(), 0) + 1.5)
            before, started = cpu_seconds(pid), time.monotonic()
            time.sleep(MEASURE_S)
            used, elapsed = cpu_seconds(pid) - before, time.monotonic() - started
        finally:
            api.delete_task(later.id)
    share = used / elapsed
    print(f"influxd used {used:.2f} CPU-s in {elapsed:.1f} s ({share:.0%} of a core)")
    assert share < MAX_CORE_SHARE, (
        f"influxd used {share:.0%} of a core after a queued task was deleted: its scheduler "
        "spins (is the influxd built without scripts/influxd-patches?)"
    )
