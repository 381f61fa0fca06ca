"""Saving rules: everything a rule refers to is checked against what exists now (the value
in the kinds' declarations and the stored device types, the device, type or kind of its
scope, its templates), so a rule that cannot work is refused with the reason."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import psycopg

from alerting.book import rule_to_row
from alerting.errors import RuleError
from alerting.rules import Rule, RuleScope
from alerting.values import DEVICE, Watchable, catalogue
from ingest.kinds import telemetry as telemetry_kind
from stores.postgres import alerting_store as store
from stores.postgres import device_types as type_store

__all__ = ["DEVICE_KINDS", "checked", "save_rule", "watchable"]

DEVICE_KINDS = ("panel", "telemetry", "robot")
"""What ``devices.kind`` holds: a kind scope names one of these."""


def watchable(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], Watchable]:
    """Every value a rule can watch now, the stored device types' metrics included."""
    types = [telemetry_kind.from_row(row) for row in type_store.load(conn)]
    return catalogue(t.kind for t in types)


def checked(conn: psycopg.Connection[Any], rule: Rule) -> Rule:
    """``rule`` with its scope's device resolved; RuleError for anything that cannot work."""
    values = watchable(conn)
    watched = values.get((rule.kind, rule.metric))
    if watched is None:
        metrics = sorted(name for kind, name in values if kind == rule.kind)
        if not metrics:
            kinds = sorted({kind for kind, _ in values})
            raise RuleError(f"{rule.name}: no kind {rule.kind!r}; known: {', '.join(kinds)}")
        raise RuleError(
            f"{rule.name}: {rule.kind} has no metric {rule.metric!r}; it has: {', '.join(metrics)}"
        )
    rule.check_value(watched)
    device_id = None
    if rule.scope is RuleScope.DEVICE:
        found = conn.execute(
            "SELECT id FROM devices WHERE hostname = %s OR serial_number = %s "
            "ORDER BY id DESC LIMIT 1",
            [rule.scope_value, rule.scope_value],
        ).fetchone()
        if found is None:
            raise RuleError(f"{rule.name}: no device {rule.scope_value!r}")
        device_id = int(found[0])
    elif rule.scope is RuleScope.DEVICE_TYPE:
        names = {row.name for row in type_store.load(conn)}
        if rule.scope_value not in names:
            raise RuleError(f"{rule.name}: no device type {rule.scope_value!r}")
    elif rule.scope is RuleScope.KIND and rule.scope_value not in DEVICE_KINDS:
        raise RuleError(
            f"{rule.name}: a kind scope is one of {', '.join(DEVICE_KINDS)}, "
            f"not {rule.scope_value!r}"
        )
    if (
        rule.kind != DEVICE
        and rule.scope is RuleScope.KIND
        and rule.kind.split("_")[0] not in (rule.scope_value or "",)
    ):
        raise RuleError(f"{rule.name}: {rule.kind} values never come from {rule.scope_value}s")
    templates = {row["name"] for row in store.load_templates(conn)}
    missing = sorted({a.template for a in rule.actions} - templates)
    if missing:
        raise RuleError(f"{rule.name}: no notification template {', '.join(missing)}")
    return replace(rule, device_id=device_id)


def save_rule(
    conn: psycopg.Connection[Any], rule: Rule, by: str, *, previous: str | None = None
) -> Rule:
    """Check and store ``rule``: a new one, or the one called ``previous`` replaced."""
    rule = checked(conn, rule)
    row = rule_to_row(rule)
    if previous is None:
        store.insert_rule(conn, row, by)
    else:
        row.pop("is_builtin")
        store.update_rule(conn, previous, row, by)
    return rule
