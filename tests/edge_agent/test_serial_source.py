import asyncio
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path

import pytest
from source_recorder import Recorder

from core.clock import SystemClock
from edge_agent.selfstats import PipelineStats
from edge_agent.sources.base import Backoff, SourceContext
from edge_agent.sources.replies import gbt26875_reply
from edge_agent.sources.serial import SerialSource
from firmware_adapters.framing.gbt26875 import Gbt26875Framer
from firmware_adapters.gbt26875.frame import Command, build_frame, parse_frame
from simulators.serial_pty import PtyPort

pytestmark = pytest.mark.integration

CODEC = "serial.gbt26875.3"
APP = bytes.fromhex("010101020402040009020715")


async def read_reply(port: PtyPort, limit: float = 3.0) -> bytes:
    data = b""
    async with asyncio.timeout(limit):
        while not data.endswith(b"##"):
            data += port.read_available()
            await asyncio.sleep(0.01)
    return data


Rig = tuple[PtyPort, SerialSource, Recorder, PipelineStats]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    port = PtyPort(tmp_path / "serial" / "by-id" / "usb-panel-if00").plug()
    recorder = Recorder()
    stats = PipelineStats()
    source = SerialSource(
        name="panel",
        port=str(port.link),
        codec_id=CODEC,
        framer=Gbt26875Framer(),
        ctx=SourceContext(recorder.submit, recorder.fault, stats, SystemClock()),
        device_id="panel-1",
        reply=gbt26875_reply,
        backoff=Backoff(first=0.05, maximum=0.2),
    )
    task = asyncio.create_task(source.run(), name="serial-panel")
    await asyncio.wait_for(source.opened.wait(), 5)
    yield port, source, recorder, stats
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    port.close()


async def test_frames_are_split_from_any_chunking_and_confirmed(rig: Rig) -> None:
    port, source, recorder, _ = rig
    frames = [build_frame(serial=n, command=Command.SEND, app=APP) for n in range(3)]
    stream = b"".join(frames)
    for i in range(0, len(stream), 7):
        port.write(stream[i : i + 7])
        await asyncio.sleep(0.001)
    await recorder.until(lambda: len(recorder.frames) == 3)
    assert [f.payload for f in recorder.frames] == frames
    assert all(f.device_id == "panel-1" and f.codec_id == CODEC for f in recorder.frames)
    assert recorder.frames[0].received_at.tzinfo is UTC
    replies = b""
    async with asyncio.timeout(3):
        while replies.count(b"##") < 3:
            replies += port.read_available()
            await asyncio.sleep(0.01)
    confirms = [parse_frame(r + b"##") for r in replies.split(b"##") if r]
    assert [(c.serial, c.command) for c in confirms] == [(n, Command.CONFIRM) for n in range(3)]
    assert source.replies_sent == 3


async def test_garbage_is_consumed_and_counted_without_losing_good_frames(rig: Rig) -> None:
    port, _, recorder, stats = rig
    good = build_frame(serial=9, command=Command.SEND, app=APP)
    bad_sum = bytearray(good)
    bad_sum[-3] ^= 0xFF
    port.write(b"\x00\xffnoise" + bytes(bad_sum) + good)
    await recorder.until(lambda: len(recorder.frames) == 1)
    assert recorder.frames[0].payload == good
    assert stats.decode_errors[CODEC, "checksum"] == 1
    assert stats.decode_errors[CODEC, "malformed"] >= 1
    assert parse_frame(await read_reply(port)).serial == 9


async def test_unplug_reports_a_fault_and_replug_resumes(rig: Rig) -> None:
    port, source, recorder, _ = rig
    port.write(build_frame(serial=1, command=Command.SEND, app=APP))
    await recorder.until(lambda: len(recorder.frames) == 1)
    port.unplug()
    await recorder.until(lambda: ("panel-1", True) in recorder.faults)
    await asyncio.sleep(0.3)  # several reopen attempts against a missing link
    assert recorder.faults == [("panel-1", True)]
    port.plug()
    await recorder.until(lambda: ("panel-1", False) in recorder.faults)
    await asyncio.wait_for(source.opened.wait(), 5)
    port.write(build_frame(serial=2, command=Command.SEND, app=APP))
    await recorder.until(lambda: len(recorder.frames) == 2)
    assert parse_frame(recorder.frames[1].payload).serial == 2
    assert source.open_count == 2
    assert recorder.faults == [("panel-1", True), ("panel-1", False)]


def test_confirm_frames_get_no_reply() -> None:
    confirm = build_frame(serial=4, command=Command.CONFIRM)
    assert gbt26875_reply(confirm) is None
    assert gbt26875_reply(b"@@garbage##") is None
    send = build_frame(serial=4, command=Command.SEND, app=APP, source=7, destination=9)
    reply = gbt26875_reply(send)
    assert reply is not None
    parsed = parse_frame(reply)
    assert (parsed.serial, parsed.command, parsed.source, parsed.destination) == (
        4,
        Command.CONFIRM,
        9,
        7,
    )
