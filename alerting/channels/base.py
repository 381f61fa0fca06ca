"""What every channel is (:class:`Channel`), what it sends (:class:`Outgoing`), the registry,
and the HTTP answer mapping the HTTP channels share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx

from alerting.errors import DeliveryError
from fleetwatch.settings import AlertSettings

__all__ = ["Channel", "Outgoing", "build", "check_http", "names", "register"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """One delivery as a channel sends it."""

    delivery_id: int
    event_id: int
    address: str
    name: str
    subject: str
    message: str
    trigger: str
    attempt: int
    event: Mapping[str, object] = field(default_factory=dict)  # the event, for webhooks


class Channel(Protocol):
    """Sends messages on one medium; one instance serves many deliveries at once."""

    name: str

    async def send(self, outgoing: Outgoing) -> None:
        """Deliver ``outgoing``; DeliveryError when it was not delivered."""

    async def aclose(self) -> None:
        """Release connections."""


Factory = Callable[[AlertSettings], Channel]
_FACTORIES: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> Factory:
    """Make the channel ``name`` available, built by ``factory`` from the settings."""
    _FACTORIES[name] = factory
    return factory


def names() -> tuple[str, ...]:
    """The registered channels."""
    return tuple(sorted(_FACTORIES))


def build(name: str, settings: AlertSettings) -> Channel:
    """The channel ``name``; KeyError lists the known ones."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise KeyError(f"no channel {name!r}; known: {', '.join(names())}") from None
    return factory(settings)


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def check_http(response: httpx.Response, what: str) -> None:
    """Raise DeliveryError unless ``response`` says the receiver took the message: 429 with
    its Retry-After, 5xx and 408 to retry, other 4xx as permanent (the receiver refuses)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"{what} answered HTTP {status}: {response.text[:200]}"
    if status == 429:
        raise DeliveryError(detail, retry_after=retry_after(response.headers.get("Retry-After")))
    if 400 <= status < 500 and status != 408:
        raise DeliveryError(detail, permanent=True)
    raise DeliveryError(detail)
