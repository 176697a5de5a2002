"""Decoding and encoding of Modbus RTU responses through a register table (shared by the codecs).

Frame contract: `payload` is the response ADU (slave, function, byte count, data, CRC);
`meta["address"]` is the first register requested (decimal or `0x` hex; the table's first
register when absent). Readings belong to the frame's device; fields the response does not cover
are listed in a warning. A field whose value is NaN or infinite (an `f32` register) makes no
reading and a `non_finite` `DecodeIssue`; the other fields still decode. Attributes: `slave`,
`function`.

Encoder keys: canonical metric names of the table's fields, `slave` (int, the codec's default
slave when absent), `function` (3 or 4, the table's when absent).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from core.metrics import Metric, quality_of
from core.types import DecodeResult, RawFrame, Reading
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.errors import (
    DecodeError,
    DecodeIssue,
    DecodeReason,
    EncodeError,
    IssueKind,
)
from firmware_adapters.framing.modbus_rtu import build_response, parse_response
from firmware_adapters.modbus_table import RegisterTable, decode_registers, encode_registers


def decode_with_table(codec_id: str, table: RegisterTable, frame: RawFrame) -> DecodeResult:
    """Decode a response ADU with `table` (see the module docstring)."""
    response = parse_response(codec_id, frame.payload)
    try:
        start = int(frame.meta.get("address", str(table.first)), 0)
    except ValueError as err:
        raise DecodeError(
            codec_id, DecodeReason.MALFORMED, f"meta address: {err}", frame.payload
        ) from err
    found, missing = decode_registers(table, start, response.registers)
    if not found:
        detail = f"{len(response.registers)} registers from {start} hold no field of the table"
        raise DecodeError(codec_id, DecodeReason.RANGE, detail, frame.payload)
    readings = tuple(
        Reading(
            frame.device_id,
            f.metric,
            value,
            frame.received_at,
            quality_of(f.metric, value),
            codec_id,
        )
        for f, value in found
        if value.__class__ is not float or math.isfinite(value)
    )
    warnings = [f"register {f.address} ({f.metric}) not in the response" for f in missing]
    if len(readings) != len(found):  # an f32 register holding NaN or infinity: drop that value
        warnings.extend(
            DecodeIssue(
                IssueKind.NON_FINITE, f"register {f.address} ({f.metric}): {value!r} dropped"
            )
            for f, value in found
            if value.__class__ is float and not math.isfinite(value)
        )
    return DecodeResult(
        readings, tuple(warnings), {"slave": response.slave, "function": response.function}
    )


def encode_with_table(
    table: RegisterTable, values: Mapping[str, object], default_slave: int
) -> bytes:
    """Build the response ADU a slave would send for a block read of the whole table.

    Raises:
        EncodeError: a value is not a number or does not fit its register.
    """
    numbers: dict[Metric, float] = {}
    for f in table.fields:
        value = values.get(f.metric.value)
        if value is None:
            continue
        if not isinstance(value, int | float):
            raise EncodeError(f"{f.metric}: {value!r} is not a number")
        numbers[f.metric] = value
    slave, function = values.get("slave", default_slave), values.get("function", table.function)
    if not isinstance(slave, int) or not isinstance(function, int):
        raise EncodeError("slave and function must be integers")
    try:
        return build_response(slave, encode_registers(table, numbers), function)
    except ValueError as err:
        raise EncodeError(str(err)) from err


def table_codec(
    codec_id: str, description: str, table: RegisterTable, default_slave: int, module_file: str
) -> Codec:
    """The `Codec` of a Modbus sensor fully described by a fixed register table (its `metrics`)."""

    def decode(frame: RawFrame) -> DecodeResult:
        return decode_with_table(codec_id, table, frame)

    def encode(values: Mapping[str, object]) -> bytes:
        return encode_with_table(table, values, default_slave)

    return Codec(
        codec_id,
        DeviceClass.LEVEL,
        description,
        decode,
        encode,
        vectors_beside(module_file),
        metrics=table.metrics,
    )
