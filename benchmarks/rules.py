"""The rules a benchmark's ingest evaluates: the built-ins and a realistic mix up to N.

A fleet's rules are mostly scoped: a threshold per zone (16 zones in the benchmark's
stream), a few fleet-wide ones, some for single devices. Every heartbeat then meets the
fleet-wide rules on its metrics and its zone's: with 100 rules a panel heartbeat is
compared with 11 of them (6 fleet-wide, 5 of its zone). Thresholds lie where the simulated
values rarely go, as in a real fleet, so evaluation, not event writing, is what is measured;
the stream's alarms still open the built-in alarm events.
"""

from __future__ import annotations

from typing import Any

import psycopg

from alerting import builtin
from alerting.book import rule_to_row
from alerting.rules import Rule, RuleOperator, RuleScope
from stores.postgres import alerting_store as store

ZONES = 16
_PANEL = (("temperature", 40.0, 50.0), ("humidity", 85.0, 95.0), ("fan_pwm_duty", 90.0, 99.0))


def _mix() -> list[Rule]:
    rules: list[Rule] = []
    for metric, warning, critical in _PANEL:  # fleet-wide, each metric twice (gt and lt)
        rules.append(
            Rule(name=f"fleet {metric} high", kind="panel", metric=metric,
                 operator=RuleOperator.GT, warning=warning, critical=critical)
        )  # fmt: skip
        rules.append(
            Rule(name=f"fleet {metric} low", kind="panel", metric=metric,
                 operator=RuleOperator.LT, warning=1.0)
        )  # fmt: skip
    for zone in range(ZONES):
        for metric, warning, _ in _PANEL:
            rules.append(
                Rule(name=f"zone {zone} {metric}", kind="panel", metric=metric,
                     operator=RuleOperator.GT, warning=warning - 2.0, clear=warning - 4.0,
                     for_seconds=60, scope=RuleScope.ZONE, scope_value=str(zone))
            )  # fmt: skip
        for metric, low in (("temperature", 5.0), ("humidity", 10.0)):
            rules.append(
                Rule(name=f"zone {zone} {metric} low", kind="panel", metric=metric,
                     operator=RuleOperator.LT, warning=low, scope=RuleScope.ZONE,
                     scope_value=str(zone))
            )  # fmt: skip
    return rules


def install(database_url: str, count: int) -> int:
    """Install the built-in rules and custom ones up to ``count`` rules in all; how many are
    enabled. ValueError beyond what the mix holds (the built-ins and 86 more)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        builtin.install(conn)
        have = len(store.load_rules(conn))
        extra = _mix()
        if count > have + len(extra):
            raise ValueError(f"the benchmark's mix has {have + len(extra)} rules at most")
        for rule in extra[: max(count - have, 0)]:
            store.insert_rule(conn, rule_to_row(rule), "benchmark")
        return _enabled(conn)


def _enabled(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM rules WHERE is_enabled").fetchone()
    return int(row[0]) if row else 0
