"""Notification channels, each declared in its own module and registered by name: the worker
never lists them. A channel turns an :class:`Outgoing` into a message on its medium and
raises :class:`~alerting.errors.DeliveryError` when that fails (saying whether to retry, and
after how long the receiver asked for)."""

from __future__ import annotations

from alerting.channels.base import Channel, Outgoing, build, names, register

__all__ = ["Channel", "Outgoing", "build", "names", "register"]

# The built-in channels register themselves when imported.
from alerting.channels import email, sms, webhook  # noqa: F401
