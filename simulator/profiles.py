"""Who each simulated panel is: identity, site, firmware and sensor character.

Everything here is fixed for the life of the simulation and drawn from the seed, so a seed
always yields the same hostnames, MACs, sites and firmware mix.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulator.options import FleetOptions

# Espressif's organisationally unique identifiers: ESP32 MACs start with one of these.
ESPRESSIF_OUIS = ((0x24, 0x0A, 0xC4), (0x30, 0xAE, 0xA4), (0xA4, 0xCF, 0x12), (0x84, 0xCC, 0xA8))
# An odd multiplier is a bijection of 24-bit numbers: device indices map to distinct MACs.
_MAC_MULTIPLIER = 0x9E3779
_MAC_MASK = 0xFFFFFF


@dataclass(frozen=True, slots=True)
class Site:
    """A country where panels are installed, with its climate."""

    country: str  # ISO 3166 alpha-2
    latitude: float
    longitude: float
    zones: int
    ambient_c: float  # mean outdoor temperature
    humidity: float  # mean relative humidity, %
    weight: int  # share of the fleet


SITES = (
    Site("ES", 40.4168, -3.7038, 6, 17.0, 55.0, 30),
    Site("PT", 38.7223, -9.1393, 4, 17.5, 65.0, 10),
    Site("FR", 48.8566, 2.3522, 5, 12.5, 70.0, 10),
    Site("MX", 19.4326, -99.1332, 8, 17.0, 55.0, 20),
    Site("CO", 4.7110, -74.0721, 5, 14.5, 75.0, 10),
    Site("CL", -33.4489, -70.6693, 4, 14.5, 60.0, 10),
    Site("AE", 25.2048, 55.2708, 3, 28.0, 55.0, 5),
    Site("NO", 59.9139, 10.7522, 2, 6.0, 75.0, 5),
)
# The firmware mix of a fleet mid-rollout, most devices on the latest stable release.
FIRMWARE = (("2.3.1", 45), ("2.3.0", 25), ("2.2.4", 15), ("2.1.9", 10), ("2.4.0-beta.2", 5))


@dataclass(frozen=True, slots=True)
class Profile:
    """One panel's fixed traits."""

    index: int  # 0-based position in the fleet
    hostname: str
    mac: str  # "24:0A:C4:12:34:56"
    site: Site
    zone: int
    latitude: float
    longitude: float
    firmware: str
    ethernet: bool
    ip_address: str
    rssi_dbm: int  # typical signal strength (0 on ethernet)
    out_of_sync: bool  # ignores SET_DEVICE_ID (see simulator.commands)
    enclosure_c: float  # mean temperature inside the box: ambient plus electronics
    daily_amplitude_c: float
    humidity: float
    fan_start_c: float  # the fan starts above this enclosure temperature
    heap_bytes: int  # typical free heap

    @property
    def utc_offset_h(self) -> float:
        """Solar offset from UTC, for the daily temperature cycle."""
        return self.longitude / 15.0


def hostname(number: int) -> str:
    """The hostname of panel ``number`` (1-based): ESG_ALARM_0001, ESG_ALARM_0002, …"""
    return f"ESG_ALARM_{number:04d}"


def mac_address(seed: int, index: int) -> str:
    """A MAC unique within the fleet and stable for the seed."""
    offset = random.Random(f"{seed}:mac").getrandbits(24)  # noqa: S311 - not a secret
    low = (index * _MAC_MULTIPLIER + offset) & _MAC_MASK
    oui = ESPRESSIF_OUIS[index % len(ESPRESSIF_OUIS)]
    octets = (*oui, low >> 16, (low >> 8) & 0xFF, low & 0xFF)
    return ":".join(f"{octet:02X}" for octet in octets)


def build_profiles(options: FleetOptions) -> list[Profile]:
    """Every panel of the fleet, in hostname order."""
    fleet_rng = random.Random(f"{options.seed}:fleet")  # noqa: S311 - a simulation
    stuck_count = int(options.devices * options.behaviour.out_of_sync_fraction + 0.5)
    stuck = set(fleet_rng.sample(range(options.devices), stuck_count))
    return [_profile(options.seed, index, index in stuck) for index in range(options.devices)]


def _profile(seed: int, index: int, out_of_sync: bool) -> Profile:
    rng = random.Random(f"{seed}:{index}:profile")  # noqa: S311 - a simulation
    (site,) = rng.choices(SITES, weights=[s.weight for s in SITES])
    (firmware,) = rng.choices([f for f, _ in FIRMWARE], weights=[w for _, w in FIRMWARE])
    ethernet = rng.random() < 0.2
    zone = rng.randint(1, site.zones)
    country_number = SITES.index(site) + 1
    return Profile(
        index=index,
        hostname=hostname(index + 1),
        mac=mac_address(seed, index),
        site=site,
        zone=zone,
        latitude=round(site.latitude + rng.uniform(-0.6, 0.6), 5),
        longitude=round(site.longitude + rng.uniform(-0.6, 0.6), 5),
        firmware=firmware,
        ethernet=ethernet,
        ip_address=f"10.{country_number}.{zone}.{index % 250 + 2}",
        rssi_dbm=0 if ethernet else rng.randint(-82, -48),
        out_of_sync=out_of_sync,
        enclosure_c=site.ambient_c + rng.uniform(5.0, 10.0),
        daily_amplitude_c=rng.uniform(1.5, 5.0),
        humidity=min(85.0, max(20.0, site.humidity - 15.0 + rng.uniform(-8.0, 8.0))),
        fan_start_c=rng.uniform(28.0, 33.0),
        heap_bytes=rng.randint(120_000, 180_000),
    )
