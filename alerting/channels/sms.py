"""SMS channel: through any HTTP SMS gateway, whose request is a configurable template.

FLEETWATCH_SMS_URL, _METHOD, _CONTENT_TYPE and _BODY describe the gateway's request; the
body's ``{to}``, ``{message}`` and ``{name}`` are filled escaped for the content type (JSON
string contents, or form encoding), and with GET the body is the query string. An
Authorization header can be set (FLEETWATCH_SMS_AUTH_HEADER). The gateway's answer is read
as the webhook's is: 2xx sent, 429 after its Retry-After, 5xx retried, other 4xx refused.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote_plus

import httpx

from alerting.channels.base import Outgoing, check_http, register
from alerting.errors import DeliveryError
from fleetwatch.settings import AlertSettings

__all__ = ["SmsChannel", "gateway_body"]

MAX_SMS = 612  # four concatenated messages of 153 characters


_FIELD = re.compile(r"\{(to|message|name)\}")


def gateway_body(template: str, content_type: str, values: dict[str, str]) -> str:
    """``template`` with ``{to}``, ``{message}`` and ``{name}`` filled, each escaped for
    ``content_type``; every other brace is the gateway's own (a JSON body's)."""
    if "json" in content_type:
        escaped = {k: json.dumps(v)[1:-1] for k, v in values.items()}
    elif "form" in content_type:
        escaped = {k: quote_plus(v) for k, v in values.items()}
    else:
        escaped = values
    return _FIELD.sub(lambda match: escaped.get(match.group(1), ""), template)


class SmsChannel:
    """Sends a text message per delivery through the configured gateway."""

    name = "sms"

    def __init__(self, settings: AlertSettings) -> None:
        self._settings = settings
        self._client = httpx.AsyncClient(timeout=settings.sms_timeout_s)

    async def send(self, outgoing: Outgoing) -> None:
        settings = self._settings
        if not settings.sms_url:
            raise DeliveryError("no SMS gateway configured (FLEETWATCH_SMS_URL)")
        text = outgoing.message if len(outgoing.message) <= MAX_SMS else outgoing.message[:609]
        values = {"to": outgoing.address, "message": text, "name": outgoing.name}
        form = "form" if settings.sms_method == "GET" else settings.sms_content_type
        body = gateway_body(settings.sms_body, form, values)
        headers = {"User-Agent": "fleetwatch"}
        if settings.sms_auth_header is not None:
            headers["Authorization"] = settings.sms_auth_header.get_secret_value()
        try:
            if settings.sms_method == "GET":
                url = f"{settings.sms_url}{'&' if '?' in settings.sms_url else '?'}{body}"
                response = await self._client.get(url, headers=headers)
            else:
                headers["Content-Type"] = settings.sms_content_type
                response = await self._client.request(
                    settings.sms_method, settings.sms_url, content=body.encode(), headers=headers
                )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"SMS gateway: {exc!r}") from exc
        check_http(response, "SMS gateway")

    async def aclose(self) -> None:
        await self._client.aclose()


register("sms", SmsChannel)
