"""Stream framers for GB/T 26875.3, Contact ID and SIA DC-09: any split of a stream gives the same frames."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import pytest

from firmware_adapters.codecs.ip import sia_dc09
from firmware_adapters.codecs.serial import ademco_contact_id, gbt26875_3
from firmware_adapters.framing.base import Framer, StreamBuffer
from firmware_adapters.framing.contact_id import ContactIdFramer
from firmware_adapters.framing.gbt26875 import Gbt26875Framer
from firmware_adapters.framing.sia_dc09 import SiaDc09Framer

AT = datetime(2025, 6, 1, 12, 30, 15, tzinfo=UTC)


def gbt_frames() -> list[bytes]:
    return [
        gbt26875_3.CODEC.encode(
            {
                "serial": n,
                "system_type": 1,
                "system_address": n,
                "component_address": 100 + n,
                "fire_alarm": n % 2 == 0,
                "description": f"区{n}",
                "at": AT,
            }
        )
        for n in range(5)
    ] + [gbt26875_3.CODEC.encode({"info_type": 21, "serial": 9, "fault": True, "at": AT})]


def cid_lines() -> list[bytes]:
    return [
        ademco_contact_id.CODEC.encode({"event_code": code, "zone": zone, "partition": 1})
        for code, zone in (("131", 15), ("110", 1), ("301", 0), ("384", 12))
    ]


def dc09_messages() -> list[bytes]:
    return [
        sia_dc09.CODEC.encode({"sequence": 1, "event_code": "131", "zone": 7, "at": AT}),
        sia_dc09.CODEC.encode({"id": "SIA-DCS", "sequence": 2, "sia_code": "FA", "zone": 15}),
        sia_dc09.CODEC.encode({"id": "NULL", "sequence": 3}),
    ]


FORMATS: dict[
    str, tuple[Callable[[], Framer], Callable[[], list[bytes]], bytes, Callable[[bytes], bytes]]
] = {
    # name: (framer, wire frames, forbidden garbage bytes, frame as the framer yields it)
    "gbt26875": (Gbt26875Framer, gbt_frames, b"@", lambda f: f),
    "contact_id": (ContactIdFramer, cid_lines, b"", lambda f: f.strip()),
    "sia_dc09": (SiaDc09Framer, dc09_messages, b"\n", lambda f: f),
}


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test data, not secrets


def run(framer: Framer, chunks: Iterable[bytes]) -> list[bytes]:
    stream = StreamBuffer(framer)
    return [frame for chunk in chunks for frame in stream.feed(chunk)]


def random_splits(data: bytes, rng: random.Random) -> list[bytes]:
    chunks, pos = [], 0
    while pos < len(data):
        size = rng.randint(1, 40)
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def garbage(rng: random.Random, forbidden: bytes, size: int) -> bytes:
    return bytes(b for b in rng.randbytes(size * 2) if b not in forbidden)[:size]


@pytest.mark.parametrize("name", FORMATS)
def test_whole_stream_gives_every_frame(name: str) -> None:
    make, frames, _, shown = FORMATS[name]
    framer = make()
    assert run(framer, [b"".join(frames())]) == [shown(f) for f in frames()]
    assert sum(framer.errors.values()) == 0


@pytest.mark.parametrize("name", FORMATS)
def test_byte_by_byte_gives_the_same_frames(name: str) -> None:
    make, frames, _, shown = FORMATS[name]
    data = b"".join(frames())
    assert run(make(), [data[i : i + 1] for i in range(len(data))]) == [shown(f) for f in frames()]


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("seed", range(20))
def test_random_splits_give_the_same_frames(name: str, seed: int) -> None:
    make, frames, _, shown = FORMATS[name]
    chunks = random_splits(b"".join(frames()), seeded(seed))
    assert run(make(), chunks) == [shown(f) for f in frames()]


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("seed", range(20))
def test_garbage_between_frames_is_skipped_and_counted(name: str, seed: int) -> None:
    make, frames, forbidden, shown = FORMATS[name]
    rng = seeded(seed)
    wire = frames()
    data = b"".join(garbage(rng, forbidden, rng.randint(1, 30)) + f for f in wire)
    framer = make()
    assert run(framer, random_splits(data, rng)) == [shown(f) for f in wire]
    assert sum(framer.errors.values()) >= 1


def corrupt_checksum(name: str, frame: bytes) -> bytes:
    if name == "gbt26875":
        return frame[:-3] + bytes([(frame[-3] + 1) % 256]) + frame[-2:]
    if name == "contact_id":
        last = frame.rstrip()[-1:]
        return frame.rstrip()[:-1] + (b"1" if last != b"1" else b"2") + b"\r\n"
    crc = frame[1:5]
    return frame[:1] + (b"0000" if crc != b"0000" else b"0001") + frame[5:]


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_bad_checksum_frame_is_dropped_and_counted_once(name: str, split: str) -> None:
    make, frames, _, shown = FORMATS[name]
    good = frames()
    wire = [good[0], corrupt_checksum(name, good[1]), *good[2:]]
    data = b"".join(wire)
    chunks = [data] if split == "whole" else [data[i : i + 1] for i in range(len(data))]
    framer = make()
    assert run(framer, chunks) == [shown(f) for f in [good[0], *good[2:]]]
    assert framer.errors["checksum"] == 1


def test_gbt_false_start_inside_garbage_does_not_eat_the_next_frame() -> None:
    frame = gbt_frames()[0]
    framer = Gbt26875Framer()
    assert run(framer, [b"@@@" + frame + b"@" + frame]) == [frame, frame]
    assert framer.errors["malformed"] >= 1


def test_gbt_length_over_1024_is_counted() -> None:
    frame = bytearray(gbt_frames()[0])
    frame[24:26] = (2000).to_bytes(2, "little")
    framer = Gbt26875Framer()
    assert run(framer, [bytes(frame) + gbt_frames()[1]]) == [gbt_frames()[1]]
    assert framer.errors["length"] == 1


def test_gbt_partial_frame_waits_for_more() -> None:
    frame = gbt_frames()[0]
    framer = Gbt26875Framer()
    assert framer.split(frame[:-1]) == (0, None)
    assert framer.split(frame) == (len(frame), frame)


def test_contact_id_garbage_on_the_same_line_before_a_message() -> None:
    line = cid_lines()[0]
    framer = ContactIdFramer()
    assert run(framer, [b"xx99" + line]) == [line.strip()]
    assert framer.errors["malformed"] == 1


def test_contact_id_overlong_line_is_discarded() -> None:
    framer = ContactIdFramer()
    assert run(framer, [b"7" * 300, b"\r\n", cid_lines()[0]]) == [cid_lines()[0].strip()]
    assert framer.errors["length"] >= 1


def test_dc09_wrong_length_field_resynchronises() -> None:
    good = dc09_messages()
    bad = good[0][:5] + b"0FFF" + good[0][9:]
    framer = SiaDc09Framer()
    assert run(framer, [bad + good[1] + good[2]]) == [good[1], good[2]]
    assert framer.errors["length"] == 1


def _with_length(frame: bytes, app_len: int) -> bytes:
    """The frame with its application-unit length field (bytes 24-25) overwritten, as a bit flip would."""
    return frame[:24] + app_len.to_bytes(2, "little") + frame[26:]


def test_a_damaged_gbt_length_does_not_hold_back_the_frames_after_it() -> None:
    first, *rest = gbt_frames()
    damaged = _with_length(first, 1000)  # waits for 1,030 bytes that will never be this frame
    buffer = StreamBuffer(Gbt26875Framer())
    assert list(buffer.feed(damaged + rest[0])) == [rest[0]]
    assert list(buffer.feed(b"".join(rest[1:]))) == rest[1:]
    assert buffer.framer.errors["length"] == 1


def test_a_damaged_gbt_length_ending_on_a_later_frame_loses_only_itself() -> None:
    first, second, third, *_ = gbt_frames()
    # The length now spans the second frame exactly: `@@ ... ##` with a bad sum around a good frame.
    spanning = _with_length(first, len(first) + len(second) - 30)
    buffer = StreamBuffer(Gbt26875Framer())
    assert list(buffer.feed(spanning + second + third)) == [second, third]
    assert buffer.framer.errors["checksum"] == 1
