import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from core.clock import SystemClock
from core.types import RawFrame
from edge_agent.selfstats import PipelineStats
from edge_agent.sources.base import SourceContext
from edge_agent.sources.dc09 import Dc09Receiver, account_of, sia_dc09_answer
from firmware_adapters.framing.sia_dc09 import build_message

pytestmark = pytest.mark.integration


def message(seq: int, account: str = "1234", data: str = "#1234|1130 01 015") -> bytes:
    stamp = datetime.now(UTC).strftime("%H:%M:%S,%m-%d-%Y")
    return build_message(f'"ADM-CID"{seq:04d}R0L0#{account}[{data}]_{stamp}')


class Recorder:
    def __init__(self) -> None:
        self.frames: list[RawFrame] = []

    async def submit(self, frame: RawFrame) -> None:
        self.frames.append(frame)

    async def fault(self, device_id: str, faulty: bool) -> None:
        raise AssertionError((device_id, faulty))


Rig = tuple[Dc09Receiver, Recorder, PipelineStats]


def receiver_of(recorder: Recorder, stats: PipelineStats) -> Dc09Receiver:
    lookup: Callable[[str], str | None] = {"1234": "panel-lobby"}.get
    return Dc09Receiver(
        name="dc09",
        host="127.0.0.1",
        port=0,
        codec_id="ip.sia.dc09",
        answer=sia_dc09_answer,
        lookup=lookup,
        ctx=SourceContext(recorder.submit, recorder.fault, stats, SystemClock()),
    )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    recorder = Recorder()
    stats = PipelineStats()
    receiver = receiver_of(recorder, stats)
    task = asyncio.create_task(receiver.run())
    await asyncio.wait_for(receiver.listening.wait(), 5)
    yield receiver, recorder, stats
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def exchange(port: int, *messages: bytes) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = []
    for msg in messages:
        writer.write(msg)
        await writer.drain()
        replies.append(await asyncio.wait_for(reader.readuntil(b"\r"), 5))
    writer.close()
    await writer.wait_closed()
    return replies


async def test_good_messages_are_queued_then_acknowledged(rig: Rig) -> None:
    receiver, recorder, _ = rig
    replies = await exchange(receiver.bound_port, message(1), message(2, account="9999"))
    assert [b'"ACK"0001' in r for r in replies] == [True, False]
    assert b'"ACK"0002' in replies[1]
    assert [f.device_id for f in recorder.frames] == ["panel-lobby", "dc09/9999"]
    assert recorder.frames[0].meta["account"] == "1234"
    assert recorder.frames[0].payload.startswith(message(1).strip(b"\n\r")[:20])
    assert receiver.acked == 2


async def test_damaged_message_gets_nak_and_is_counted_not_queued(rig: Rig) -> None:
    receiver, recorder, stats = rig
    good = message(3)
    damaged = good[:1] + (b"0" if good[1:2] != b"0" else b"1") + good[2:]  # CRC digit
    replies = await exchange(receiver.bound_port, damaged, good)
    assert b'"NAK"' in replies[0]
    assert b'"ACK"0003' in replies[1]
    assert len(recorder.frames) == 1
    assert stats.decode_errors["ip.sia.dc09", "checksum"] == 1
    assert receiver.refused == 1


async def test_intact_but_unknown_message_gets_duh_and_goes_to_the_pipeline(rig: Rig) -> None:
    receiver, recorder, _ = rig
    body = '"XYZ-ABC"0004R0L0#1234[]'
    replies = await exchange(receiver.bound_port, build_message(body))
    assert b'"DUH"' in replies[0]
    assert len(recorder.frames) == 1  # the pipeline dead-letters it


def test_account_is_read_from_the_message() -> None:
    assert account_of(b'"ADM-CID"0001R0L0#0fae[#0FAE|1130 01 015]') == "0FAE"
    assert account_of(b'"NULL"0001R0L0[]') is None


async def test_stopping_with_a_panel_connected_ends_its_connection_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = receiver_of(Recorder(), PipelineStats())
    running = asyncio.create_task(receiver.run())
    await asyncio.wait_for(receiver.listening.wait(), 5)
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    reader, writer = await asyncio.open_connection("127.0.0.1", receiver.bound_port)
    writer.write(message(1))
    await writer.drain()
    await asyncio.wait_for(reader.readuntil(b"\r"), 5)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the panel sees the line closed
    writer.close()
    await asyncio.sleep(0.05)
    assert errors == []
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
