"""Reusable, unit-carrying field builders for binary payload tables.

A field knows its size, how to read itself into canonical readings or attributes, and how to write
itself back from named values, so one declaration drives both the decoder and the encoder:

    TABLE = {(0x01, 0x75): u8(Metric.BATTERY_PCT),
             (0x03, 0x67): s16le(Metric.TEMPERATURE_C, scale=0.1)}

Keys are canonical metrics (the value becomes a `Reading`) or plain strings (the value becomes a
`DecodeResult` attribute). Encoders take the same names: a metric's `.value` or the attribute name.

Keep what you can: a NaN or infinite number never leaves `Decoded` (the one value is dropped with a
`non_finite` `DecodeIssue`), and an enum byte outside its map is reported as `unknown` with an
`undefined_value` issue while the rest of the frame decodes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from core.metrics import Metric, Quality, quality_of
from core.types import DecodeResult, RawFrame, Reading, Scalar
from firmware_adapters.errors import DecodeIssue, DecodeReason, EncodeError, IssueKind

Key = Metric | str
"""Where a decoded value goes: a canonical metric (a reading) or an attribute name."""


class FieldError(ValueError):
    """A field's bytes hold a value the format does not allow; codecs turn it into `DecodeError`."""

    def __init__(self, reason: DecodeReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


@dataclass(slots=True)
class Decoded:
    """What the fields of one payload produced, before it becomes `Reading`s."""

    values: list[tuple[Metric, float | bool]] = field(default_factory=list)
    attributes: dict[str, Scalar] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    suspect: set[Metric] = field(default_factory=set)
    timed: list[tuple[Metric, float | bool, datetime]] = field(default_factory=list)
    """Values the device stamped itself (history records); they keep their own time."""

    def put(self, key: Key, value: Scalar) -> None:
        """Record a value under a metric (as a reading) or an attribute name.

        A NaN or infinite attribute is dropped with an issue (metric values are checked in `result`,
        which also sees values appended to `values` directly).
        """
        if isinstance(key, Metric):
            if isinstance(value, str):
                msg = f"metric {key} got a string {value!r}"
                raise TypeError(msg)
            self.values.append((key, value))
        elif isinstance(value, float) and not math.isfinite(value):
            self.drop_non_finite(key, value)
        else:
            self.attributes[key] = value

    def issue(self, kind: IssueKind, detail: str) -> None:
        """Record a `DecodeIssue` about one value (the rest of the frame still decodes)."""
        self.warnings.append(DecodeIssue(kind, detail))

    def drop_non_finite(self, key: Key, value: object) -> None:
        """Record that the NaN or infinite `value` of `key` was dropped."""
        self.issue(IssueKind.NON_FINITE, f"{key_name(key)}: {value!r} dropped")

    def result(self, frame: RawFrame, codec_id: str, extra: Iterable[Reading] = ()) -> DecodeResult:
        """Turn the values into readings of the frame's device, stamped with its receive time.

        Quality comes from the metric catalog, or is `SUSPECT` where the device flagged the value.
        A NaN or infinite value makes no reading: it is dropped with a `non_finite` issue.
        """
        device = frame.device_id
        ts = frame.received_at
        suspect = self.suspect
        isfinite = math.isfinite
        readings = [
            Reading(
                device,
                metric,
                value,
                ts,
                Quality.SUSPECT if suspect and metric in suspect else quality_of(metric, value),
                codec_id,
            )
            for metric, value in self.values
            if value.__class__ is not float or isfinite(value)
        ]
        if len(readings) != len(self.values):
            for metric, value in self.values:
                if value.__class__ is float and not isfinite(value):
                    self.drop_non_finite(metric, value)
        if self.timed:
            for metric, value, at in self.timed:
                if value.__class__ is float and not isfinite(value):
                    self.drop_non_finite(metric, value)
                    continue
                readings.append(
                    Reading(device, metric, value, at, quality_of(metric, value), codec_id)
                )
        readings.extend(extra)
        return DecodeResult(tuple(readings), tuple(self.warnings), dict(self.attributes))


def key_name(key: Key) -> str:
    """The name an encoder looks up for a key."""
    return key.value if isinstance(key, Metric) else key


class Field:
    """One fixed-size field: reads `size` bytes at an offset, writes them from named values.

    `keys` are the names the field writes from; `metrics` are the canonical metrics `read` may emit
    (the keys that are metrics, plus any a field derives, such as `Bits.any_flag`).
    """

    size: int
    keys: tuple[Key, ...]

    @property
    def metrics(self) -> frozenset[Metric]:
        """The canonical metrics `read` may emit: by default, the keys that are metrics."""
        return frozenset(k for k in self.keys if isinstance(k, Metric))

    def read(self, buf: bytes, at: int, out: Decoded) -> None:
        """Decode `buf[at:at+size]` into `out`; raise `FieldError` for values the format forbids."""
        raise NotImplementedError

    def write(self, values: Mapping[str, object]) -> bytes:
        """Encode this field from `values`; raise `EncodeError` when a value cannot be represented."""
        raise NotImplementedError


def table_metrics(fields: Iterable[Field]) -> frozenset[Metric]:
    """The canonical metrics a table of fields may emit (a codec declares this as its `metrics`)."""
    return frozenset(m for f in fields for m in f.metrics)


def _number(values: Mapping[str, object], key: Key) -> float:
    name = key_name(key)
    if name not in values:
        raise EncodeError(f"missing value {name!r}")
    value = values[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodeError(f"{name} must be a number, got {value!r}")
    return float(value)


class Number(Field):
    """An integer of a `struct` format, multiplied by `scale` (e.g. `<h`, scale 0.1 for tenths)."""

    def __init__(self, key: Key, fmt: str, scale: float = 1.0) -> None:
        self.key = key
        self.keys = (key,)
        self._struct = struct.Struct(fmt)
        self.size = self._struct.size
        self.scale = scale

    def read(self, buf: bytes, at: int, out: Decoded) -> None:
        """Read the integer and scale it."""
        raw: int = self._struct.unpack_from(buf, at)[0]
        value = raw * self.scale if self.scale != 1.0 else raw
        out.put(self.key, round(value, 6) if isinstance(value, float) else value)

    def write(self, values: Mapping[str, object]) -> bytes:
        """Unscale, round and pack the value."""
        raw = round(_number(values, self.key) / self.scale)
        try:
            return self._struct.pack(raw)
        except struct.error as err:
            raise EncodeError(
                f"{key_name(self.key)}={raw} does not fit {self._struct.format}"
            ) from err


def u8(key: Key, scale: float = 1.0) -> Number:
    """Unsigned byte."""
    return Number(key, "<B", scale)


def s8(key: Key, scale: float = 1.0) -> Number:
    """Signed byte."""
    return Number(key, "<b", scale)


def u16le(key: Key, scale: float = 1.0) -> Number:
    """Unsigned 16-bit little-endian integer."""
    return Number(key, "<H", scale)


def s16le(key: Key, scale: float = 1.0) -> Number:
    """Signed 16-bit little-endian integer."""
    return Number(key, "<h", scale)


def u16be(key: Key, scale: float = 1.0) -> Number:
    """Unsigned 16-bit big-endian integer."""
    return Number(key, ">H", scale)


def s16be(key: Key, scale: float = 1.0) -> Number:
    """Signed 16-bit big-endian integer."""
    return Number(key, ">h", scale)


def u32le(key: Key, scale: float = 1.0) -> Number:
    """Unsigned 32-bit little-endian integer."""
    return Number(key, "<I", scale)


UNKNOWN = "unknown"
"""The state name of an enum byte outside its documented map."""


class Choice(Field):
    """One byte naming a state: `{0: "normal", 1: "tilt"}`.

    The state goes to an attribute; when `flag` names a metric, the metric is true for the states in
    `true_states`. A byte outside the map keeps the rest of the frame: the attribute is `unknown`
    (as the vendor decoders print it), the flag is not emitted, and an `undefined_value` issue
    names the byte.
    """

    size = 1

    def __init__(
        self,
        attribute: str,
        states: Mapping[int, str],
        flag: Metric | None = None,
        true_states: Iterable[str] = (),
    ) -> None:
        self.attribute = attribute
        self.states = dict(states)
        self.codes = {name: code for code, name in self.states.items()}
        self.flag = flag
        self.true_states = frozenset(true_states)
        self.keys = (attribute,) if flag is None else (flag, attribute)

    def read(self, buf: bytes, at: int, out: Decoded) -> None:
        """Map the byte to its state name (and flag)."""
        code = buf[at]
        state = self.states.get(code)
        if state is None:
            out.put(self.attribute, UNKNOWN)
            out.issue(IssueKind.UNDEFINED_VALUE, f"{self.attribute}: undefined value {code}")
            return
        out.put(self.attribute, state)
        if self.flag is not None:
            out.put(self.flag, state in self.true_states)

    def write(self, values: Mapping[str, object]) -> bytes:
        """Write the state given by name, or derived from the flag."""
        state = values.get(self.attribute)
        if state is None and self.flag is not None and self.flag.value in values:
            wanted = bool(values[self.flag.value])
            state = next(n for n in self.codes if (n in self.true_states) is wanted)
        if not isinstance(state, str) or state not in self.codes:
            raise EncodeError(
                f"{self.attribute} must be one of {sorted(self.codes)}, got {state!r}"
            )
        return bytes([self.codes[state]])


class Bits(Field):
    """One byte of independent flags: `{0: "threshold_x", 1: "threshold_y"}` (bit number -> key).

    Bits not listed are ignored with a warning (a newer firmware may define them). `any_flag` names a
    metric that is true when any listed bit is set (e.g. one tilt alarm for three per-axis thresholds).
    """

    size = 1

    def __init__(self, bits: Mapping[int, Key], any_flag: Metric | None = None) -> None:
        self.bits = dict(bits)
        self.mask = sum(1 << b for b in self.bits)
        self.any_flag = any_flag
        self.keys = tuple(self.bits.values())  # any_flag is derived, never written

    @property
    def metrics(self) -> frozenset[Metric]:
        """The bits that are metrics, and `any_flag`."""
        own = super().metrics
        return own if self.any_flag is None else own | {self.any_flag}

    def read(self, buf: bytes, at: int, out: Decoded) -> None:
        """Read each listed bit."""
        byte = buf[at]
        if byte & ~self.mask:
            out.warnings.append(f"undocumented bits set in 0x{byte:02x}; ignored")
        for bit, key in self.bits.items():
            out.put(key, bool(byte >> bit & 1))
        if self.any_flag is not None:
            out.put(self.any_flag, bool(byte & self.mask))

    def write(self, values: Mapping[str, object]) -> bytes:
        """Set the bits whose keys are true."""
        byte = 0
        for bit, key in self.bits.items():
            if values.get(key_name(key)):
                byte |= 1 << bit
        return bytes([byte])


class Text(Field):
    """Fixed-size bytes rendered by a function (serial numbers, versions); attribute only."""

    def __init__(
        self,
        attribute: str,
        size: int,
        render: Callable[[bytes], str],
        parse: Callable[[str], bytes] | None = None,
    ) -> None:
        self.attribute = attribute
        self.keys = (attribute,)
        self.size = size
        self.render = render
        self.parse = parse

    def read(self, buf: bytes, at: int, out: Decoded) -> None:
        """Render the bytes to a string attribute."""
        out.put(self.attribute, self.render(buf[at : at + self.size]))

    def write(self, values: Mapping[str, object]) -> bytes:
        """Parse the attribute back to bytes (only for fields that define `parse`)."""
        text = values.get(self.attribute)
        if self.parse is None or not isinstance(text, str):
            raise EncodeError(f"{self.attribute} cannot be encoded from {text!r}")
        raw = self.parse(text)
        if len(raw) != self.size:
            raise EncodeError(f"{self.attribute} must be {self.size} bytes")
        return raw


def hex_text(attribute: str, size: int) -> Text:
    """Bytes shown as lowercase hex (serial numbers)."""
    return Text(attribute, size, bytes.hex, bytes.fromhex)


class Group(Field):
    """Several fields read one after the other as one channel value."""

    def __init__(self, *parts: Field) -> None:
        self.parts = parts
        self.size = sum(p.size for p in parts)
        self.keys = tuple(k for p in parts for k in p.keys)

    @property
    def metrics(self) -> frozenset[Metric]:
        """Every part's metrics (derived ones included)."""
        return table_metrics(self.parts)

    def read(self, buf: bytes, at: int, out: Decoded) -> None:
        """Read every part in order."""
        for part in self.parts:
            part.read(buf, at, out)
            at += part.size

    def write(self, values: Mapping[str, object]) -> bytes:
        """Write every part in order."""
        return b"".join(p.write(values) for p in self.parts)


class Skip(Field):
    """Bytes the format defines but that carry nothing for us (kept for the length only)."""

    keys: tuple[Key, ...] = ()

    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, buf: bytes, at: int, out: Decoded) -> None:
        """Read nothing."""

    def write(self, values: Mapping[str, object]) -> bytes:  # noqa: ARG002 - nothing to look up
        """Write zeros."""
        return bytes(self.size)
