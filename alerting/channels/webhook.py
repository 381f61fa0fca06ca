"""Webhook channel: an HTTP POST of the event as JSON, signed so the receiver can check it.

Headers: ``X-Fleetwatch-Delivery`` (the delivery id: a receiver that saw it already can
ignore a retry), ``X-Fleetwatch-Timestamp`` (Unix seconds) and, with
FLEETWATCH_WEBHOOK_SECRET set, ``X-Fleetwatch-Signature: sha256=<hex>``, the HMAC-SHA256 of
``<timestamp>.<body>`` under the secret: a receiver recomputes it and compares in constant
time, and rejects old timestamps to stop replays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from alerting.channels.base import Outgoing, check_http, register
from alerting.errors import DeliveryError
from fleetwatch.settings import AlertSettings

__all__ = ["WebhookChannel", "signature"]


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookChannel:
    """POSTs JSON to the recipient's URL."""

    name = "webhook"

    def __init__(self, settings: AlertSettings) -> None:
        secret = settings.webhook_secret
        self._secret = secret.get_secret_value().encode() if secret is not None else None
        self._client = httpx.AsyncClient(timeout=settings.webhook_timeout_s)

    async def send(self, outgoing: Outgoing) -> None:
        body = json.dumps(
            {
                "delivery_id": outgoing.delivery_id,
                "event_id": outgoing.event_id,
                "trigger": outgoing.trigger,
                "subject": outgoing.subject,
                "message": outgoing.message,
                "event": dict(outgoing.event),
            },
            default=str,
            separators=(",", ":"),
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "fleetwatch",
            "X-Fleetwatch-Delivery": str(outgoing.delivery_id),
            "X-Fleetwatch-Timestamp": timestamp,
        }
        if self._secret is not None:
            headers["X-Fleetwatch-Signature"] = signature(self._secret, timestamp, body)
        try:
            response = await self._client.post(outgoing.address, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {outgoing.address}: {exc!r}") from exc
        check_http(response, f"webhook {outgoing.address}")

    async def aclose(self) -> None:
        await self._client.aclose()


register("webhook", WebhookChannel)
