"""The sign-in throttle's policy: free failures, a doubling delay, then a lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from access.throttle import ThrottlePolicy

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


def test_first_failures_cost_nothing() -> None:
    """Up to free_failures, a name may try again at once."""
    policy = ThrottlePolicy(free_failures=3)
    for failures in (1, 2, 3):
        assert policy.after_failure(failures, NOW).refused_until(NOW) is None


def test_delay_doubles_then_caps() -> None:
    """After the free failures each one doubles the wait, up to max_delay_s."""
    policy = ThrottlePolicy(free_failures=3, base_delay_s=2, max_delay_s=10, lock_after=20)
    waits = [
        (policy.after_failure(n, NOW).refused_until(NOW) - NOW).total_seconds()  # type: ignore[operator]
        for n in (4, 5, 6, 7)
    ]
    assert waits == [2, 4, 8, 10]


def test_lock_after_repeated_failures() -> None:
    """At lock_after failures the name is locked for lock_minutes."""
    policy = ThrottlePolicy(lock_after=8, lock_minutes=15)
    throttle = policy.after_failure(8, NOW)
    assert throttle.locked_until == NOW + timedelta(minutes=15)
    assert throttle.refused_until(NOW + timedelta(minutes=14)) == NOW + timedelta(minutes=15)
    assert throttle.refused_until(NOW + timedelta(minutes=15)) is None


def test_inconsistent_policy_is_refused() -> None:
    """A policy whose free failures reach the lock is refused at construction."""
    with pytest.raises(ValueError, match="free_failures"):
        ThrottlePolicy(free_failures=5, lock_after=5)
