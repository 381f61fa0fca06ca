"""What each role may do, and the command levels they carry."""

from __future__ import annotations

import pytest

from access import Permission, UserRole, command_level, may, may_command


def test_viewer_only_reads() -> None:
    """A viewer is granted reading and nothing else."""
    assert [p for p in Permission if may(UserRole.VIEWER, p)] == [Permission.READ]


def test_operator_acts_but_does_not_administer() -> None:
    """An operator acknowledges, commands, edits rules and runs Flux; no users, no audit."""
    granted = {p for p in Permission if may(UserRole.OPERATOR, p)}
    assert granted == {
        Permission.READ, Permission.ACKNOWLEDGE, Permission.COMMAND, Permission.EDIT_RULES,
        Permission.QUERY_FLUX,
    }  # fmt: skip


def test_admin_may_everything() -> None:
    """An admin is granted every permission."""
    assert all(may(UserRole.ADMIN, p) for p in Permission)


@pytest.mark.parametrize(
    ("role", "level", "allowed"),
    [
        (UserRole.VIEWER, 0, set()),
        (UserRole.OPERATOR, 1, {"OUTPUT", "CONFIG", "DIAGNOSTIC"}),
        (UserRole.ADMIN, 2, {"OUTPUT", "CONFIG", "DIAGNOSTIC", "SYSTEM", "OTA"}),
    ],
)
def test_command_level_comes_from_the_role(role: UserRole, level: int, allowed: set[str]) -> None:
    """The authorisation level and the command types follow from the role alone."""
    assert command_level(role) == level
    types = {"OUTPUT", "CONFIG", "DIAGNOSTIC", "SYSTEM", "OTA"}
    assert {t for t in types if may_command(role, t)} == allowed
