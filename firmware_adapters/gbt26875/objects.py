"""Information objects of the application data unit (GB/T 26875.3-2011 §8.2, tables 3-6).

The unit is `type (1) + count (1) + count x (body [+ 6-byte time tag])`; the body layout depends on
the type. Bodies are little-endian; descriptions are GB18030, NUL padded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.gbt26875.frame import CODEC_ID

TIME_TAG_LEN: Final = 6
DESCRIPTION_LEN: Final = 31


@dataclass(frozen=True, slots=True)
class Layout:
    """How one information type is laid out: fixed fields, optional description, time tag."""

    fields: struct.Struct
    """Fixed-size fields, in order, before any description."""
    names: tuple[str, ...]
    description: int | None = None
    """Fixed description width, -1 for a length-prefixed description, `None` for none."""
    timed: bool = True
    max_count: int = 255


def _layout(
    fmt: str,
    names: str,
    description: int | None = None,
    *,
    timed: bool = True,
    max_count: int = 255,
) -> Layout:
    return Layout(struct.Struct("<" + fmt), tuple(names.split()), description, timed, max_count)


LAYOUTS: Final[dict[int, Layout]] = {
    1: _layout("BBH", "system_type system_address status", max_count=102),
    2: _layout(
        "BBBIH",
        "system_type system_address component_type component_address status",
        DESCRIPTION_LEN,
        max_count=22,
    ),
    3: _layout(
        "BBBIBh",
        "system_type system_address component_type component_address analog_type analog_raw",
        max_count=63,
    ),
    4: _layout("BBBB", "system_type system_address operation operator", max_count=102),
    5: _layout("BBBB", "system_type system_address major minor", timed=False, max_count=1),
    6: _layout("BB", "system_type system_address", -1, timed=False, max_count=3),
    7: _layout(
        "BBBI",
        "system_type system_address component_type component_address",
        DESCRIPTION_LEN,
        timed=False,
        max_count=26,
    ),
    8: _layout("BB6s", "system_type system_address clock", timed=False, max_count=1),
    21: _layout("B", "status", max_count=1),
    24: _layout("BB", "operation operator", max_count=127),
    25: _layout("BB", "major minor", timed=False, max_count=1),
    26: _layout("", "", -1, timed=False, max_count=1),
    28: _layout("6s", "clock", timed=False, max_count=1),
}
"""Upload information types (table 3) this library decodes, by type flag."""

DOWNLINK_TYPES: Final = frozenset(range(61, 92))
"""Read, initialise, clock-sync and roll-call types a centre sends (61-91)."""


@dataclass(frozen=True, slots=True)
class InfoObject:
    """One decoded information object; `fields` holds the layout's named integer/bytes fields."""

    type: int
    fields: dict[str, int | bytes]
    description: str | None = None
    time_tag: bytes | None = None

    def int_field(self, name: str, default: int = 0) -> int:
        """Return an integer field, or `default` when the type has no such field."""
        value = self.fields.get(name, default)
        return value if isinstance(value, int) else default


def decode_description(raw: bytes) -> str:
    """Decode a GB18030 description up to its first NUL; undecodable bytes become U+FFFD."""
    return raw.split(b"\x00", 1)[0].decode("gb18030", errors="replace")


def encode_description(text: str, width: int | None) -> bytes:
    """Encode a description as GB18030, NUL padded to `width` (or length-prefixed when `None`)."""
    raw = text.encode("gb18030")
    if width is None:
        if len(raw) > 255:  # noqa: PLR2004 - one length byte
            raise ValueError("description longer than 255 bytes")
        return bytes((len(raw),)) + raw
    if len(raw) > width:
        raise ValueError(f"description longer than {width} bytes in GB18030")
    return raw.ljust(width, b"\x00")


def _fail(reason: DecodeReason, detail: str, unit: bytes) -> DecodeError:
    return DecodeError(CODEC_ID, reason, detail, unit)


def decode_unit(unit: bytes) -> tuple[int, list[InfoObject]]:
    """Decode an application data unit into its type flag and objects.

    Raises:
        DecodeError: unknown or downlink type, count over the limit, truncated or trailing bytes.
    """
    if len(unit) < 2:  # noqa: PLR2004 - type and count bytes
        raise _fail(DecodeReason.TRUNCATED, "application unit shorter than type and count", unit)
    kind, count = unit[0], unit[1]
    layout = LAYOUTS.get(kind)
    if layout is None:
        reason = DecodeReason.UNSUPPORTED if kind in DOWNLINK_TYPES else DecodeReason.UNKNOWN_TYPE
        raise _fail(reason, f"information type {kind}", unit)
    if count > layout.max_count:
        raise _fail(
            DecodeReason.LENGTH, f"{count} objects of type {kind}, at most {layout.max_count}", unit
        )
    pos = 2
    objects: list[InfoObject] = []
    for _ in range(count):
        obj, pos = _decode_object(kind, layout, unit, pos)
        objects.append(obj)
    if pos != len(unit):
        raise _fail(DecodeReason.LENGTH, f"{len(unit) - pos} bytes after {count} objects", unit)
    return kind, objects


def _decode_object(kind: int, layout: Layout, unit: bytes, pos: int) -> tuple[InfoObject, int]:
    end = pos + layout.fields.size
    if end > len(unit):
        raise _fail(DecodeReason.TRUNCATED, f"type {kind} object cut at byte {len(unit)}", unit)
    fields = dict(zip(layout.names, layout.fields.unpack_from(unit, pos), strict=True))
    pos = end
    description = None
    if layout.description is not None:
        width = layout.description
        if width < 0:
            if pos >= len(unit):
                raise _fail(DecodeReason.TRUNCATED, "description length missing", unit)
            width = unit[pos]
            pos += 1
        if pos + width > len(unit):
            raise _fail(DecodeReason.TRUNCATED, "description cut short", unit)
        description = decode_description(unit[pos : pos + width])
        pos += width
    time_tag = None
    if layout.timed:
        if pos + TIME_TAG_LEN > len(unit):
            raise _fail(DecodeReason.TRUNCATED, "time tag cut short", unit)
        time_tag = bytes(unit[pos : pos + TIME_TAG_LEN])
        pos += TIME_TAG_LEN
    return InfoObject(kind, fields, description, time_tag), pos


def encode_unit(kind: int, objects: list[InfoObject]) -> bytes:
    """Encode objects of one type into an application data unit.

    Raises:
        ValueError: unknown type, too many objects, or a field that does not fit.
    """
    layout = LAYOUTS.get(kind)
    if layout is None:
        raise ValueError(f"information type {kind} is not an upload type")
    if len(objects) > layout.max_count:
        raise ValueError(f"at most {layout.max_count} objects of type {kind}")
    parts = [bytes((kind, len(objects)))]
    for obj in objects:
        try:
            parts.append(layout.fields.pack(*(obj.fields[name] for name in layout.names)))
        except (struct.error, KeyError) as err:
            raise ValueError(f"type {kind} object fields {obj.fields!r}: {err}") from err
        if layout.description is not None:
            width = None if layout.description < 0 else layout.description
            parts.append(encode_description(obj.description or "", width))
        if layout.timed:
            parts.append(obj.time_tag or bytes(TIME_TAG_LEN))
    return b"".join(parts)
