"""DFRobot SEN0310 (URM14) RS-485 ultrasonic distance sensor (Modbus RTU).

Registers (wiki sen0310/docs/20287, DEVICE_PROTOCOLS.md §6): 0x05 distance, 0x06 onboard
temperature (s16, 0.1 °C). Default slave 0x0B, function 3. The wiki states the distance LSB is
1 cm, so the table scales it by 10 to mm; if a unit proves otherwise on the device, only the
field's scale changes. A block read of 0x05-0x06 gives both; a read of 0x05 alone gives the
distance. Frame contract and encoder keys: `firmware_adapters.modbus_codec` (`distance_mm`,
`temperature_c`, `slave`).
"""

from __future__ import annotations

from core.metrics import Metric
from firmware_adapters.modbus_codec import table_codec
from firmware_adapters.modbus_table import DataType, RegisterField, RegisterTable

CODEC_ID = "modbus.dfrobot.sen0310"
DEFAULT_SLAVE = 0x0B
TABLE = RegisterTable(
    (
        RegisterField(Metric.DISTANCE_MM, 0x05, scale=10),
        RegisterField(Metric.TEMPERATURE_C, 0x06, DataType.S16, scale=0.1),
    )
)


CODEC = table_codec(
    CODEC_ID,
    "DFRobot SEN0310 (URM14) RS-485 ultrasonic distance sensor with temperature",
    TABLE,
    DEFAULT_SLAVE,
    __file__,
)
