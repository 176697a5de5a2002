"""Dragino LDDS75 ultrasonic distance sensor (bin level), via ChirpStack, fPort 2.

The 8-byte layout, readings and encoder keys are in `firmware_adapters.dragino`.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.dragino import DISTANCE_FPORT, decode_distance, encode_distance
from firmware_adapters.lorawan import chirpstack_aware, fport_of

ID = "lorawan.dragino.ldds75"


def decode(frame: RawFrame) -> DecodeResult:
    """Decode one uplink."""
    fport_of(frame, ID, (DISTANCE_FPORT,))
    return decode_distance(frame, ID)


def encode(values: Mapping[str, object]) -> bytes:
    """Build an uplink payload (see `firmware_adapters.dragino` for the keys)."""
    return encode_distance(values)


CODEC = Codec(
    ID,
    DeviceClass.BIN,
    "Dragino LDDS75 LoRaWAN ultrasonic distance sensor",
    chirpstack_aware(ID, decode),
    encode,
    vectors_beside(__file__),
)
