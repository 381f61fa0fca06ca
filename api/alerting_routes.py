"""Rules and silences: listed for every signed-in person, changed through ``access.actions``
(operators and admins), so the audit trail records each change as it does the dashboard's.

A rule is checked as the CLI and the dashboard check it (``alerting.manage``): one that
cannot work is refused (422) with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Query

from access import actions
from alerting import rules
from alerting.book import rule_from_row
from alerting.recipients import Recipient
from api.deps import Caller, Conn
from api.errors import ApiError
from api.models import WEEKDAYS, Page, Rule, RuleAction, RuleRequest, Silence, SilenceRequest
from api.params import ERRORS, Limit, Offset
from stores.postgres import alerting_store, api_store
from stores.postgres.schema import RuleScope, SilenceScope

__all__ = ["router"]

router = APIRouter(responses=ERRORS, tags=["rules and silences"])


# --- rules ----------------------------------------------------------------------------------


def _rule(row: dict[str, Any]) -> Rule:
    """The API's view of a ``rules`` row."""
    stored = rule_from_row(row)
    # As stored (``Action.to_json``), so that a rule read can be sent back to PUT.
    notify = [RuleAction.model_validate(action.to_json()) for action in stored.actions]
    return Rule(
        name=stored.name, description=stored.description, kind=stored.kind,
        metric=stored.metric, operator=stored.operator, warning=stored.warning,
        critical=stored.critical, clear=stored.clear, for_seconds=stored.for_seconds,
        clear_for_seconds=stored.clear_for_seconds, cooldown_minutes=stored.cooldown_minutes,
        scope=stored.scope, scope_value=stored.scope_value, enabled=stored.enabled,
        builtin=stored.builtin, actions=notify,
        condition=stored.describe(), last_triggered_at=row["last_triggered_at"],
        updated_by=row["updated_by"], updated_at=row["updated_at"],
    )  # fmt: skip


def _checked(body: RuleRequest) -> rules.Rule:
    """The rule ``body`` describes; RuleError or TemplateError (422) for one that cannot be."""
    return rules.Rule(
        name=body.name, description=body.description, kind=body.kind, metric=body.metric,
        operator=body.operator, warning=body.warning, critical=body.critical, clear=body.clear,
        for_seconds=body.for_seconds, clear_for_seconds=body.clear_for_seconds,
        cooldown_minutes=body.cooldown_minutes, scope=body.scope, scope_value=body.scope_value,
        enabled=body.enabled,
        actions=tuple(
            rules.Action(
                template=a.template,
                recipients=tuple(Recipient(r.type, r.address, r.name) for r in a.recipients),
                after_minutes=a.after_minutes, on_resolve=a.on_resolve,
                group_seconds=a.group_seconds, repeat_minutes=a.repeat_minutes,
            )
            for a in body.actions
        ),
    )  # fmt: skip


@router.get("/rules")
def list_rules(
    *,
    conn: Conn,
    _: Caller,
    enabled: bool | None = None,
    kind: Annotated[str | None, Query(max_length=64, description="the declaration watched")] = None,
    scope: RuleScope | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[Rule]:
    """Rules by name, with their conditions in words."""
    rows = api_store.rules(
        conn,
        enabled=enabled,
        kind=kind,
        scope=scope.value if scope else None,
        limit=limit,
        offset=offset,
    )
    return Page[Rule](items=[_rule(r) for r in rows], limit=limit, offset=offset)


@router.get("/rules/{name}")
def get_rule(conn: Conn, _: Caller, name: str) -> Rule:
    """One rule."""
    return _rule(alerting_store.rule_named(conn, name))


@router.post("/rules", status_code=201)
def create_rule(conn: Conn, who: Caller, body: RuleRequest) -> Rule:
    """Add a rule (operators and admins); 409 when its name is taken."""
    actions.save_rule(conn, who, _checked(body))
    return _rule(alerting_store.rule_named(conn, body.name))


@router.put("/rules/{name}")
def replace_rule(conn: Conn, who: Caller, name: str, body: RuleRequest) -> Rule:
    """Replace the rule called ``name`` by ``body`` whole, renaming it when the body names
    another (operators and admins). A built-in rule stays built in."""
    actions.save_rule(conn, who, _checked(body), previous=name)
    return _rule(alerting_store.rule_named(conn, body.name))


@router.post("/rules/{name}/enable")
def enable_rule(conn: Conn, who: Caller, name: str) -> Rule:
    """Let a rule raise events again (operators and admins)."""
    actions.set_rule_enabled(conn, who, name, enabled=True)
    return _rule(alerting_store.rule_named(conn, name))


@router.post("/rules/{name}/disable")
def disable_rule(conn: Conn, who: Caller, name: str) -> Rule:
    """Stop a rule raising events (operators and admins)."""
    actions.set_rule_enabled(conn, who, name, enabled=False)
    return _rule(alerting_store.rule_named(conn, name))


# --- silences -------------------------------------------------------------------------------


def _silence(row: dict[str, Any]) -> Silence:
    """The API's view of a ``silences`` row: its weekday bits as day names."""
    bits = row["weekdays"]
    days = None if bits is None else [day for i, day in enumerate(WEEKDAYS) if bits >> i & 1]
    fields = {name: row.get(name) for name in Silence.model_fields}
    return Silence.model_validate(fields | {"weekdays": days})


def _stored_silence(conn: psycopg.Connection[Any], silence_id: int) -> Silence:
    (row,) = alerting_store.list_silences(conn, current_only=False, silence_id=silence_id)
    return _silence(row)


@router.get("/silences")
def list_silences(
    *,
    conn: Conn,
    _: Caller,
    current: Annotated[bool, Query(description="only those not over yet")] = True,
    scope_type: SilenceScope | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[Silence]:
    """Silences and maintenance windows, soonest ending first, with what each holds."""
    rows = alerting_store.list_silences(
        conn,
        current_only=current,
        scope_type=scope_type.value if scope_type else None,
        limit=limit,
        offset=offset,
    )
    return Page[Silence](items=[_silence(r) for r in rows], limit=limit, offset=offset)


@router.post("/silences", status_code=201)
def add_silence(conn: Conn, who: Caller, body: SilenceRequest) -> Silence:
    """Hold notifications about a device, zone or rule for a while (operators and admins);
    404 for a device or rule that does not exist."""
    try:
        row = body.row(datetime.now(UTC))
    except ValueError as exc:
        raise ApiError(422, str(exc)) from exc
    return _stored_silence(conn, actions.add_silence(conn, who, row))


@router.post("/silences/{silence_id}/end")
def end_silence(conn: Conn, who: Caller, silence_id: int) -> Silence:
    """End a running silence now (operators and admins); what it held is released or
    dropped, as it says, by the next delivery pass. 404 when none is running."""
    actions.end_silence(conn, who, silence_id)
    return _stored_silence(conn, silence_id)
