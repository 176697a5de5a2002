"""Dingtek DC410 smart manhole sensor (level, cover motion), via ChirpStack, fPort 3.

Frame layout, the vendor-decoder bugs we do not copy, and encoder keys: `firmware_adapters.dingtek`.
Flags: byte A high nibble `full` (level alarm), low nibble unused (must be 0); byte B high nibble
`cover_moved` (cover moved or tilted), low nibble `low_battery`. Bytes 13-14 are the frame counter.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.dingtek import codec_metrics, decode_frame, encode_frame
from firmware_adapters.lorawan import chirpstack_aware

ID = "lorawan.dingtek.dc410"
FLAGS = (Metric.FULL, None, Metric.COVER_MOVED, Metric.LOW_BATTERY)


def decode(frame: RawFrame) -> DecodeResult:
    """Decode one uplink."""
    return decode_frame(frame, ID, FLAGS)


def encode(values: Mapping[str, object]) -> bytes:
    """Build an uplink payload (keys in `firmware_adapters.dingtek`)."""
    return encode_frame(values, FLAGS)


CODEC = Codec(
    ID,
    DeviceClass.MANHOLE,
    "Dingtek DC410 smart manhole sensor (level, cover motion)",
    chirpstack_aware(ID, decode),
    encode,
    vectors_beside(__file__),
    metrics=codec_metrics(FLAGS),
)
