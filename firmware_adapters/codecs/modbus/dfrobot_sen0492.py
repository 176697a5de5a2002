"""DFRobot SEN0492 laser ranging sensor (RS-485, Modbus RTU).

Register 0x34 holds the distance in mm (u16); default slave 0x50, function 3 (wiki
sen0492/docs/21034). Frame contract and encoder keys: `firmware_adapters.modbus_codec`
(`distance_mm`, `slave`).
"""

from __future__ import annotations

from core.metrics import Metric
from firmware_adapters.modbus_codec import table_codec
from firmware_adapters.modbus_table import RegisterField, RegisterTable

CODEC_ID = "modbus.dfrobot.sen0492"
DEFAULT_SLAVE = 0x50
TABLE = RegisterTable((RegisterField(Metric.DISTANCE_MM, 0x34),))


CODEC = table_codec(
    CODEC_ID,
    "DFRobot SEN0492 RS-485 laser distance sensor (register 0x34, mm)",
    TABLE,
    DEFAULT_SLAVE,
    __file__,
)
