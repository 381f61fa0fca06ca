"""Rules and templates as the evaluation reads them: converted from their rows once, indexed
by the value they watch and their scope, and reloaded only when one changes."""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple
from uuid import UUID

import psycopg

from alerting.recipients import Recipient
from alerting.rules import Action, Rule, RuleOperator, RuleScope
from alerting.templates import Template
from stores.postgres import alerting_store as store

__all__ = [
    "Matching",
    "RuleBook",
    "RuleCache",
    "Subject",
    "rule_from_row",
    "rule_to_row",
    "template_from_row",
    "template_to_row",
]


class Subject(NamedTuple):
    """What a value (and so an event) is about: a device, a part of it, or a channel.

    A named tuple rather than a frozen dataclass: ingest makes one per received message,
    and a tuple is made several times faster.

    Attributes:
        device_id: the device, None for fleetwatch's own subjects (a channel).
        device_kind: the device's kind (panel, telemetry, robot), for kind scopes.
        source: the part (``servos/servo_1``) or the channel (``webhook``); "" for the
            device as a whole.
    """

    device_id: int | None
    hostname: str | None = None
    zone: int | None = None
    country: str | None = None
    device_kind: str | None = None
    device_type: str | None = None
    source: str = ""

    @property
    def key(self) -> str:
        """The subject as rule_states and events key it: ``12``, ``12/servos/servo_1``,
        ``channel/webhook``."""
        if self.device_id is None:
            return f"channel/{self.source}"
        return f"{self.device_id}/{self.source}" if self.source else str(self.device_id)

    @property
    def label(self) -> str:
        """What people call it: the hostname (and part), or the channel."""
        if self.device_id is None:
            return f"{self.source} channel"
        name = self.hostname or f"device {self.device_id}"
        return f"{name} {self.source}" if self.source else name


def rule_from_row(row: Mapping[str, Any]) -> Rule:
    """The rule a ``rules`` row stores."""
    return Rule(
        id=row["id"],
        name=row["name"],
        description=row.get("description") or "",
        kind=row["kind"],
        metric=row["metric"],
        operator=RuleOperator(row["operator"]),
        warning=row["warning_threshold"],
        critical=row["critical_threshold"],
        clear=row["clear_threshold"],
        for_seconds=row["for_seconds"],
        clear_for_seconds=row["clear_for_seconds"],
        cooldown_minutes=row["cooldown_minutes"],
        scope=RuleScope(row["scope_type"]),
        scope_value=row["scope_value"],
        device_id=row["device_id"],
        enabled=row["is_enabled"],
        builtin=row["is_builtin"],
        actions=tuple(Action.from_json(a) for a in row["action_config"] or []),
    )


def rule_to_row(rule: Rule) -> dict[str, Any]:
    """The ``rules`` columns of ``rule`` (without id and bookkeeping)."""
    return {
        "name": rule.name,
        "description": rule.description or None,
        "scope_type": rule.scope.value,
        "scope_value": rule.scope_value,
        "device_id": rule.device_id,
        "kind": rule.kind,
        "metric": rule.metric,
        "operator": rule.operator.value,
        "warning_threshold": rule.warning,
        "critical_threshold": rule.critical,
        "clear_threshold": rule.clear,
        "for_seconds": rule.for_seconds,
        "clear_for_seconds": rule.clear_for_seconds,
        "cooldown_minutes": rule.cooldown_minutes,
        "is_enabled": rule.enabled,
        "is_builtin": rule.builtin,
        "action_config": [action.to_json() for action in rule.actions],
    }


def template_from_row(row: Mapping[str, Any]) -> Template:
    """The template a ``notification_templates`` row stores."""
    return Template(
        id=row["id"],
        name=row["name"],
        description=row.get("description") or "",
        subject=row.get("subject_template") or "",
        message=row["message_template"],
        recipients=tuple(Recipient.from_json(r) for r in row["recipients"] or []),
        priority=row["priority"],
        retry_count=row["retry_count"],
        retry_delay_minutes=row["retry_delay_minutes"],
        active=row["is_active"],
    )


def template_to_row(template: Template) -> dict[str, Any]:
    """The ``notification_templates`` columns of ``template`` (without id and bookkeeping)."""
    return {
        "name": template.name,
        "description": template.description or None,
        "subject_template": template.subject or None,
        "message_template": template.message,
        "recipients": [r.to_json() for r in template.recipients],
        "priority": template.priority,
        "retry_count": template.retry_count,
        "retry_delay_minutes": template.retry_delay_minutes,
        "is_active": template.active,
    }


