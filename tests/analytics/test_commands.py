"""Command success rates on hand-built command frames."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics.commands import command_success
from analytics.selection import AnalyticsError
from tests.analytics.builders import T0, command_frame

S = timedelta(seconds=1)
SENT = {"sent_at": T0 + 1 * S}


def _done(ack_s: float, complete_s: float, **extra: object) -> dict[str, object]:
    return {
        **SENT,
        "status": "COMPLETED",
        "acknowledged_at": T0 + (1 + ack_s) * S,
        "completed_at": T0 + (1 + complete_s) * S,
        **extra,
    }


COMMANDS = command_frame(
    _done(1, 2),
    _done(2, 4),
    _done(3, 6, retry_count=1),
    _done(4, 8, command_type="OUTPUT", hostname="B", device_id=2),
    {**SENT, "status": "FAILED", "acknowledged_at": T0 + 3 * S, "retry_count": 2},
    {**SENT, "status": "TIMEOUT", "retry_count": 1},
    {"status": "CANCELLED"},
    {"status": "PENDING", "timestamp": T0 + timedelta(days=1)},
    # an acknowledgement of an earlier attempt, older than the latest send: no latency
    {"status": "ACKNOWLEDGED", "sent_at": T0 + 50 * S, "acknowledged_at": T0 + 40 * S},
)


def test_overall_outcomes_rates_and_latencies() -> None:
    """Outcome counts, success over commands with a device outcome, retries, p50/p95."""
    row = command_success(COMMANDS).row(0, named=True)
    assert row == {
        "total": 9,
        "completed": 4,
        "failed": 1,
        "timeout": 1,
        "cancelled": 1,
        "in_flight": 2,
        "success_rate": pytest.approx(4 / 6),
        "retries_per_command": pytest.approx(4 / 9),
        "ack_p50_s": 2.0,  # acknowledgements after 1, 2, 2 (the failed one), 3, 4 s
        "ack_p95_s": pytest.approx(3.8),
        "complete_p50_s": 5.0,  # completions after 2, 4, 6, 8 s
        "complete_p95_s": pytest.approx(7.7),
    }


def test_by_type_device_and_day() -> None:
    """The same figures per command type, per device and per day queued."""
    by_type = command_success(COMMANDS, "command_type")
    assert by_type.select("command_type", "total", "completed", "success_rate").rows() == [
        ("OUTPUT", 1, 1, 1.0),
        ("SYSTEM", 8, 3, pytest.approx(3 / 5)),
    ]
    by_device = command_success(COMMANDS, "device")
    assert by_device.select("hostname", "total").rows() == [("ESG_ALARM_0001", 8), ("B", 1)]
    by_day = command_success(COMMANDS, "day")
    day = T0.replace(hour=0)
    assert by_day.select("day", "total", "success_rate").rows() == [
        (day, 8, pytest.approx(4 / 6)),
        (day + timedelta(days=1), 1, None),  # only a pending command: no rate yet
    ]


def test_no_commands_gives_one_empty_row() -> None:
    """Zero commands: zero counts and no rate, not an error."""
    row = command_success(COMMANDS.clear()).row(0, named=True)
    assert (row["total"], row["success_rate"], row["ack_p50_s"]) == (0, None, None)


def test_unknown_dimension_is_refused() -> None:
    """Grouping by something that is not a dimension is an error."""
    with pytest.raises(AnalyticsError):
        command_success(COMMANDS, "status")  # type: ignore[arg-type]
