"""Byte faults against the real stream framers: what survives is exactly what the fault promises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_adapters.codecs.serial.gbt26875_3 import CODEC as GBT
from firmware_adapters.framing.base import StreamBuffer
from firmware_adapters.framing.gbt26875 import Gbt26875Framer
from simulators.emission import Emission
from simulators.faults import BitFlip, Fault, Garbage, SplitWrites, apply_byte_faults

FRAMES = [
    GBT.encode({"serial": i, "fire_alarm": i % 3 == 0, "component_address": i}) for i in range(20)
]
EMISSIONS = [Emission(float(i), "panel", f) for i, f in enumerate(FRAMES)]


def reassemble(emissions: list[Emission]) -> tuple[list[bytes], StreamBuffer]:
    buffer = StreamBuffer(Gbt26875Framer())
    frames = [frame for e in emissions for frame in buffer.feed(e.payload)]
    return frames, buffer


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), chunk=st.integers(1, 16))
def test_split_writes_and_garbage_lose_no_frame(seed: int, chunk: int) -> None:
    faults: list[Fault] = [Garbage(p=0.5, max_len=40), SplitWrites(max_chunk=chunk)]
    faulty = apply_byte_faults(EMISSIONS, faults, seed)
    frames, buffer = reassemble(faulty)
    assert frames == FRAMES
    if any("garbage" in e.tags for e in faulty):
        assert buffer.framer.errors.total() >= 1  # the noise was seen and counted, not passed on


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_bit_flips_are_caught_by_the_checksum_and_counted(seed: int) -> None:
    faulty = apply_byte_faults(EMISSIONS, [BitFlip(p=0.3, bits=1)], seed)
    flipped = sum(1 for e in faulty if "bit_flip" in e.tags)
    frames, buffer = reassemble(faulty)
    assert set(frames) <= set(FRAMES)  # a corrupted frame never passes as a good one
    assert len(frames) >= len(FRAMES) - flipped
    if flipped:
        assert buffer.framer.errors.total() >= 1
