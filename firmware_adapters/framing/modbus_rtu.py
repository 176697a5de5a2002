"""Modbus RTU read-register responses: checking and building ADUs with pymodbus.

An ADU is `slave, function, byte count, data, CRC` (CRC low byte first on the wire). pymodbus does
the CRC (`FramerRTU.check_CRC` / `compute_CRC`), the PDU decoding and the frame building; this
module only turns its outcomes into `DecodeError` reasons. Streams are framed by the pymodbus
client of the poller (RTU is request/response), so there is no stream framer here. pymodbus is
imported on first use, so a gateway without Modbus devices does not load it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from firmware_adapters.errors import DecodeError, DecodeReason

MIN_ADU: Final = 5
"""Slave, function, byte count and CRC: the shortest register response."""
MAX_REGISTER: Final = 0xFFFF
_FUNCTIONS: Final = frozenset({3, 4})
"""Read holding registers, read input registers."""


@dataclass(frozen=True, slots=True)
class _Pymodbus:
    """The pymodbus pieces this module uses (pymodbus ships no type information)."""

    framer_rtu: Any
    modbus_exception: type[Exception]
    decoder: Any
    framer: Any
    responses: dict[int, Any]


@functools.cache
def _pymodbus() -> _Pymodbus:
    from pymodbus.exceptions import ModbusException  # noqa: PLC0415 - loaded on first use
    from pymodbus.framer import FramerRTU  # noqa: PLC0415
    from pymodbus.pdu import DecodePDU  # noqa: PLC0415
    from pymodbus.pdu.register_message import (  # noqa: PLC0415
        ReadHoldingRegistersResponse,
        ReadInputRegistersResponse,
    )

    return _Pymodbus(
        framer_rtu=FramerRTU,
        modbus_exception=ModbusException,
        decoder=DecodePDU(is_server=False),
        framer=FramerRTU(DecodePDU(is_server=False)),
        responses={3: ReadHoldingRegistersResponse, 4: ReadInputRegistersResponse},
    )


@dataclass(frozen=True, slots=True)
class RegisterResponse:
    """A checked read-registers response."""

    slave: int
    function: int
    registers: tuple[int, ...]


def parse_response(codec_id: str, adu: bytes) -> RegisterResponse:
    """Check one RTU response ADU and return its registers.

    Raises:
        DecodeError: too short (`truncated`), bad CRC (`checksum`), exception response
            (`unsupported`, with the exception code), other function (`unknown_type`), byte count
            that disagrees with the data (`length`).
    """
    if len(adu) < MIN_ADU:
        raise DecodeError(codec_id, DecodeReason.TRUNCATED, f"{len(adu)} bytes", adu)
    pm = _pymodbus()
    if not pm.framer_rtu.check_CRC(adu[:-2], int.from_bytes(adu[-2:], "big")):
        computed = pm.framer_rtu.compute_CRC(adu[:-2]).to_bytes(2, "big").hex()
        raise DecodeError(
            codec_id, DecodeReason.CHECKSUM, f"CRC {adu[-2:].hex()}, computed {computed}", adu
        )
    slave, function = adu[0], adu[1]
    if function & 0x80:
        detail = f"exception response, function {function & 0x7F}, code {adu[2]}"
        raise DecodeError(codec_id, DecodeReason.UNSUPPORTED, detail, adu)
    if function not in _FUNCTIONS:
        raise DecodeError(codec_id, DecodeReason.UNKNOWN_TYPE, f"function {function}", adu)
    count = adu[2]
    if count % 2 or count != len(adu) - MIN_ADU:
        detail = f"byte count {count} for {len(adu) - MIN_ADU} data bytes"
        raise DecodeError(codec_id, DecodeReason.LENGTH, detail, adu)
    try:
        pdu = pm.decoder.decode(adu[1:-2])
    except pm.modbus_exception as err:
        raise DecodeError(codec_id, DecodeReason.MALFORMED, str(err), adu) from err
    if pdu is None:
        raise DecodeError(
            codec_id, DecodeReason.MALFORMED, "pymodbus could not decode the PDU", adu
        )
    return RegisterResponse(slave, function, tuple(int(r) for r in pdu.registers))


def build_response(slave: int, registers: Sequence[int], function: int = 3) -> bytes:
    """Build a read-registers response ADU (with CRC) as a slave would send it.

    Raises:
        ValueError: bad slave, function, register count or value.
    """
    if function not in _FUNCTIONS or not 0 <= slave <= 247 or not 0 < len(registers) <= 125:  # noqa: PLR2004
        raise ValueError(
            f"cannot build function {function} response of {len(registers)} registers for slave {slave}"
        )
    if any(not 0 <= r <= MAX_REGISTER for r in registers):
        raise ValueError("register values must be 0-65535")
    pm = _pymodbus()
    pdu = pm.responses[function](dev_id=slave, registers=list(registers))
    return bytes(pm.framer.buildFrame(pdu))
