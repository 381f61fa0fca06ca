"""Connecting to the MQTT broker with fleetwatch's settings."""

from __future__ import annotations

import aiomqtt

from fleetwatch.settings import MqttSettings


class BrokerUnavailableError(RuntimeError):
    """The broker refused or did not answer the connection."""


def make_client(
    settings: MqttSettings, *, client_id: str | None = None, clean_session: bool = True
) -> aiomqtt.Client:
    """An aiomqtt client for the configured broker (use it as an async context manager)."""
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    return aiomqtt.Client(
        hostname=settings.mqtt_host,
        port=settings.mqtt_port,
        username=settings.mqtt_username,
        password=password,
        identifier=client_id,
        clean_session=clean_session,
        timeout=10,
    )


async def probe(settings: MqttSettings) -> None:
    """Connect and disconnect once; raise BrokerUnavailableError if that fails."""
    try:
        async with make_client(settings):
            return
    except aiomqtt.MqttError as exc:
        where = f"{settings.mqtt_host}:{settings.mqtt_port}"
        raise BrokerUnavailableError(f"MQTT broker unreachable at {where}: {exc}") from exc
