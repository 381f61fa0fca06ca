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

__all__ = ["EmailChannel", "smtp_send"]


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
        try:
            await smtp_send(self._settings, self.message(outgoing))
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP refused {outgoing.address}: {exc}", permanent=True) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{_server(self._settings)}: {exc}") from exc

    async def aclose(self) -> None:
        """Nothing held between messages."""


async def smtp_send(settings: AlertSettings, message: EmailMessage) -> None:
    """Send ``message`` through the configured SMTP server (STARTTLS and login as set: a
    login only with a user name); aiosmtplib's errors and OSError propagate."""
    user, password = None, None
    if settings.smtp_username:
        user = settings.smtp_username
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
    await aiosmtplib.send(
        message,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        start_tls=settings.smtp_starttls,
        username=user,
        password=password,
        timeout=settings.smtp_timeout_s,
    )


def _server(settings: AlertSettings) -> str:
    return f"SMTP {settings.smtp_host}:{settings.smtp_port}"


register("email", EmailChannel)
