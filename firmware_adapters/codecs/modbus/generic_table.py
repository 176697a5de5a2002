"""Any Modbus RTU sensor whose register table comes from configuration (`modbus.generic.table`).

The device's binding (`modbus: {fields: [...], function: 3}` in the gateway's configuration) puts
its table in `meta["register_table"]` as compact JSON of the mapping that
`firmware_adapters.modbus_table.parse_register_table` accepts, e.g.
`{"fields":[{"metric":"water_level_mm","address":0,"type":"u16"}]}`; the edge agent validates the
table when it loads the configuration, and this decoder parses each distinct JSON text once
(`lru_cache`), so the decoder stays a pure function of the frame. A missing or invalid table raises
`malformed`. Frame contract: `firmware_adapters.modbus_codec`.

Declared `metrics`: every metric of the catalog. `parse_register_table` accepts any canonical metric
(a boolean one reads true for a non-zero register), so what a device yields is up to its configured
table and the codec can emit any of them (one device's are its table's `RegisterTable.metrics`).

Encoder keys: `table` (the mapping or its JSON text), canonical metric values, `slave` (default 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import orjson

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError
from firmware_adapters.modbus_codec import decode_with_table, encode_with_table
from firmware_adapters.modbus_table import RegisterTable, TableError, parse_register_table

CODEC_ID = "modbus.generic.table"
TABLE_META = "register_table"
"""The frame meta key holding the register table's JSON."""
DEFAULT_SLAVE = 1


@lru_cache(maxsize=256)
def table_from_json(text: str) -> RegisterTable:
    """Parse a table given as JSON text (cached per distinct text).

    Raises:
        TableError: the JSON or the table is invalid (every problem listed).
    """
    try:
        mapping = orjson.loads(text)
    except orjson.JSONDecodeError as err:  # deep nesting included (orjson's depth limit)
        raise TableError([f"table JSON: {err}"]) from err
    if not isinstance(mapping, dict):
        raise TableError(["table JSON: expected an object"])
    return parse_register_table(mapping)


def decode(frame: RawFrame) -> DecodeResult:
    """Decode a response ADU with the table carried in `meta["register_table"]`."""
    try:
        table = table_from_json(frame.meta.get(TABLE_META, ""))
    except TableError as err:
        raise DecodeError(
            CODEC_ID, DecodeReason.MALFORMED, f"meta table: {err}", frame.payload
        ) from err
    return decode_with_table(CODEC_ID, table, frame)


def encode(values: Mapping[str, object]) -> bytes:
    """Build a response ADU for a block read of the whole table."""
    spec = values.get("table")
    try:
        if isinstance(spec, str):
            table = table_from_json(spec)
        elif isinstance(spec, Mapping):
            table = parse_register_table(spec)
        else:
            raise EncodeError("table (mapping or JSON text) is required")
    except TableError as err:
        raise EncodeError(str(err)) from err
    return encode_with_table(table, values, DEFAULT_SLAVE)


CODEC = Codec(
    id=CODEC_ID,
    device_class=DeviceClass.GENERIC,
    description="Modbus RTU sensor with a register table defined in configuration",
    decode=decode,
    encode=encode,
    vectors=vectors_beside(__file__),
    metrics=frozenset(Metric),
)
