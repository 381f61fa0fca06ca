"""Who is acting: a person, as signed in or identified by a token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from access.roles import Permission, UserRole, may

__all__ = ["Identity", "Via"]

Via = Literal["password", "token", "oidc", "owner"]
"""How the person proved who they are; "owner" is the database owner's own credentials
(creating the first admin, resetting the demo users)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A person acting now.

    Attributes:
        user_id: the ``users`` row (None for the database owner).
        username: their name, which every change they make records.
        role: what they may do.
        via: how they proved it.
        source: where from: the browser's address, or "cli".
    """

    user_id: UUID | None
    username: str
    role: UserRole
    via: Via
    source: str | None = None

    def may(self, permission: Permission) -> bool:
        """Whether this person's role grants ``permission``."""
        return may(self.role, permission)

    def __str__(self) -> str:
        return f"{self.username} ({self.role})"
