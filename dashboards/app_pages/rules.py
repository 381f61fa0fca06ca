"""Rules: what raises events. List them, create or edit one (checked as the CLI checks it),
enable or disable, and see when a rule would have fired over the last 24 hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from access import Permission, actions
from alerting.backtest import backtest
from alerting.book import rule_from_row
from alerting.errors import AlertingError
from alerting.manage import watchable
from alerting.rules import Action, Rule, RuleOperator, RuleScope
from dashboards import alerting_data, data, operate, session
from stores.postgres import alerting_store as store

_OPERATORS = [op.value for op in RuleOperator]
_SCOPES = [scope.value for scope in RuleScope]


def main() -> None:
    """The rule list, the rule form, enabling, and the 24-hour test."""
    st.title("Rules")
    if flash := st.session_state.pop("rules_flash", None):
        st.success(flash)
    with data.shown_errors():
        src = data.sources()
        rows = alerting_data.rules(src)
    st.dataframe(
        [
            {
                "name": row["name"],
                "enabled": row["is_enabled"],
                "condition": rule_from_row(row).describe(),
                "scope": f"{row['scope_type']} {row['scope_value'] or ''}".strip(),
                "last triggered": row["last_triggered_at"],
                "changed by": row["updated_by"],
            }
            for row in rows
        ],
        hide_index=True,
        width="stretch",
    )
    names = [row["name"] for row in rows]
    edit, toggle, test = st.tabs(["Create or edit", "Enable or disable", "Test on the last 24 h"])
    with edit:
        _form(src, {row["name"]: row for row in rows})
    with toggle:
        _toggle({row["name"]: row for row in rows})
    with test:
        _test(src, names)


def _form(src: data.Sources, rows: dict[str, dict[str, Any]]) -> None:
    who = session.person()
    denied = operate.not_yours(who, Permission.EDIT_RULES)
    choice = st.selectbox("Rule", ["(a new rule)", *rows], key="rule_edit")
    current = rows.get(choice or "")
    rule = rule_from_row(current) if current else None
    with alerting_data.connect(src) as conn:
        values = sorted(watchable(conn))
    labels = [f"{kind}.{name}" for kind, name in values]
    templates = alerting_data.templates(src)
    with st.form("rule_form"):
        name = st.text_input("Name", value=rule.name if rule else "")
        watched = st.selectbox(
            "Value", labels,
            index=labels.index(f"{rule.kind}.{rule.metric}") if rule else 0,
        )  # fmt: skip
        cols = st.columns(4)
        operator = cols[0].selectbox(
            "Operator", _OPERATORS, index=_OPERATORS.index(rule.operator) if rule else 0
        )
        warning = cols[1].text_input("Warning", value=_text(rule.warning if rule else None))
        critical = cols[2].text_input("Critical", value=_text(rule.critical if rule else None))
        clear = cols[3].text_input("Clear at", value=_text(rule.clear if rule else None))
        cols = st.columns(4)
        for_s = cols[0].number_input("For (s)", 0, 86_400, rule.for_seconds if rule else 0)
        cooldown = cols[1].number_input(
            "Cooldown (min)", 0.0, 10_080.0, rule.cooldown_minutes if rule else 15.0
        )
        scope = cols[2].selectbox(
            "Scope", _SCOPES, index=_SCOPES.index(rule.scope) if rule else _SCOPES.index("fleet")
        )
        scope_value = cols[3].text_input(
            "Scope value", value=(rule.scope_value or "") if rule else ""
        )
        notify = st.multiselect(
            "Notify with templates", templates,
            default=[a.template for a in rule.actions if not a.escalation] if rule else [],
        )  # fmt: skip
        saved = st.form_submit_button("Save", help=denied)
    if not saved:
        return
    kind, _, metric = str(watched).partition(".")
    try:
        edited = Rule(
            name=name,
            kind=kind,
            metric=metric,
            operator=RuleOperator(operator),
            warning=_number(warning),
            critical=_number(critical),
            clear=_number(clear),
            for_seconds=int(for_s),
            cooldown_minutes=float(cooldown),
            scope=RuleScope(scope),
            scope_value=scope_value or None,
            actions=(
                *(Action(template=t, on_resolve=True) for t in notify),
                *(a for a in (rule.actions if rule else ()) if a.escalation),
            ),
        )
    except (AlertingError, ValueError) as exc:
        st.error(str(exc))
        return
    previous = rule.name if rule else None
    if operate.run(lambda c: actions.save_rule(c, who, edited, previous=previous)) is None:
        return
    st.session_state["rules_flash"] = f"Saved: {edited.name} ({edited.describe()})"
    st.rerun()


def _toggle(rows: dict[str, dict[str, Any]]) -> None:
    who = session.person()
    denied = operate.not_yours(who, Permission.EDIT_RULES)
    with st.form("rule_toggle"):
        name = st.selectbox("Rule", list(rows), key="toggle_rule")
        cols = st.columns(2)
        enable = cols[0].form_submit_button("Enable", help=denied)
        disable = cols[1].form_submit_button("Disable", help=denied)
    if (enable or disable) and name:
        if not operate.run(lambda c: actions.set_rule_enabled(c, who, name, enabled=enable)):
            return
        st.session_state["rules_flash"] = f"{name} {'enabled' if enable else 'disabled'}"
        st.rerun()


def _test(src: data.Sources, names: list[str]) -> None:
    name = st.selectbox("Rule", names, key="test_rule")
    if not st.button("Replay the last 24 hours", key="test_go") or not name:
        return
    stop = datetime.now(UTC)
    with data.shown_errors():
        with alerting_data.connect(src) as conn:
            rule = rule_from_row(store.rule_named(conn, name))
        fired = backtest(
            data.influx_client(src), src.buckets.raw, rule,
            start=stop - timedelta(hours=24), stop=stop, org=src.influx_org,
        )  # fmt: skip
    st.caption(
        "Replayed on the stored (CDC-thinned) history: values within a dead band of the "
        "stored ones were not kept, so a threshold that close may fire a little off."
    )
    if not fired:
        st.info(f"{name} would not have fired in the last 24 hours.")
        return
    st.write(f"{name} would have raised {len(fired)} event(s):")
    st.dataframe(
        [
            {"opened": f.opened, "resolved": f.resolved, "subject": f.subject,
             "severity": f.severity.value, "value": f.value}
            for f in fired
        ],
        hide_index=True,
        width="stretch",
    )  # fmt: skip


def _text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _number(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


main()
