"""DFRobot SEN0492 laser ranging sensor (RS-485, Modbus RTU).

Register 0x34 holds the distance in mm (u16); default slave 0x50, function 3 (wiki
sen0492/docs/21034). Frame contract and encoder keys: `firmware_adapters.modbus_codec`
(`distance_mm`, `slave`).
"""

from __future__ import annotations

from collections.abc import Mapping

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.modbus_codec import decode_with_table, encode_with_table
from firmware_adapters.modbus_table import RegisterField, RegisterTable

CODEC_ID = "modbus.dfrobot.sen0492"
DEFAULT_SLAVE = 0x50
TABLE = RegisterTable((RegisterField(Metric.DISTANCE_MM, 0x34),))


def decode(frame: RawFrame) -> DecodeResult:
    """Decode a read-registers response of the distance register."""
    return decode_with_table(CODEC_ID, TABLE, frame)


def encode(values: Mapping[str, object]) -> bytes:
    """Build the sensor's response ADU for a read of register 0x34."""
    return encode_with_table(TABLE, values, DEFAULT_SLAVE)


CODEC = Codec(
    id=CODEC_ID,
    device_class=DeviceClass.LEVEL,
    description="DFRobot SEN0492 RS-485 laser distance sensor (register 0x34, mm)",
    decode=decode,
    encode=encode,
    vectors=vectors_beside(__file__),
)
