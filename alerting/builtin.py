"""The rules and template fleetwatch installs (``fleetwatch migrate``): editable, never
overwritten once there.

* every input alarm of a panel (PANIC1, PANIC2, TAMPER, FIRE, INTRUSION, MEDICAL, DURESS)
  raises an event at the alarm's own priority, resolved when the alarm is;
* a device offline for longer than 10 minutes; a panel that will not take its device id;
* seed 004's default thresholds for robots: CPU 70/90 %, memory 75/90 %, battery 20/10 %,
  servo temperature 60/75 °C, each clearing a little below (above, for the battery) its
  warning level so that a value at the threshold does not flap;
* a notification channel whose deliveries keep failing.

Their notifications use the template ``operators``, whose recipients are empty until an
operator adds them (``fleetwatch templates edit operators --recipient email:...``): nothing
is sent to an address nobody chose. The template ``reports`` names who gets the daily and
weekly reports, empty too at first.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

from alerting.book import rule_to_row, template_to_row
from alerting.rules import Action, Rule, RuleOperator, RuleScope
from alerting.templates import Template
from alerting.values import ALARM_INPUTS, DEVICE, SYSTEM, alarm_metric
from stores.postgres import alerting_store as store

__all__ = ["OPERATORS", "REPORTS", "RULES", "install"]

INSTALLER: Final = "fleetwatch"
OPERATORS: Final = Template(
    name="operators",
    description="what the built-in rules send; add recipients to hear from them",
    subject="[{severity}] {rule}: {device}",
    message=(
        "{severity}: {message}\n"
        "Value {value} {unit} (threshold {threshold}) at {time} UTC, zone {zone}.\n"
        "Event {event_id}, {status}: {link}"
    ),
    priority=1,
    retry_count=3,
    retry_delay_minutes=1.0,
)
REPORTS: Final = Template(
    name="reports",
    description="whose email recipients get the daily and weekly reports (PDF attached)",
    message="{message}",
)
_NOTIFY: Final = (Action(template=OPERATORS.name, on_resolve=True),)


def _robot(name: str, kind: str, metric: str, levels: tuple[float, float], clear: float) -> Rule:
    warning, critical = levels
    falling = critical < warning
    return Rule(
        name=name,
        description=f"seed 004's default thresholds ({warning:g} / {critical:g})",
        kind=kind,
        metric=metric,
        operator=RuleOperator.LT if falling else RuleOperator.GT,
        warning=warning,
        critical=critical,
        clear=clear,
        for_seconds=30,
        cooldown_minutes=15.0,
        scope=RuleScope.KIND,
        scope_value="robot",
        builtin=True,
        actions=_NOTIFY,
    )


RULES: Final[tuple[Rule, ...]] = (
    *(
        Rule(
            name=f"Panel alarm {alarm_type}",
            description=f"the {alarm_type} input of a panel; severity from the alarm's priority",
            kind="panel",
            metric=alarm_metric(alarm_type),
            operator=RuleOperator.EQ,
            critical=1.0,
            cooldown_minutes=0.0,
            builtin=True,
            actions=_NOTIFY,
        )
        for alarm_type in ALARM_INPUTS
    ),
    Rule(
        name="Device offline",
        description="a device of any kind silent or disconnected for 10 minutes",
        kind=DEVICE,
        metric="online",
        operator=RuleOperator.EQ,
        warning=0.0,
        for_seconds=600,
        cooldown_minutes=0.0,
        builtin=True,
        actions=_NOTIFY,
    ),
    Rule(
        name="Device id sync failed",
        description="a panel keeps refusing its device id (SET_DEVICE_ID)",
        kind="panel",
        metric="sync_failed",
        operator=RuleOperator.EQ,
        warning=1.0,
        builtin=True,
        actions=_NOTIFY,
    ),
    _robot("Robot CPU", "robot_performance", "cpu_percent", (70.0, 90.0), 65.0),
    _robot("Robot memory", "robot_performance", "memory_percent", (75.0, 90.0), 70.0),
    _robot("Robot battery", "robot_battery", "percentage", (20.0, 10.0), 25.0),
    _robot("Robot servo temperature", "robot_servos", "temperature", (60.0, 75.0), 55.0),
    Rule(
        name="Notification channel failing",
        description="a channel's delivery failed after all its retries",
        kind=SYSTEM,
        metric="delivery_failed",
        operator=RuleOperator.EQ,
        warning=1.0,
        cooldown_minutes=60.0,
        builtin=True,
        actions=_NOTIFY,
    ),
)


def install(conn: psycopg.Connection[Any]) -> list[str]:
    """Add the built-in template and rules that are missing; the names added."""
    added = []
    for template in (OPERATORS, REPORTS):
        try:
            store.save_template(conn, template_to_row(template), INSTALLER, replace=False)
            added.append(f"template {template.name}")
        except store.NameTakenError:
            pass
    for rule in RULES:
        if store.insert_rule_if_missing(conn, rule_to_row(rule), INSTALLER):
            added.append(f"rule {rule.name}")
    return added
