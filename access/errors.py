"""The exceptions of access: who someone is, and what they may do."""

from __future__ import annotations

from datetime import datetime

__all__ = ["AccessError", "ForbiddenError", "LockedOutError", "SignInError", "UserError"]


class AccessError(Exception):
    """Base class of access's errors. Messages never hold a password or a token."""


class SignInError(AccessError):
    """The name and password (or token) do not match an active person.

    Which of the two was wrong is never said, so a failure tells nothing about who exists.
    """


class LockedOutError(SignInError):
    """Too many failed sign-ins under this name: no attempt is checked until ``retry_at``."""

    def __init__(self, message: str, *, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class ForbiddenError(AccessError):
    """The person's role does not allow the action (the refusal is in the audit trail)."""


class UserError(AccessError, ValueError):
    """A user that cannot be made or changed so: a taken name, a short password, no such user."""
