import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.clock import FrozenClock
from core.metrics import Metric
from core.types import AlarmEvent, DecodeResult, RawFrame, Reading
from edge_agent.dead_letter import DeadLetterStore
from edge_agent.outbox.memory import MemoryOutbox
from edge_agent.pipeline import Pipeline
from firmware_adapters.codec import Codec, DeviceClass

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
CODEC_ID = "ip.test.seq"


def decode_seq(frame: RawFrame) -> DecodeResult:
    seq = json.loads(frame.payload)["seq"]
    return DecodeResult(
        (Reading(frame.device_id, Metric.ILLUMINANCE_LUX, seq, T0, codec_id=CODEC_ID),)
    )


class NoRules:
    def observe(self, _reading: Reading, _now: datetime) -> list[AlarmEvent]:
        return []

    def tick(self, _now: datetime) -> list[AlarmEvent]:
        return []


class CountingOutbox(MemoryOutbox):
    def __init__(self) -> None:
        super().__init__()
        self.puts: list[int] = []

    async def put(
        self,
        readings: Sequence[Reading] = (),
        events: Sequence[AlarmEvent] = (),
        *,
        state: str | None = None,
    ) -> None:
        self.puts.append(len(readings))
        await asyncio.sleep(0.01)  # a disk flush takes time; frames queue meanwhile
        await super().put(readings, events, state=state)


def pipeline(outbox: MemoryOutbox, tmp_path: Path, *, busy: int) -> Pipeline:
    codec = Codec(
        id=CODEC_ID,
        device_class=DeviceClass.GENERIC,
        description="test",
        decode=decode_seq,
        encode=lambda _values: b"",
        vectors=Path("none"),
    )
    return Pipeline(
        gateway_id="gw-01",
        codecs={CODEC_ID: codec},
        engine=NoRules(),
        outbox=outbox,
        dead_letters=DeadLetterStore(tmp_path / "dead.sqlite3"),
        clock=FrozenClock(T0),
        queue_size=5000,
        batch_size=50,
        busy_batch_size=busy,
    )


def frame(seq: int) -> RawFrame:
    return RawFrame(
        "test", CODEC_ID, json.dumps({"seq": seq}).encode(), T0, {"device_id": f"d{seq % 3}"}
    )


async def depth_reaches(outbox: MemoryOutbox, depth: int) -> None:
    for _ in range(1000):
        if (await outbox.stats()).depth >= depth:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"outbox depth never reached {depth}")


async def stored(outbox: MemoryOutbox) -> list[float | bool]:
    batch = await outbox.begin(100_000)
    assert batch is not None
    return [r.value for r in batch.readings]


async def test_a_backlog_shares_one_transaction_up_to_the_busy_batch_size(tmp_path: Path) -> None:
    outbox = CountingOutbox()
    pipe = pipeline(outbox, tmp_path, busy=400)
    for seq in range(1000):
        await pipe.submit(frame(seq))
    worker = asyncio.create_task(pipe.run())
    await depth_reaches(outbox, 1000)
    worker.cancel()
    assert outbox.puts == [400, 400, 200]
    assert await stored(outbox) == list(range(1000))


async def test_a_trickle_is_stored_promptly_in_small_transactions(tmp_path: Path) -> None:
    outbox = CountingOutbox()
    pipe = pipeline(outbox, tmp_path, busy=400)
    worker = asyncio.create_task(pipe.run())
    for seq in range(5):
        await pipe.submit(frame(seq))
        await depth_reaches(outbox, seq + 1)
    worker.cancel()
    assert outbox.puts == [1] * 5
    assert await stored(outbox) == list(range(5))


async def test_durable_submits_in_a_busy_batch_return_after_their_transaction(
    tmp_path: Path,
) -> None:
    outbox = CountingOutbox()
    pipe = pipeline(outbox, tmp_path, busy=400)
    for seq in range(300):
        await pipe.submit(frame(seq))
    worker = asyncio.create_task(pipe.run())
    async with asyncio.timeout(10):
        await pipe.submit_durable(frame(300))
        assert (await outbox.stats()).depth == 301
    worker.cancel()
    assert await stored(outbox) == list(range(301))


async def test_frames_submitted_together_are_done_once_all_are_stored(tmp_path: Path) -> None:
    outbox = CountingOutbox()
    pipe = pipeline(outbox, tmp_path, busy=400)
    before = await pipe.submit_many([frame(seq) for seq in range(120)])
    worker = asyncio.create_task(pipe.run())
    together = await pipe.submit_many([frame(seq) for seq in range(120, 1000)])
    async with asyncio.timeout(10):
        await before
        assert (await outbox.stats()).depth >= 120
        await together
        assert (await outbox.stats()).depth == 1000
    worker.cancel()
    assert await stored(outbox) == list(range(1000))
    assert pipe.stats.frames_in == 1000
    assert (await pipe.submit_many([])).done()


async def test_submitting_more_than_the_queue_holds_waits_for_room_in_order(
    tmp_path: Path,
) -> None:
    outbox = CountingOutbox()
    pipe = pipeline(outbox, tmp_path, busy=400)  # the queue holds 5000
    submit = asyncio.create_task(pipe.submit_many([frame(seq) for seq in range(12_000)]))
    await asyncio.sleep(0.05)
    assert not submit.done()
    assert pipe.queued == 5000
    worker = asyncio.create_task(pipe.run())
    async with asyncio.timeout(20):
        await (await submit)
    worker.cancel()
    assert await stored(outbox) == list(range(12_000))


class FailingOutbox(MemoryOutbox):
    async def put(
        self,
        readings: Sequence[Reading] = (),
        events: Sequence[AlarmEvent] = (),
        *,
        state: str | None = None,
    ) -> None:
        del readings, events, state
        raise RuntimeError("the outbox is broken")


async def test_frames_that_cannot_be_stored_fail_their_future(tmp_path: Path) -> None:
    pipe = pipeline(FailingOutbox(), tmp_path, busy=400)
    done = await pipe.submit_many([frame(0), frame(1)])
    worker = asyncio.create_task(pipe.run())
    async with asyncio.timeout(5):
        with pytest.raises(RuntimeError, match="broken"):
            await done
        with pytest.raises(RuntimeError, match="broken"):
            await worker
