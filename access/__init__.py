"""Who may do what: people, their roles, signing in, and the audit trail of what they did.

The dashboard and the CLI both identify a person (:mod:`access.signin`) and take every
action inside :func:`access.audit.acting`, which checks the role (:mod:`access.roles`),
records a refusal, and writes the audit row in the action's own transaction.
"""

from access.audit import acting, record, require
from access.errors import AccessError, ForbiddenError, LockedOutError, SignInError, UserError
from access.identity import Identity
from access.roles import Permission, UserRole, command_level, may, may_command
from access.signin import identify_token, sign_in
from access.throttle import ThrottlePolicy

__all__ = [
    "AccessError",
    "ForbiddenError",
    "Identity",
    "LockedOutError",
    "Permission",
    "SignInError",
    "ThrottlePolicy",
    "UserError",
    "UserRole",
    "acting",
    "command_level",
    "identify_token",
    "may",
    "may_command",
    "record",
    "require",
    "sign_in",
]
