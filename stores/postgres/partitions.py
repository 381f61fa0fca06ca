"""Device partitions and stream positions in PostgreSQL.

``ingest.partitioning.partition_of`` assigns each device (by hostname) to a partition of a
stream; ``share_filter`` is the same function in SQL, so a worker can load or sweep exactly
its own devices in one query. ``read_positions`` and ``advance_positions`` keep how far a
consumer group has read each partition, written in the batch transaction that read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from psycopg import sql

# A (count, partitions) pair: the devices whose hostname falls into these partitions.
Share = tuple[int, list[int]]

# The first 8 hex digits of the MD5 are its first four bytes; as bit(32) then int they are
# a signed 32-bit number, masked to 31 bits like the Python side.
# (``mod`` rather than ``%``: the condition goes into queries with and without parameters.)
_PARTITION = "mod(('x' || substr(md5({column}), 1, 8))::bit(32)::int & 2147483647, {count})"


def partition_expression(column: str, count: int) -> sql.Composable:
    """SQL for the partition of ``column``'s value among ``count`` partitions."""
    return sql.SQL(_PARTITION).format(column=sql.SQL(column), count=sql.Literal(count))


def share_filter(column: str, share: Share | None) -> sql.Composable:
    """A WHERE condition keeping the devices of ``share`` (true when ``share`` is None)."""
    if share is None:
        return sql.SQL("TRUE")
    count, parts = share
    return sql.SQL("{} = ANY({})").format(
        partition_expression(column, count), sql.Literal(list(parts))
    )


def read_positions(
    conn: psycopg.Connection[Any], group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int]:
    """The next offset to read of each of ``partitions`` that has one.

    ``FOR SHARE`` waits for a batch still committing a move of these rows (the partition's
    previous owner finishing its last batch), so the position read is the final one.
    """
    rows = conn.execute(
        "SELECT partition, next_offset FROM stream_offsets "
        "WHERE consumer_group = %s AND topic = %s AND partition = ANY(%s) FOR SHARE",
        [group, topic, sorted(set(partitions))],
    ).fetchall()
    return {int(p): int(o) for p, o in rows}


def advance_positions(
    conn: psycopg.Connection[Any],
    group: str,
    topic: str,
    moves: Mapping[int, tuple[int | None, int]],
) -> set[int]:
    """Move each partition from its expected position (None: no row yet) to its new one;
    returns the partitions that were not where expected (another worker moved them)."""
    known = {p: move for p, move in moves.items() if move[0] is not None}
    fresh = {p: move[1] for p, move in moves.items() if move[0] is None}
    moved: set[int] = set()
    if known:
        rows = conn.execute(
            "UPDATE stream_offsets o SET next_offset = m.next "
            "FROM unnest(%s::int[], %s::bigint[], %s::bigint[]) AS m(part, expected, next) "
            "WHERE o.consumer_group = %s AND o.topic = %s AND o.partition = m.part "
            "AND o.next_offset = m.expected RETURNING o.partition",
            [
                list(known),
                [m[0] for m in known.values()],
                [m[1] for m in known.values()],
                group,
                topic,
            ],
        ).fetchall()
        moved.update(int(r[0]) for r in rows)
    if fresh:
        rows = conn.execute(
            "INSERT INTO stream_offsets (consumer_group, topic, partition, next_offset) "
            "SELECT %s, %s, part, next FROM unnest(%s::int[], %s::bigint[]) AS m(part, next) "
            "ON CONFLICT DO NOTHING RETURNING partition",
            [group, topic, list(fresh), list(fresh.values())],
        ).fetchall()
        moved.update(int(r[0]) for r in rows)
    return set(moves) - moved
