"""DFRobot SEN0310 (URM14) RS-485 ultrasonic distance sensor (Modbus RTU).

Registers (wiki sen0310/docs/20287, DEVICE_PROTOCOLS.md §6): 0x05 distance, 0x06 onboard
temperature (s16, 0.1 °C). Default slave 0x0B, function 3. The wiki states the distance LSB is
1 cm, so the table scales it by 10 to mm; if a unit proves otherwise on the device, only the
field's scale changes. A block read of 0x05-0x06 gives both; a read of 0x05 alone gives the
distance. Frame contract and encoder keys: `firmware_adapters.modbus_codec` (`distance_mm`,
`temperature_c`, `slave`).
"""

from __future__ import annotations

from collections.abc import Mapping

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.modbus_codec import decode_with_table, encode_with_table
from firmware_adapters.modbus_table import DataType, RegisterField, RegisterTable

CODEC_ID = "modbus.dfrobot.sen0310"
DEFAULT_SLAVE = 0x0B
TABLE = RegisterTable(
    (
        RegisterField(Metric.DISTANCE_MM, 0x05, scale=10),
        RegisterField(Metric.TEMPERATURE_C, 0x06, DataType.S16, scale=0.1),
    )
)


def decode(frame: RawFrame) -> DecodeResult:
    """Decode a read-registers response covering 0x05 and/or 0x06."""
    return decode_with_table(CODEC_ID, TABLE, frame)


def encode(values: Mapping[str, object]) -> bytes:
    """Build the sensor's response ADU for a block read of 0x05-0x06."""
    return encode_with_table(TABLE, values, DEFAULT_SLAVE)


CODEC = Codec(
    id=CODEC_ID,
    device_class=DeviceClass.LEVEL,
    description="DFRobot SEN0310 (URM14) RS-485 ultrasonic distance sensor with temperature",
    decode=decode,
    encode=encode,
    vectors=vectors_beside(__file__),
)
