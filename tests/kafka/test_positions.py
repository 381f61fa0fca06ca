"""Stream positions in PostgreSQL: the device partition function, claims and the fence."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from fleetwatch.settings import PostgresSettings
from ingest.partitioning import DeviceShare, partition_of
from ingest.transports.base import Delivery
from ingest.transports.positions import PositionLost, StreamPositions
from stores.postgres.partitions import partition_expression


def delivery(generation: int, partition: int, offset: int) -> Delivery:
    return Delivery(
        transport="mqtt",
        address="fleet/panel/heartbeat",
        payload=b"{}",
        received_at=datetime.now(UTC),
        receipt=(generation, partition, offset),
    )


def test_postgresql_puts_every_device_in_the_same_partition(
    db: psycopg.Connection[Any],
) -> None:
    """The SQL share filters and the bridge's partitioner agree, for any hostname."""
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "-_.é"
    names = [
        "",
        "a",
        "ESP32-0001",
        *("".join(rng.choices(alphabet, k=rng.randint(1, 40))) for _ in range(400)),
    ]
    for count in (1, 3, 12, 64):
        query = psycopg.sql.SQL("SELECT h, {} FROM unnest(%s::text[]) AS t(h)").format(
            partition_expression("h", count)
        )
        rows = db.execute(query, [names]).fetchall()
        assert dict(rows) == {h: partition_of(h, count) for h in names}
    share = DeviceShare.of(12, [0, 5])
    assert all(share.owns(h) == (partition_of(h, 12) in {0, 5}) for h in names)
    with pytest.raises(ValueError, match="not all in"):
        DeviceShare.of(3, [3])


def test_claims_keep_what_the_worker_still_owns_once(migrated_pg: PostgresSettings) -> None:
    """Deliveries of a revoked partition, of an earlier assignment or already committed are
    not handled; the rest move the positions in the batch's transaction."""
    url = str(migrated_pg.database_url)
    positions = StreamPositions(url, "group", "topic")
    assert positions.assign(4, [0, 1]) == {0: None, 1: None}
    generation = positions.stamps()[0]
    batch = [
        delivery(generation, 0, 0),
        delivery(generation, 1, 0),
        delivery(generation, 0, 1),
        delivery(generation, 0, 1),  # the same record twice (a seek back)
        delivery(generation - 1, 1, 1),  # read in an earlier assignment
        delivery(generation, 2, 0),  # a partition this worker does not own
    ]
    with psycopg.connect(url) as conn, positions.claim(batch) as claim:
        assert claim.kept == [0, 1, 2]
        claim.save(conn)
        conn.commit()
        claim.committed()
    assert positions.committed() == {0: 2, 1: 1}
    with positions.claim([delivery(generation, 0, 1), delivery(generation, 0, 2)]) as claim:
        assert claim.kept == [1]  # offset 1 was committed
    positions.revoke([0, 1])
    assert positions.share is None
    again = StreamPositions(url, "group", "topic")
    assert again.assign(4, [0, 1, 3]) == {0: 2, 1: 1, 3: None}


def test_a_stale_owner_cannot_commit_after_the_new_one(migrated_pg: PostgresSettings) -> None:
    """Two workers both believing they own a partition: the second to commit fails, and
    nothing of its batch is kept."""
    url = str(migrated_pg.database_url)
    old, new = StreamPositions(url, "g", "t"), StreamPositions(url, "g", "t")
    old.assign(2, [1])
    new.assign(2, [1])  # the old owner was presumed dead and has not noticed yet
    old_batch = [delivery(old.stamps()[1], 1, n) for n in range(3)]
    new_batch = [delivery(new.stamps()[1], 1, n) for n in range(5)]
    with psycopg.connect(url) as conn, new.claim(new_batch) as claim:
        claim.save(conn)
        conn.commit()
        claim.committed()
    with psycopg.connect(url) as conn, old.claim(old_batch) as claim:
        with pytest.raises(PositionLost, match=r"partitions \[1\]"):
            claim.save(conn)
        conn.rollback()
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT next_offset FROM stream_offsets").fetchone()
    assert row == (5,)
