"""The life of one (rule, subject): a pure state machine, fed each received value in order.

    idle --breach--> pending --held for_seconds (cooldown over)--> open --cleared-->
    clearing --held clear_for_seconds--> resolved (idle again)

An open event whose value breaches a worse threshold is raised to that severity; a value
between the thresholds and the clear threshold changes nothing (hysteresis). Time is the
values' own (their receive time), so replaying the same values gives the same transitions;
a sweep feeds the last value again at the current time so that a ``for`` or a clear
duration ends even when values stop arriving (a device that went offline).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from alerting.rules import RANK, Rule, Severity

__all__ = ["Open", "Raise", "Resolve", "RuleState", "Transition", "evaluate"]


@dataclass(slots=True)
class RuleState:
    """Where a (rule, subject) stands (``rule_states``)."""

    last_value: float | None = None
    last_seen_at: datetime | None = None
    pending_since: datetime | None = None
    pending_severity: Severity | None = None
    clear_since: datetime | None = None
    event_id: int | None = None
    event_severity: Severity | None = None
    last_triggered_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.event_severity is not None

    @property
    def waiting(self) -> bool:
        """True while a duration runs (a pending breach, or a clear condition)."""
        return self.pending_since is not None or self.clear_since is not None


@dataclass(frozen=True, slots=True)
class Open:
    """An event opens: the value breached ``threshold`` at ``severity`` long enough."""

    severity: Severity
    value: float
    threshold: float
    since: datetime


@dataclass(frozen=True, slots=True)
class Raise:
    """The open event becomes more severe."""

    severity: Severity
    value: float
    threshold: float


@dataclass(frozen=True, slots=True)
class Resolve:
    """The clear condition held long enough: the event resolves."""

    value: float


Transition = Open | Raise | Resolve | None


def evaluate(
    rule: Rule, state: RuleState, value: float, at: datetime, hint: Severity | None = None
) -> Transition:
    """Apply ``value`` received at ``at`` to ``state`` (changed in place); the transition.

    ``hint`` is the severity the value's source states for itself (a panel alarm's
    priority): when given, a breach takes that severity instead of the threshold's.
    """
    state.last_value = value
    state.last_seen_at = at
    breach = rule.breach(value)
    level = None if breach is None else (hint or breach[0])
    if state.open:
        return _while_open(rule, state, value, at, breach, level)
    state.clear_since = None
    if breach is None or level is None:
        state.pending_since = state.pending_severity = None
        return None
    if state.pending_since is None:
        state.pending_since = at
    state.pending_severity = level
    if at - state.pending_since < rule.pending:
        return None
    if state.last_triggered_at is not None and at - state.last_triggered_at < rule.cooldown:
        return None  # still pending: opens once the cooldown is over, if it still holds
    since = state.pending_since
    state.pending_since = state.pending_severity = None
    state.event_severity = level
    state.last_triggered_at = at
    return Open(level, value, breach[1], since)


def _while_open(  # noqa: PLR0917 - evaluate()'s own state, passed on
    rule: Rule,
    state: RuleState,
    value: float,
    at: datetime,
    breach: tuple[Severity, float] | None,
    level: Severity | None,
) -> Transition:
    if rule.cleared(value):
        if state.clear_since is None:
            state.clear_since = at
        if at - state.clear_since < rule.clearing:
            return None
        state.clear_since = None
        state.event_id = state.event_severity = None
        return Resolve(value)
    state.clear_since = None
    current = state.event_severity
    if (
        breach is not None
        and level is not None
        and current is not None
        and RANK[level] > RANK[current]
    ):
        state.event_severity = level
        return Raise(level, value, breach[1])
    return None
