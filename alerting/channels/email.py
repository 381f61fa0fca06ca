"""Email channel: one message per delivery over SMTP, with STARTTLS and login as configured
(FLEETWATCH_SMTP_*). A recipient the server refuses fails at once; a server that is down or
answers with a temporary error is retried."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import aiosmtplib

from alerting.channels.base import Outgoing, register
from alerting.errors import DeliveryError
from fleetwatch.settings import AlertSettings

__all__ = ["EmailChannel", "login"]


class EmailChannel:
    """Sends through the configured SMTP server, a connection per message."""

    name = "email"

    def __init__(self, settings: AlertSettings) -> None:
        self._settings = settings

    def message(self, outgoing: Outgoing) -> EmailMessage:
        """The email of ``outgoing``."""
        message = EmailMessage()
        message["From"] = self._settings.smtp_from
        message["To"] = formataddr((outgoing.name, outgoing.address))
        message["Subject"] = outgoing.subject or "fleetwatch"
        message["Message-ID"] = make_msgid(f"delivery{outgoing.delivery_id}")
        message["X-Fleetwatch-Delivery"] = str(outgoing.delivery_id)
        message.set_content(outgoing.message)
        return message

    async def send(self, outgoing: Outgoing) -> None:
        settings = self._settings
        try:
            await aiosmtplib.send(
                self.message(outgoing),
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                start_tls=settings.smtp_starttls,
                username=login(settings)[0],
                password=login(settings)[1],
                timeout=settings.smtp_timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP refused {outgoing.address}: {exc}", permanent=True) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {settings.smtp_host}:{settings.smtp_port}: {exc}") from exc

    async def aclose(self) -> None:
        """Nothing held between messages."""


def login(settings: AlertSettings) -> tuple[str | None, str | None]:
    """The SMTP user and password to log in with: none without a user name."""
    if not settings.smtp_username:
        return None, None
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
    return settings.smtp_username, password


register("email", EmailChannel)
