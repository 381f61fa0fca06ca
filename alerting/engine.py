"""Rules applied to what was received, inside the caller's transaction.

Ingest hands every batch's observations (each received value, not the CDC-thinned history)
to :func:`apply` within the transaction that stores them: rule states, events and their
deliveries commit or roll back with the values behind them, so a crash neither loses an
event nor, on redelivery, raises it twice. The rows of the batch's devices are locked by
then, and the states are read under lock, so two ingest processes take turns per device;
the database's one-open-event index settles anything else. :func:`sweep` ends the durations
(``for``, clear) of subjects whose values stopped arriving.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, NamedTuple
from uuid import UUID

import psycopg

from alerting.book import RuleBook, Subject
from alerting.evaluate import Open, Raise, Resolve, RuleState, Transition, evaluate
from alerting.recipients import Recipient
from alerting.rules import Action, Rule, Severity
from alerting.templates import Template, render
from stores.postgres import alerting_store as store

logger = logging.getLogger(__name__)

__all__ = ["Effects", "Observation", "apply", "sweep"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})

SWEEP_LIMIT: Final = 1_000


class Observation(NamedTuple):
    """Values of one subject received together (one message), as rules read them (a named
    tuple: one is made per received message).

    Attributes:
        kind: the declaration the values belong to (``panel``, ``telemetry``,
            ``robot_servos``, ``device`` for liveness, ``system``).
        values: by name; flags as booleans, read as 1 and 0.
        hints: a severity a value states for itself (a panel alarm's priority).
        context: what else the event should remember (its metadata snapshot).
    """

    kind: str
    subject: Subject
    at: datetime
    values: Mapping[str, float | int | bool]
    hints: Mapping[str, Severity] = _EMPTY
    context: Mapping[str, object] = _EMPTY


@dataclass(slots=True)
class Effects:
    """What an evaluation changed: counts, for logs and tests."""

    opened: list[int] = field(default_factory=list)
    raised: int = 0
    resolved: int = 0
    deliveries: int = 0


def _state(row: Mapping[str, Any]) -> RuleState:
    return RuleState(
        last_value=row["last_value"],
        last_seen_at=row["last_seen_at"],
        pending_since=row["pending_since"],
        pending_severity=Severity(row["pending_severity"]) if row["pending_severity"] else None,
        clear_since=row["clear_since"],
        event_id=row["event_id"],
        event_severity=Severity(row["event_severity"]) if row["event_severity"] else None,
        last_triggered_at=row["last_triggered_at"],
    )


def _state_row(rule_id: UUID, subject: Subject, state: RuleState) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "subject": subject.key,
        "device_id": subject.device_id,
        "last_value": state.last_value,
        "last_seen_at": state.last_seen_at,
        "pending_since": state.pending_since,
        "pending_severity": state.pending_severity,
        "clear_since": state.clear_since,
        "event_id": state.event_id,
        "event_severity": state.event_severity,
        "last_triggered_at": state.last_triggered_at,
    }


@dataclass(frozen=True, slots=True)
class _Notice:
    """What a notification is about: an event of a rule, the value, why it is sent."""

    rule: Rule
    obs: Observation
    name: str
    event_id: int
    severity: Severity
    value: float
    threshold: float | None = None
    trigger: str = "opened"
    status: str = "new"

    def about(self, threshold: float | None, trigger: str, *, status: str = "new") -> _Notice:
        return replace(self, threshold=threshold, trigger=trigger, status=status)

    def values(self, link: str) -> dict[str, object]:
        """The template placeholders' values."""
        subject = self.obs.subject
        value = f"{self.value:g}"
        return {
            "device": subject.label,
            "hostname": subject.hostname,
            "zone": subject.zone,
            "country": subject.country,
            "kind": self.rule.kind,
            "metric": self.name,
            "source": subject.source,
            "value": value,
            "unit": self.obs.context.get("unit", ""),
            "threshold": "" if self.threshold is None else f"{self.threshold:g}",
            "severity": self.severity.value,
            "rule": self.rule.name,
            "status": self.status,
            "time": self.obs.at.isoformat(timespec="seconds"),
            "event_id": self.event_id,
            "link": f"{link}?event={self.event_id}" if link else "",
            "message": f"{self.rule.name}: {self.name} = {value} on {subject.label} "
            f"({self.severity})",
        }


class _Run:
    """One evaluation pass in one transaction."""

    def __init__(self, conn: psycopg.Connection[Any], book: RuleBook, link: str) -> None:
        self.conn = conn
        self.book = book
        self.link = link
        self.effects = Effects()
        self.touched: dict[tuple[UUID, str], tuple[Subject, RuleState]] = {}
        self.triggered: dict[UUID, datetime] = {}

    def feed(
        self,
        states: dict[tuple[UUID, str], RuleState],
        rule: Rule,
        obs: Observation,
        name: str,
        value: float,
    ) -> None:
        assert rule.id is not None
        key = (rule.id, obs.subject.key)
        state = states.get(key)
        if state is None:
            if rule.breach(value) is None:
                return  # the common case: nothing pending, nothing open, nothing breached
            state = states[key] = RuleState()
        event_id = state.event_id
        transition = evaluate(rule, state, value, obs.at, obs.hints.get(name))
        self.touched[key] = (obs.subject, state)
        if transition is not None:
            self.act(rule, obs, name, state, transition, event_id=event_id)

    def act(
        self,
        rule: Rule,
        obs: Observation,
        name: str,
        state: RuleState,
        transition: Transition,
        *,
        event_id: int | None,
    ) -> None:
        assert rule.id is not None
        match transition:
            case Open():
                state.event_id = self.open(rule, obs, name, transition)
            case Raise() if event_id is not None:
                store.raise_event(
                    self.conn, event_id, transition.severity, transition.value, transition.threshold
                )
                self.effects.raised += 1
                notice = _Notice(rule, obs, name, event_id, transition.severity, transition.value)
                self.notify(
                    notice.about(transition.threshold, f"severity:{transition.severity}"),
                    [a for a in rule.actions if not a.escalation],
                )
            case Resolve() if event_id is not None:
                if store.resolve_event(self.conn, event_id, obs.at, "rule", "clear condition"):
                    self.effects.resolved += 1
                    notice = _Notice(rule, obs, name, event_id, Severity.INFO, transition.value)
                    self.notify(
                        notice.about(rule.clear, "resolved", status="resolved"),
                        [a for a in rule.actions if a.on_resolve],
                    )
            case _:
                pass

    def open(self, rule: Rule, obs: Observation, name: str, transition: Open) -> int | None:
        assert rule.id is not None
        unit = obs.context.get("unit", "")
        message = (
            f"{rule.name}: {name} = {transition.value:g}{unit and ' ' + str(unit)} "
            f"({rule.operator} {transition.threshold:g}) on {obs.subject.label}"
        )
        notice = _Notice(rule, obs, name, 0, transition.severity, transition.value)
        notice = notice.about(transition.threshold, "opened")
        results, rows = self.plan(notice, rule.actions)
        # One round trip: the event with what its actions did (what queueing did, below).
        event_id = store.open_event(
            self.conn,
            {
                "rule_id": rule.id,
                "device_id": obs.subject.device_id,
                "subject": obs.subject.key,
                "source": obs.subject.source,
                "timestamp": obs.at,
                "severity": transition.severity.value,
                "message": message,
                "value": transition.value,
                "threshold": transition.threshold,
                "execution_results": results,
                "metadata": {
                    "values": {k: _plain(v) for k, v in obs.values.items()},
                    "since": transition.since.isoformat(),
                    **{k: _plain(v) for k, v in obs.context.items()},
                },
            },
        )
        if event_id is None:  # opened by another process: it notifies
            return store.open_event_id(self.conn, rule.id, obs.subject.key)
        self.effects.opened.append(event_id)
        self.triggered[rule.id] = obs.at
        if rows:
            # The link names the event: rendered again now that its id is known.
            results, rows = self.plan(replace(notice, event_id=event_id), rule.actions)
            self.effects.deliveries += store.add_deliveries(self.conn, rows)
        return event_id

    def notify(self, notice: _Notice, actions: Iterable[Action]) -> None:
        """Queue each action's deliveries of ``notice`` and record them on the event."""
        results, rows = self.plan(notice, actions)
        self.effects.deliveries += store.add_deliveries(self.conn, rows)
        if results:
            store.record_results(self.conn, notice.event_id, results)

    def plan(
        self, notice: _Notice, actions: Iterable[Action]
    ) -> tuple[list[dict[str, object]], list[dict[str, Any]]]:
        """What each action of ``notice`` does (for ``execution_results``) and the delivery
        rows it queues, held when a silence holds them."""
        subject = notice.obs.subject
        steps = []
        results: list[dict[str, object]] = []
        for step, action in enumerate(actions):
            template = self.book.templates.get(action.template)
            if template is None or not template.active:
                results.append(
                    {"type": "notification", "template": action.template, "status": "failed",
                     "error": "template missing or inactive"}
                )  # fmt: skip
                continue
            steps.append((step, action, template, action.recipients or template.recipients))
        held = None
        if any(recipients for *_, recipients in steps):  # a silence matters only then
            held = store.silenced(
                self.conn, notice.rule.name, subject.hostname, subject.zone, notice.obs.at
            )
        values = notice.values(self.link)
        rows: list[dict[str, Any]] = []
        for step, action, template, recipients in steps:
            due = notice.obs.at + timedelta(minutes=action.after_minutes)
            trigger = f"escalation:{step}" if action.escalation else notice.trigger
            group = None
            if action.group_seconds and not action.escalation:
                due += timedelta(seconds=action.group_seconds)
                group = f"{notice.rule.id}/zone {subject.zone}/{trigger}"
            for recipient in recipients:
                row = _delivery(notice.event_id, template, trigger, recipient, values, due, action)
                row |= {
                    "group_key": group,
                    "device_label": subject.label,
                    "repeat_seconds": action.repeat_minutes * 60.0 or None,
                    "held_by": held,
                }
                if held is not None:
                    row["status"] = "held"
                rows.append(row)
            results.append(
                {"type": "notification", "template": template.name, "trigger": trigger,
                 "recipients": len(recipients),
                 "status": "queued" if held is None else f"held by silence {held}"}
            )  # fmt: skip
        return results, rows

    def finish(self) -> Effects:
        store.save_states(
            self.conn,
            [_state_row(key[0], subject, state) for key, (subject, state) in self.touched.items()],
        )
        if self.triggered:
            store.mark_rules_triggered(self.conn, self.triggered)
        return self.effects


def _delivery(  # noqa: PLR0917 - one delivery row from its parts
    event_id: int,
    template: Template,
    trigger: str,
    recipient: Recipient,
    values: Mapping[str, object],
    due: datetime,
    action: Action,
) -> dict[str, Any]:
    subject = template.subject or "[{severity}] {rule} on {device}"
    return {
        "event_id": event_id,
        "template_id": template.id,
        "trigger": trigger,
        "recipient_type": recipient.type,
        "recipient_address": recipient.address,
        "recipient_name": recipient.name or None,
        "subject": render(subject, values),
        "rendered_message": render(template.message, values),
        "status": "pending",
        "priority": template.priority,
        "max_attempts": template.max_attempts,
        "retry_delay_seconds": template.retry_delay_minutes * 60.0,
        "cancel_on_ack": action.escalation,
        "next_attempt_at": due,
    }


def _plain(value: object) -> object:
    return value if isinstance(value, bool | int | float | str) or value is None else str(value)


def apply(
    conn: psycopg.Connection[Any],
    book: RuleBook,
    observations: Sequence[Observation],
    *,
    link: str = "",
) -> Effects:
    """Evaluate ``observations`` in order against ``book``'s rules and write what follows
    (states, events, deliveries) in ``conn``'s current transaction."""
    run = _Run(conn, book, link)
    # Only the values some rule watches: most observations meet no rule at all.
    relevant = [
        (obs, names)
        for obs in observations
        if (watched := book.watched.get(obs.kind)) and (names := watched & obs.values.keys())
    ]
    if not relevant:
        return run.effects
    devices = {o.subject.device_id for o, _ in relevant if o.subject.device_id is not None}
    others = {o.subject.key for o, _ in relevant if o.subject.device_id is None}
    states: dict[tuple[UUID, str], RuleState] = {}
    stated: set[str] = set()  # subjects with a state of some rule
    for row in store.lock_states(conn, devices, others):
        states[(row["rule_id"], row["subject"])] = _state(row)
        stated.add(row["subject"])
    for obs, names in relevant:
        subject = obs.subject.key
        for name in names:
            value = float(obs.values[name])
            matching = book.matching(obs.kind, name, obs.subject)
            # The common case, checked first: no state (nothing pending or open) and a value
            # inside the interval that breaches none of the rules.
            if subject not in stated and matching.quiet(value):
                continue
            for rule in matching.rules:
                if (rule.id, subject) not in states and rule.breach(value) is None:
                    continue
                run.feed(states, rule, obs, name, value)
                stated.add(subject)
    return run.finish()


def sweep(
    conn: psycopg.Connection[Any], book: RuleBook, now: datetime, *, link: str = ""
) -> Effects:
    """Feed every waiting (pending or clearing) state its last value again at ``now``, so
    that a duration ends even when no value arrives; in ``conn``'s transaction."""
    run = _Run(conn, book, link)
    for row in store.waiting_states(conn, SWEEP_LIMIT):
        rule = book.rules.get(row["rule_id"])
        if rule is None or row["last_value"] is None:
            continue  # disabled or removed: it waits until the rule is back
        subject = _subject_of(row)
        obs = Observation(rule.kind, subject, now, {rule.metric: row["last_value"]})
        run.feed({(row["rule_id"], row["subject"]): _state(row)}, rule, obs, rule.metric,
                 float(row["last_value"]))  # fmt: skip
    return run.finish()


def _subject_of(row: Mapping[str, Any]) -> Subject:
    key: str = row["subject"]
    if row["device_id"] is None:
        return Subject(None, source=key.partition("/")[2])
    return Subject(
        row["device_id"],
        hostname=row.get("hostname"),
        zone=row.get("zone"),
        country=row.get("country"),
        device_kind=row.get("device_kind"),
        source=key.partition("/")[2],
    )
