"""The exceptions of alerting: what people set up wrongly, and what cannot be delivered."""

from __future__ import annotations

__all__ = ["AlertingError", "DeliveryError", "RuleError", "TemplateError"]


class AlertingError(Exception):
    """Base class of alerting's errors."""


class RuleError(AlertingError, ValueError):
    """A rule that cannot work: refused when it is created or edited."""


class TemplateError(AlertingError, ValueError):
    """A notification template or recipient that cannot work: refused when it is saved."""


class DeliveryError(AlertingError):
    """A notification that a channel could not deliver this time.

    Attributes:
        retry_after: seconds the receiver asked to wait (HTTP 429 Retry-After), or None.
        permanent: True when retrying cannot help (the receiver refused the address).
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent
