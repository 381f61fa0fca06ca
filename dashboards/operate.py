"""The operator's controls, drawn the same way on every page that offers them.

Each control is shown to everyone, with a note for a role that may not use it (so a viewer
sees what an operator can do). Whatever the browser sends, the action runs through
``access.actions``, which checks the role, records a refusal with the reason shown here, and
writes the audit row with the change: nothing here trusts the page to have hidden anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import polars as pl
import psycopg
import streamlit as st

from access import AccessError, Identity, Permission, actions, may_command
from dashboards import session
from ingest.commands import PAYLOAD_TYPES, CommandError, CommandSpec
from stores.errors import StoreError
from stores.postgres.alerting_store import NotFoundError
from stores.postgres.commands_store import CommandRow, TargetFilter

__all__ = ["attention_form", "cancel_form", "command_form", "run"]

T = TypeVar("T")
_SYSTEM: Final = frozenset({"SYSTEM", "OTA"})
_EXAMPLES: Final = {
    "diagnostic": {"action": "ping"},
    "output_control": {"output": "SIREN", "pattern": 1, "durationSeconds": 10, "on": True},
    "config_update": {"values": {"heartbeat_interval": 30}},
    "reboot": {"delayMs": 0},
    "ota_update": {"url": "https://", "version": "", "sha256": ""},
    "set_device_id": {"deviceDbId": 0},
}
_FLASH: Final = "fleetwatch_operate_flash"


def run(action: Callable[[psycopg.Connection[Any]], T]) -> T | None:
    """Run ``action`` on the write path; show a refusal or a failure and return None."""
    try:
        with session.connect() as conn:
            result = action(conn)
    except (AccessError, CommandError, NotFoundError, StoreError, ValueError) as exc:
        st.error(str(exc))
        return None
    st.cache_data.clear()  # the pages show the action's effect at once
    return result


def flash() -> None:
    """Show what the last action did (it survives the rerun that shows its effect)."""
    if done := st.session_state.pop(_FLASH, None):
        st.success(done)


def _done(message: str) -> None:
    st.session_state[_FLASH] = message
    st.rerun()


def not_yours(who: Identity, permission: Permission) -> str | None:
    """What a control says to a role that may not use it (None: it may)."""
    return None if who.may(permission) else f"Your role ({who.role}) may not do this: refused."


def attention_form(who: Identity, todo: pl.DataFrame, *, key: str) -> None:
    """Acknowledge or resolve one listed alarm or event, with a note."""
    labels = {
        f"{row['origin']} {row['id']}: {row['what']} ({row['hostname'] or '-'})": row
        for row in todo.iter_rows(named=True)
    }
    denied = not_yours(who, Permission.ACKNOWLEDGE)
    with st.form(f"{key}_attention"):
        picked = st.selectbox("Item", list(labels), key=f"{key}_item")
        note = st.text_input("Note", key=f"{key}_note")
        buttons = st.columns(2)
        ack = buttons[0].form_submit_button("Acknowledge", help=denied)
        resolve = buttons[1].form_submit_button("Resolve", help=denied)
    if not (ack or resolve) or picked is None:
        return
    row = labels[picked]
    item, text = int(row["id"]), note.strip() or None
    step = {
        ("alarm", True): actions.acknowledge_alarm,
        ("alarm", False): actions.resolve_alarm,
        ("event", True): actions.acknowledge_event,
        ("event", False): actions.resolve_event,
    }[("alarm" if row["origin"] == "alarm" else "event", bool(ack))]
    changed = run(lambda conn: step(conn, who, item, text))
    if changed:
        _done(f"{'Acknowledged' if ack else 'Resolved'} by {who.username}: {picked}")
    elif changed is not None:
        st.warning("Nothing changed: it was acknowledged or resolved already.")


def command_form(
    who: Identity,
    hostnames: Sequence[str],
    *,
    key: str,
    fixed: bool = False,
    countries: Sequence[str] = (),
) -> None:
    """Send a command to the devices picked (or, ``fixed``, to ``hostnames``) or matching a
    filter (zone, country, firmware, online now, or every device); SYSTEM and OTA commands
    need a confirmation."""
    denied = not_yours(who, Permission.COMMAND)
    allowed = [k for k in PAYLOAD_TYPES if may_command(who.role, PAYLOAD_TYPES[k])]
    with st.form(f"{key}_command"):
        kind = st.selectbox(
            "Command",
            list(PAYLOAD_TYPES),
            format_func=lambda k: f"{k} ({PAYLOAD_TYPES[k]})",
            key=f"{key}_kind",
        )
        payload = st.text_area(
            "Payload (JSON)",
            key=f"{key}_payload",
            placeholder=json.dumps(_EXAMPLES["output_control"]),
            help="; ".join(f"{k}: {json.dumps(v)}" for k, v in _EXAMPLES.items()),
        )
        if fixed:
            picked, zone, country, firmware = list(hostnames), 0, None, ""
            online = everyone = False
            st.caption(f"To {', '.join(hostnames)}")
        else:
            picked = st.multiselect("Devices", list(hostnames), key=f"{key}_devices")
            cols = st.columns(5)
            zone = int(cols[0].number_input("Zone (0: any)", 0, 10_000, 0, key=f"{key}_zone"))
            country = cols[1].selectbox(
                "Country", list(countries), index=None, key=f"{key}_country"
            )
            firmware = cols[2].text_input("Firmware", key=f"{key}_firmware")
            online = cols[3].checkbox("Only online now", key=f"{key}_online")
            everyone = cols[4].checkbox("Every active device", key=f"{key}_all")
        confirm = st.checkbox(
            "I confirm this SYSTEM or OTA command (reboot, re-identify, re-flash)",
            key=f"{key}_confirm",
        )
        send = st.form_submit_button("Send", help=denied)
    st.caption(f"As {who.role}, you may send: {', '.join(allowed) or 'no command'}.")
    if not send or kind is None:
        return
    try:
        spec = CommandSpec(kind, json.loads(payload or "{}"))
        target = TargetFilter(
            hostnames=picked,
            zone=zone or None,
            country=country or None,
            firmware=firmware.strip() or None,
            online=True if online else None,
            every_device=everyone,
        )
    except (CommandError, ValueError) as exc:
        st.error(str(exc))
        return
    if spec.command_type in _SYSTEM and not confirm:
        st.warning(f"{kind} is a {spec.command_type} command: tick the confirmation first.")
        return
    rows = run(lambda conn: actions.send_command(conn, who, spec, target))
    if rows:
        _done(f"{kind} queued for {len(rows)} device(s) by {who.username}")


def cancel_form(who: Identity, open_commands: Sequence[CommandRow], *, key: str) -> None:
    """Cancel commands not finished yet."""
    if not open_commands:
        st.caption("No command is waiting to finish.")
        return
    denied = not_yours(who, Permission.COMMAND)
    labels = {
        f"{row.hostname} {row.command_type} {row.status} ({row.request_id})": str(row.request_id)
        for row in open_commands
    }
    with st.form(f"{key}_cancel"):
        picked = st.multiselect("Commands", list(labels), key=f"{key}_cancel_pick")
        go = st.form_submit_button("Cancel them", help=denied)
    if go and picked:
        done = run(lambda conn: actions.cancel_commands(conn, who, [labels[p] for p in picked]))
        if done is not None:
            _done(f"Cancelled {len(done)} of {len(picked)} command(s)")
