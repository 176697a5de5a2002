"""Dingtek DF702 waste-bin sensor (level, fire and tilt alarms), via ChirpStack, fPort 3.

Frame layout, the vendor-decoder bugs we do not copy, and encoder keys: `firmware_adapters.dingtek`.
Flags: byte A high nibble `full`, low nibble `fire_alarm`; byte B high nibble `tilt_alarm`, low
nibble `low_battery`.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.dingtek import codec_metrics, decode_frame, encode_frame
from firmware_adapters.lorawan import chirpstack_aware

ID = "lorawan.dingtek.df702"
FLAGS = (Metric.FULL, Metric.FIRE_ALARM, Metric.TILT_ALARM, Metric.LOW_BATTERY)


def decode(frame: RawFrame) -> DecodeResult:
    """Decode one uplink."""
    return decode_frame(frame, ID, FLAGS)


def encode(values: Mapping[str, object]) -> bytes:
    """Build an uplink payload (keys in `firmware_adapters.dingtek`)."""
    return encode_frame(values, FLAGS)


CODEC = Codec(
    ID,
    DeviceClass.BIN,
    "Dingtek DF702 waste-bin sensor with fire and tilt alarms",
    chirpstack_aware(ID, decode),
    encode,
    vectors_beside(__file__),
    metrics=codec_metrics(FLAGS),
)
