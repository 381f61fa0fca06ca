"""Notification templates: how a message is worded, whom it reaches by default, how often
its delivery is retried. Placeholders are checked when a template is saved, so a typo is
refused then rather than found in a message at three in the morning."""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from alerting.errors import TemplateError
from alerting.recipients import Recipient

__all__ = ["PLACEHOLDERS", "Template", "placeholders_of", "render"]

PLACEHOLDERS: Final = {
    "device": "the device's hostname, or the subject for a fleet-wide event",
    "hostname": "the device's hostname",
    "zone": "the device's zone",
    "country": "the device's country",
    "kind": "the kind of the watched value (panel, telemetry, robot_servos, ...)",
    "metric": "the watched value's name",
    "source": "the part of the device (a servo, a sensor), or empty",
    "value": "the value that triggered the event",
    "unit": "the watched value's unit",
    "threshold": "the threshold it breached",
    "severity": "critical, warning or info",
    "rule": "the rule's name",
    "message": "the event's own one-line description",
    "status": "new, acknowledged or resolved",
    "time": "when it happened (UTC, ISO 8601)",
    "event_id": "the event's number",
    "link": "where to see the event in the dashboard",
}
MAX_MESSAGE: Final = 10_000


def placeholders_of(text: str) -> set[str]:
    """The placeholder names ``text`` uses; TemplateError for a malformed one."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"malformed placeholder in {text[:60]!r}: {exc}") from exc
    names = set()
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or spec or conversion or not name.isidentifier():
            raise TemplateError(
                f"write placeholders as {{name}} without formats, got {{{name}...}}"
            )
        names.add(name)
    return names


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    """A notification template (seed 002's notification_templates).

    Attributes:
        name: unique name rules refer to.
        message: the text, with placeholders such as ``{device}`` and ``{value}``.
        subject: an email's subject line (also with placeholders); a default when empty.
        recipients: who gets it when a rule's action names nobody.
        priority: lower is sent first.
        retry_count: attempts after the first before a delivery is failed.
        retry_delay_minutes: the wait between attempts.
    """

    name: str
    message: str
    subject: str = ""
    recipients: tuple[Recipient, ...] = ()
    priority: int = 1
    retry_count: int = 3
    retry_delay_minutes: float = 5.0
    description: str = ""
    active: bool = True
    id: int | None = None

    def __post_init__(self) -> None:
        if not self.name.strip() or len(self.name) > 100:
            raise TemplateError("a template's name is 1 to 100 characters")
        if not self.message.strip() or len(self.message) > MAX_MESSAGE:
            raise TemplateError(f"{self.name}: the message is 1 to {MAX_MESSAGE} characters")
        unknown = sorted(
            (placeholders_of(self.message) | placeholders_of(self.subject)) - set(PLACEHOLDERS)
        )
        if unknown:
            raise TemplateError(
                f"{self.name}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}"
                f"; known: {', '.join(sorted(PLACEHOLDERS))}"
            )
        if self.retry_count < 0 or self.retry_count > 100:
            raise TemplateError(f"{self.name}: retry_count is 0 to 100")
        if not (math.isfinite(self.retry_delay_minutes) and self.retry_delay_minutes >= 0):
            raise TemplateError(f"{self.name}: retry_delay_minutes is 0 or more")

    @property
    def max_attempts(self) -> int:
        return self.retry_count + 1


def render(text: str, values: Mapping[str, object]) -> str:
    """``text`` with its placeholders filled; a missing value renders as empty."""
    return string.Formatter().vformat(text, (), _Blank(values))


class _Blank(dict[str, object]):
    def __init__(self, values: Mapping[str, object]) -> None:
        super().__init__({k: "" if v is None else v for k, v in values.items()})

    def __missing__(self, key: str) -> str:
        return ""
