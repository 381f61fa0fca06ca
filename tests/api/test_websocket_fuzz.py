"""Random and mutated frames through a device's socket: every one is answered, what the
decoder rejects comes back (and is kept) as a dead letter with that reason, and the server
keeps serving.

As the MQTT fuzz test does, a seeded ``random.Random`` drives the traffic, and each frame is
classified up front with the ``FrameDecoder`` the server uses.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from ingest.decoding import DecodeLimits
from ingest.frames import FrameDecoder, frame_address
from ingest.messages import Rejected
from tests.api.ws_fleet import MAX_FRAME, Fleet, until

FRAMES_PER_SEED = 250
_KINDS = ("status", "heartbeat", "telemetry", "command_ack", "hello", "selfie", "", None, 7)
_VALUES: tuple[object, ...] = (
    0, -1, 2**40, 1.5, -1e308, True, None, "", "x" * 70, "ESP32-CAM", [], {}, {"a": 1},
    [1, "two"], {"temperature": 40.0}, {"fps": "fast"}, "\u0000",
    "550e8400-e29b-41d4-a716-446655440000",
)  # fmt: skip
_KEYS = ("type", "id", "timestamp", "device_type", "device_id", "state_data", "metrics",
         "version", "command_id", "status", "response", "error", "firmware", "extra")  # fmt: skip


def _frame(rng: random.Random, number: int) -> bytes:
    """One frame: mostly well-formed objects with random fields, some mutated bytes."""
    body: dict[str, object] = {"type": rng.choice(_KINDS), "id": f"f{number}"}
    for key in rng.sample(_KEYS, rng.randint(0, 5)):
        body[key] = rng.choice(_VALUES)
    if rng.random() < 0.3:
        body["id"] = f"f{number}"  # most frames keep an id to be answered under
    if body.get("type") == "status" and rng.random() < 0.5:
        body["state_data"] = {"temperature": rng.uniform(-60, 150), "fps": rng.uniform(0, 30)}
    data = bytearray(json.dumps(body).encode())
    if rng.random() < 0.15:  # byte-level mutation
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


@pytest.mark.parametrize("seed", [11, 12])
async def test_random_frames_are_each_answered_or_dead_lettered(fleet: Fleet, seed: int) -> None:
    rng = random.Random(seed)
    decoder = FrameDecoder(DecodeLimits(max_payload_bytes=MAX_FRAME))
    cam = fleet.device("cam-1", answer_commands=None)
    await cam.connect()
    expected: Counter[str] = Counter()
    for number in range(FRAMES_PER_SEED):
        frame = _frame(rng, number)
        try:
            decoder.decode(frame_address("cam-1"), frame, datetime.now(UTC))
        except Rejected as exc:
            expected[exc.reason.value] += 1
        # Text frames must be UTF-8: mutated bytes go as a binary frame.
        try:
            await cam.send_raw(frame.decode())
        except UnicodeDecodeError:
            await cam.send_raw(frame)
        await asyncio.sleep(1 / 45)  # within the device's rate: nothing is refused

    # Every decode rejection is kept with its reason (the handler may reject more: metrics
    # out of range, an unknown command).
    def kept() -> Counter[str]:
        return Counter(
            dict(fleet.rows("SELECT reason, count(*)::int FROM dead_letters GROUP BY reason"))
        )

    await until(lambda: all(kept()[r] >= n for r, n in expected.items()), "dead letters")
    assert sum(kept().values()) >= sum(expected.values())
    # Still serving: a clean frame is taken and acknowledged.
    await cam.wait_acked([await cam.heartbeat(temperature=20.0)])
    assert cam.close_code is None
    await cam.close()
