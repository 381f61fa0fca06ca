"""Which partition of a stream a device's messages go to, and which devices a worker owns.

A scaled-out deployment keeps each device's messages in one Kafka partition, so one worker
at a time handles them, in order. The bridge chooses the partition itself from the device's
key (the hostname its topics carry) rather than leaving it to the client library's
partitioner: the workers must compute the same mapping to know which devices are theirs
when nothing arrives from them (liveness), and PostgreSQL must compute it too to load a
worker's CDC states in one query (``stores.postgres.partitions`` holds the same function in
SQL; a test keeps the two equal).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


def partition_of(key: str, count: int) -> int:
    """The partition of ``count`` that messages keyed ``key`` go to: the first four bytes
    of the key's MD5 (a spreading hash here, not a security measure), as a non-negative
    31-bit number, modulo ``count``."""
    digest = hashlib.md5(key.encode(), usedforsecurity=False).digest()
    return (int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF) % count


@dataclass(frozen=True, slots=True)
class DeviceShare:
    """The devices one worker owns: those whose key falls into ``parts`` of ``count``."""

    count: int
    parts: frozenset[int]

    @classmethod
    def of(cls, count: int, parts: Iterable[int]) -> DeviceShare:
        chosen = frozenset(parts)
        if count < 1 or any(not 0 <= p < count for p in chosen):
            raise ValueError(f"partitions {sorted(chosen)} are not all in 0..{count - 1}")
        return cls(count, chosen)

    def owns(self, key: str) -> bool:
        """Whether the device keyed ``key`` is this worker's."""
        return partition_of(key, self.count) in self.parts

    @property
    def sql_args(self) -> tuple[int, list[int]]:
        """(count, parts) as the stores' share filters take them."""
        return self.count, sorted(self.parts)
