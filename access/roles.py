"""What each role may do: the one table every entry point (dashboard, CLI) consults.

A viewer reads everything. An operator also acts on the fleet: acknowledges and resolves
alarms and events, sends and cancels everyday commands (OUTPUT, CONFIG, DIAGNOSTIC), edits
rules, silences and templates, and runs ad-hoc Flux. An admin also sends the commands that
can take a panel out of service (SYSTEM, OTA), manages people, thresholds and retention, and
reads the audit trail. A command's authorisation level (0-2, what the panel checks) comes from
the role of the person sending it, never from what a caller declares.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from stores.postgres.schema import UserRole

__all__ = ["Permission", "UserRole", "command_level", "may", "may_command", "permissions"]


class Permission(enum.StrEnum):
    """An action a role may be granted."""

    READ = "read"
    ACKNOWLEDGE = "acknowledge"  # acknowledge and resolve alarms and events
    COMMAND = "command"  # OUTPUT, CONFIG and DIAGNOSTIC commands: send and cancel
    COMMAND_SYSTEM = "command_system"  # SYSTEM and OTA commands as well
    EDIT_RULES = "edit_rules"  # rules, silences, templates, deliveries, reports
    QUERY_FLUX = "query_flux"  # ad-hoc Flux on the Trends page
    MANAGE_USERS = "manage_users"
    CONFIGURE = "configure"  # thresholds and retention
    READ_AUDIT = "read_audit"


_OPERATOR: Final = frozenset(
    {
        Permission.READ,
        Permission.ACKNOWLEDGE,
        Permission.COMMAND,
        Permission.EDIT_RULES,
        Permission.QUERY_FLUX,
    }
)
_GRANTED: Final[Mapping[UserRole, frozenset[Permission]]] = {
    UserRole.VIEWER: frozenset({Permission.READ}),
    UserRole.OPERATOR: _OPERATOR,
    UserRole.ADMIN: frozenset(Permission),
}

# The panel's own authorisation levels (ingest.commands.REQUIRED_LEVEL): 1 drives outputs
# and changes config, 2 reboots, re-identifies and re-flashes.
_LEVEL: Final[Mapping[UserRole, int]] = {
    UserRole.VIEWER: 0,
    UserRole.OPERATOR: 1,
    UserRole.ADMIN: 2,
}
_SYSTEM_TYPES: Final = frozenset({"SYSTEM", "OTA"})


def permissions(role: UserRole) -> frozenset[Permission]:
    """Everything ``role`` may do."""
    return _GRANTED[role]


def may(role: UserRole, permission: Permission) -> bool:
    """Whether ``role`` is granted ``permission``."""
    return permission in _GRANTED[role]


def command_level(role: UserRole) -> int:
    """The authorisation level a command sent by ``role`` carries."""
    return _LEVEL[role]


def may_command(role: UserRole, command_type: str) -> bool:
    """Whether ``role`` may send or cancel a command of ``command_type`` (SYSTEM, OUTPUT…)."""
    needed = Permission.COMMAND_SYSTEM if command_type in _SYSTEM_TYPES else Permission.COMMAND
    return may(role, needed)
