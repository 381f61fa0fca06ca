"""What a rule is: the value it watches, where, and when that value is a problem.

A :class:`Rule` watches one value of one declaration (``kind`` and ``metric``: a panel's
temperature, a telemetry type's vibration, a robot servo's temperature, a device's liveness,
a panel's PANIC1 input) on a scope of devices, and compares it with a warning and/or a
critical threshold. Hysteresis keeps a value hovering at the threshold from flapping: the
event clears only when the value crosses the *clear* threshold (and stays there for
``clear_for_seconds``); ``for_seconds`` makes a condition hold that long before an event.
A rule is checked when it is made, never at evaluation time: a bad rule is refused then.
"""

from __future__ import annotations

import math
import operator as op
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final
from uuid import UUID

from alerting.errors import RuleError
from alerting.recipients import Recipient
from alerting.values import Watchable
from stores.postgres.schema import RuleOperator, RuleScope, Severity

__all__ = ["RANK", "Action", "Rule", "RuleOperator", "RuleScope", "Severity"]

RANK: Final = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
"""Severities in order of urgency."""

_COMPARE: Final[dict[RuleOperator, Callable[[float, float], bool]]] = {
    RuleOperator.GT: op.gt,
    RuleOperator.LT: op.lt,
    RuleOperator.GTE: op.ge,
    RuleOperator.LTE: op.le,
    RuleOperator.EQ: op.eq,
    RuleOperator.NEQ: op.ne,
}
_RISING: Final = frozenset({RuleOperator.GT, RuleOperator.GTE})
_FALLING: Final = frozenset({RuleOperator.LT, RuleOperator.LTE})
MAX_NAME: Final = 255


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """A notification a rule's event sends: a template, to its recipients or these.

    Attributes:
        template: the notification template's name.
        recipients: who gets it; the template's own recipients when empty.
        after_minutes: 0 to send when the event opens; more makes it an escalation step,
            sent only if the event is still unacknowledged and open by then.
        on_resolve: also send it when the event resolves.
        group_seconds: 0 to send each event's notification alone; more waits that long
            and sends the rule's events of one zone that came meanwhile as one message
            (an alarm storm becomes one notification listing the devices).
        repeat_minutes: 0 to send once; more sends it again that often while the event is
            new (nobody acknowledged it).
    """

    template: str
    recipients: tuple[Recipient, ...] = ()
    after_minutes: float = 0.0
    on_resolve: bool = False
    group_seconds: float = 0.0
    repeat_minutes: float = 0.0

    def __post_init__(self) -> None:
        if not self.template:
            raise RuleError("an action names a notification template")
        if not (math.isfinite(self.after_minutes) and self.after_minutes >= 0):
            raise RuleError(f"after_minutes must be 0 or more, got {self.after_minutes!r}")
        if not (math.isfinite(self.group_seconds) and 0 <= self.group_seconds <= 3600):
            raise RuleError(f"group_seconds is 0 to 3600, got {self.group_seconds!r}")
        if not (math.isfinite(self.repeat_minutes) and self.repeat_minutes >= 0):
            raise RuleError(f"repeat_minutes is 0 or more, got {self.repeat_minutes!r}")
        if 0 < self.repeat_minutes < 0.05:
            raise RuleError("repeat a notification every 3 seconds (0.05 minutes) at most")

    @property
    def escalation(self) -> bool:
        """True for a step sent later, and only while nobody has acknowledged."""
        return self.after_minutes > 0

    def to_json(self) -> dict[str, object]:
        """The action as ``rules.action_config`` stores it."""
        data: dict[str, object] = {"type": "notification", "template": self.template}
        if self.recipients:
            data["recipients"] = [r.to_json() for r in self.recipients]
        if self.after_minutes:
            data["after_minutes"] = self.after_minutes
        if self.on_resolve:
            data["on_resolve"] = True
        if self.group_seconds:
            data["group_seconds"] = self.group_seconds
        if self.repeat_minutes:
            data["repeat_minutes"] = self.repeat_minutes
        return data

    @classmethod
    def from_json(cls, data: object) -> Action:
        """An action from ``rules.action_config``; RuleError names what is wrong."""
        if not isinstance(data, dict) or data.get("type", "notification") != "notification":
            raise RuleError(f"an action is {{'type': 'notification', 'template': ...}}: {data!r}")
        recipients = data.get("recipients") or []
        if not isinstance(recipients, list):
            raise RuleError("an action's recipients are a list")
        numbers = {}
        for name in ("after_minutes", "group_seconds", "repeat_minutes"):
            value = data.get(name, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RuleError(f"{name} is a number, got {value!r}")
            numbers[name] = float(value)
        return cls(
            template=str(data.get("template") or ""),
            recipients=tuple(Recipient.from_json(r) for r in recipients),
            on_resolve=bool(data.get("on_resolve", False)),
            **numbers,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A condition on one value of a declaration, on a scope of devices.

    Attributes:
        name: unique, what people call it.
        kind: the declaration the value belongs to (``panel``, ``telemetry``,
            ``robot_servos``, ``device`` for liveness, ...).
        metric: the value's name in that declaration.
        operator: how the value is compared with the thresholds.
        warning, critical: the thresholds; at least one.
        clear: the threshold the value must cross back over for the event to resolve
            (hysteresis); None to resolve as soon as no threshold is breached.
        for_seconds: how long a breach must hold before the event opens.
        clear_for_seconds: how long the clear condition must hold before it resolves.
        cooldown_minutes: the shortest time between two events of one subject.
        scope, scope_value: which devices (a hostname, a kind, a device type, a zone).
        device_id: for a device scope, the device.
        actions: the notifications its events send.
    """

    name: str
    kind: str
    metric: str
    operator: RuleOperator
    warning: float | None = None
    critical: float | None = None
    clear: float | None = None
    for_seconds: int = 0
    clear_for_seconds: int = 0
    cooldown_minutes: float = 15.0
    scope: RuleScope = RuleScope.FLEET
    scope_value: str | None = None
    device_id: int | None = None
    description: str = ""
    enabled: bool = True
    builtin: bool = False
    actions: tuple[Action, ...] = ()
    id: UUID | None = None
    _compare: Callable[[float, float], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "operator", RuleOperator(self.operator))
        object.__setattr__(self, "scope", RuleScope(self.scope))
        object.__setattr__(self, "_compare", _COMPARE[self.operator])
        if not self.name.strip() or len(self.name) > MAX_NAME:
            raise RuleError(f"a rule's name is 1 to {MAX_NAME} characters")
        if self.warning is None and self.critical is None:
            raise RuleError(f"{self.name}: give a warning or a critical threshold (or both)")
        for label, value in (
            ("warning", self.warning),
            ("critical", self.critical),
            ("clear", self.clear),
        ):
            if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
                raise RuleError(f"{self.name}: the {label} threshold must be a finite number")
        self._check_order()
        if self.for_seconds < 0 or self.clear_for_seconds < 0:
            raise RuleError(f"{self.name}: durations are 0 or more seconds")
        if not (math.isfinite(self.cooldown_minutes) and self.cooldown_minutes >= 0):
            raise RuleError(f"{self.name}: the cooldown is 0 or more minutes")
        if self.scope is not RuleScope.FLEET and not self.scope_value:
            raise RuleError(f"{self.name}: a {self.scope} scope names its {self.scope}")
        if self.scope is RuleScope.ZONE and not str(self.scope_value).isdigit():
            raise RuleError(f"{self.name}: a zone is a number, got {self.scope_value!r}")

    def _check_order(self) -> None:
        """Thresholds that make sense together: critical beyond warning, clear before both."""
        levels = [v for v in (self.warning, self.critical) if v is not None]
        rising, falling = self.operator in _RISING, self.operator in _FALLING
        if (
            self.warning is not None
            and self.critical is not None
            and (
                (rising and self.critical < self.warning)
                or (falling and self.critical > self.warning)
            )
        ):
            raise RuleError(
                f"{self.name}: with {self.operator} the critical threshold "
                f"({self.critical}) lies beyond the warning one ({self.warning})"
            )
        if self.clear is None:
            return
        if not (rising or falling):
            raise RuleError(f"{self.name}: a clear threshold needs gt, gte, lt or lte")
        if (rising and self.clear > min(levels)) or (falling and self.clear < max(levels)):
            raise RuleError(
                f"{self.name}: the clear threshold ({self.clear}) must lie on the safe side "
                f"of the thresholds ({', '.join(map(str, levels))})"
            )

    def check_value(self, watched: Watchable) -> None:
        """Refuse thresholds that cannot apply to ``watched`` (a flag is 0 or 1, eq or neq)."""
        if watched.type != "bool":
            return
        if self.operator not in (RuleOperator.EQ, RuleOperator.NEQ):
            raise RuleError(f"{self.name}: {watched.name} is a flag: compare it with eq or neq")
        for value in (self.warning, self.critical):
            if value is not None and value not in (0.0, 1.0):
                raise RuleError(
                    f"{self.name}: {watched.name} is a flag: its threshold is 1 (true) or "
                    f"0 (false), not {value!r}"
                )

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)

    @property
    def pending(self) -> timedelta:
        return timedelta(seconds=self.for_seconds)

    @property
    def clearing(self) -> timedelta:
        return timedelta(seconds=self.clear_for_seconds)

    def breach(self, value: float) -> tuple[Severity, float] | None:
        """The severity and threshold ``value`` breaches (the worst), or None."""
        if self.critical is not None and self._compare(value, self.critical):
            return Severity.CRITICAL, self.critical
        if self.warning is not None and self._compare(value, self.warning):
            return Severity.WARNING, self.warning
        return None

    def cleared(self, value: float) -> bool:
        """True when ``value`` lets an open event resolve (past the clear threshold)."""
        if self.clear is None:
            return self.breach(value) is None
        return not self._compare(value, self.clear)

    def describe(self) -> str:
        """The condition in words: ``temperature gt 30 (warning), 35 (critical)``."""
        levels = [
            f"{value:g} ({label})"
            for label, value in (("warning", self.warning), ("critical", self.critical))
            if value is not None
        ]
        text = f"{self.kind}.{self.metric} {self.operator} {', '.join(levels)}"
        if self.clear is not None:
            text += f", clears at {self.clear:g}"
        if self.for_seconds:
            text += f", for {self.for_seconds} s"
        return text
