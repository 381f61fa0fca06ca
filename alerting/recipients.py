"""Who a notification reaches: an email address, a phone number or a webhook URL, checked
when a template or rule is saved (an address that cannot work is refused then, not at
delivery time)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias
from urllib.parse import urlsplit

from alerting.errors import TemplateError

__all__ = ["CHANNELS", "ChannelName", "Recipient"]

ChannelName: TypeAlias = Literal["email", "sms", "webhook"]
CHANNELS: Final[tuple[ChannelName, ...]] = ("email", "sms", "webhook")

# A practical address check: one @, a local part without spaces, a domain of labels.
_EMAIL: Final = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_PHONE: Final = re.compile(r"^\+[1-9][0-9]{6,14}$")  # E.164


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient: the channel, the address on it, and a name for people."""

    type: ChannelName
    address: str
    name: str = ""

    def __post_init__(self) -> None:
        if self.type not in CHANNELS:
            raise TemplateError(
                f"recipient type {self.type!r} is unknown; use one of {', '.join(CHANNELS)}"
            )
        check = {"email": _check_email, "sms": _check_phone, "webhook": _check_url}[self.type]
        check(self.address)

    def to_json(self) -> dict[str, str]:
        data = {"type": self.type, "address": self.address}
        if self.name:
            data["name"] = self.name
        return data

    @classmethod
    def from_json(cls, data: object) -> Recipient:
        """A recipient from ``{"type": ..., "address": ...}`` (seed 002 also writes the
        address as ``phone`` or ``url``); TemplateError says what is wrong."""
        if not isinstance(data, dict):
            raise TemplateError(f"a recipient is an object with type and address: {data!r}")
        kind = str(data.get("type", ""))
        address = data.get("address") or data.get("phone") or data.get("url") or ""
        return cls(kind, str(address), str(data.get("name") or ""))  # type: ignore[arg-type]

    @classmethod
    def parse(cls, text: str) -> Recipient:
        """``email:ops@example.com``, ``sms:+34600000000``, ``webhook:https://...``, with an
        optional ``=Name`` at the end."""
        kind, sep, rest = text.partition(":")
        if not sep:
            raise TemplateError(f"write a recipient as TYPE:ADDRESS[=NAME], got {text!r}")
        address, _, name = rest.partition("=") if kind != "webhook" else (rest, "", "")
        return cls(kind, address.strip(), name.strip())  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.type}:{self.address}"


def _check_email(address: str) -> None:
    if not _EMAIL.match(address):
        raise TemplateError(f"{address!r} is not an email address")


def _check_phone(address: str) -> None:
    if not _PHONE.match(address):
        raise TemplateError(
            f"{address!r} is not a phone number in international form (+ and 7 to 15 digits)"
        )


def _check_url(address: str) -> None:
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TemplateError(f"{address!r} is not an http(s) URL")