class Matching(NamedTuple):
    """The rules a subject's value meets, and the open interval of values that breach none
    of them (checked first: most values are quiet)."""

    rules: list[Rule]
    above: float  # a value breaches none if above < value < below ...
    below: float
    bounded: bool  # ... when every rule compares with gt, gte, lt or lte

    @classmethod
    def of(cls, rules: list[Rule]) -> Matching:
        above, below, bounded = -math.inf, math.inf, True
        for rule in rules:
            levels = [t for t in (rule.warning, rule.critical) if t is not None]
            match rule.operator:
                case RuleOperator.GT:  # quiet while value <= every level
                    below = min(below, math.nextafter(min(levels), math.inf))
                case RuleOperator.GTE:
                    below = min(below, *levels)
                case RuleOperator.LT:  # quiet while value >= every level
                    above = max(above, math.nextafter(max(levels), -math.inf))
                case RuleOperator.LTE:
                    above = max(above, *levels)
                case _:
                    bounded = False
        return cls(rules, above, below, bounded)

    def quiet(self, value: float) -> bool:
        """True when ``value`` breaches none of the rules."""
        return self.bounded and self.above < value < self.below


class _Scoped:
    """The rules of one watched value, by scope, so that a value meets only its rules."""

    __slots__ = ("by_device", "by_kind", "by_type", "by_zone", "fleet", "seen")

    def __init__(self) -> None:
        # The rules met by each (device, zone, kind, type) so far: a subject's list is built
        # once per book, not once per value.
        self.seen: dict[tuple[object, ...], Matching] = {}
        self.fleet: list[Rule] = []
        self.by_kind: dict[str, list[Rule]] = defaultdict(list)
        self.by_device: dict[int, list[Rule]] = defaultdict(list)
        self.by_zone: dict[int, list[Rule]] = defaultdict(list)
        self.by_type: dict[str, list[Rule]] = defaultdict(list)

    def add(self, rule: Rule) -> None:
        value = rule.scope_value or ""
        match rule.scope:
            case RuleScope.FLEET:
                self.fleet.append(rule)
            case RuleScope.KIND:
                self.by_kind[value].append(rule)
            case RuleScope.DEVICE:
                if rule.device_id is not None:
                    self.by_device[rule.device_id].append(rule)
            case RuleScope.ZONE:
                self.by_zone[int(value)].append(rule)
            case RuleScope.DEVICE_TYPE:
                self.by_type[value].append(rule)

    def matching(self, subject: Subject) -> Matching:
        key = (subject.device_id, subject.zone, subject.device_kind, subject.device_type)
        found = self.seen.get(key)
        if found is None:
            found = self.seen[key] = Matching.of(self._matching(subject))
        return found

    def _matching(self, subject: Subject) -> list[Rule]:
        found = list(self.fleet)
        if subject.device_kind is not None and subject.device_kind in self.by_kind:
            found.extend(self.by_kind[subject.device_kind])
        if subject.device_id is not None and subject.device_id in self.by_device:
            found.extend(self.by_device[subject.device_id])
        if subject.zone is not None and subject.zone in self.by_zone:
            found.extend(self.by_zone[subject.zone])
        if subject.device_type is not None and subject.device_type in self.by_type:
            found.extend(self.by_type[subject.device_type])
        return found


class RuleBook:
    """The enabled rules, indexed by (kind, metric) and scope, and the templates by name."""

    def __init__(self, rules: Iterable[Rule], templates: Iterable[Template]) -> None:
        self.rules: dict[UUID, Rule] = {}
        self._index: dict[tuple[str, str], _Scoped] = {}
        watched: dict[str, set[str]] = {}
        for rule in rules:
            if not rule.enabled or rule.id is None:
                continue
            self.rules[rule.id] = rule
            self._index.setdefault((rule.kind, rule.metric), _Scoped()).add(rule)
            watched.setdefault(rule.kind, set()).add(rule.metric)
        self.watched: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in watched.items()}
        """The metrics some enabled rule watches, by kind."""
        self.templates: dict[str, Template] = {t.name: t for t in templates}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def watches(self, kind: str, metric: str) -> bool:
        return (kind, metric) in self._index

    def matching(self, kind: str, metric: str, subject: Subject) -> Matching:
        """The enabled rules on ``kind.metric`` whose scope holds ``subject``."""
        scoped = self._index.get((kind, metric))
        return _NONE if scoped is None else scoped.matching(subject)


_NONE = Matching([], -math.inf, math.inf, bounded=True)


class RuleCache:
    """The current RuleBook, reloaded when a rule or template changed (one small query per
    use: the version of the two tables)."""

    def __init__(self) -> None:
        self._version: tuple[Any, ...] | None = None
        self._book = RuleBook((), ())
        self._lock = threading.Lock()

    def book(self, conn: psycopg.Connection[Any]) -> RuleBook:
        version = store.rules_version(conn)
        with self._lock:
            if version != self._version:
                rules = [rule_from_row(row) for row in store.load_rules(conn, enabled_only=True)]
                templates = [template_from_row(row) for row in store.load_templates(conn)]
                self._book = RuleBook(rules, templates)
                self._version = version
            return self._book
