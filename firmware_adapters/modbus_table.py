"""Declarative Modbus register tables: which registers hold which canonical metric, and how.

A `RegisterField` names a metric, the register address, the data type (`u16`, `s16`, `u32`,
`s32`, `f32`; 32-bit types span two registers), a scale and offset (`value = raw * scale + offset`)
and the word order of 32-bit values (`big`: high word first, the Modbus convention; `little`).
Boolean metrics read true when the raw value is not zero. Registers are big-endian 16-bit words.

A configuration file defines a table as a mapping, checked by `parse_register_table`:

```yaml
function: 3            # 3 holding (default) or 4 input registers
fields:
  - {metric: distance_mm, address: 0x34}
  - {metric: temperature_c, address: 6, type: s16, scale: 0.1}
```
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from core.metrics import CATALOG, Metric, MetricKind

MAX_ADDRESS: Final = 0xFFFF
FUNCTIONS: Final = frozenset({3, 4})


class DataType(StrEnum):
    """How the raw registers of a field are read."""

    U16 = "u16"
    S16 = "s16"
    U32 = "u32"
    S32 = "s32"
    F32 = "f32"

    @property
    def words(self) -> int:
        """Registers the type spans."""
        return 1 if self in {DataType.U16, DataType.S16} else 2


class WordOrder(StrEnum):
    """Order of the two registers of a 32-bit value."""

    BIG = "big"
    LITTLE = "little"


_STRUCT: Final = {
    DataType.U16: struct.Struct(">H"),
    DataType.S16: struct.Struct(">h"),
    DataType.U32: struct.Struct(">I"),
    DataType.S32: struct.Struct(">i"),
    DataType.F32: struct.Struct(">f"),
}


@dataclass(frozen=True, slots=True)
class RegisterField:
    """One metric held in one or two registers."""

    metric: Metric
    address: int
    data_type: DataType = DataType.U16
    scale: float = 1.0
    offset: float = 0.0
    word_order: WordOrder = WordOrder.BIG

    @property
    def words(self) -> int:
        """Registers the field spans."""
        return self.data_type.words

    def value(self, words: Sequence[int]) -> float | bool:
        """The field's value from its registers (in wire order)."""
        ordered = list(words) if self.word_order is WordOrder.BIG else list(reversed(words))
        raw_bytes = b"".join(w.to_bytes(2, "big") for w in ordered)
        raw: float = _STRUCT[self.data_type].unpack(raw_bytes)[0]
        if CATALOG[self.metric].kind is MetricKind.BOOLEAN:
            return raw != 0
        return raw * self.scale + self.offset

    def words_of(self, value: float) -> list[int]:
        """The registers (in wire order) that hold `value`; inverse of `value`.

        Raises:
            ValueError: the value does not fit the data type.
        """
        if CATALOG[self.metric].kind is MetricKind.BOOLEAN:
            raw: float = int(bool(value))
        else:
            raw = (value - self.offset) / self.scale
            if self.data_type is not DataType.F32:
                raw = round(raw)
        try:
            packed = _STRUCT[self.data_type].pack(raw)
        except (struct.error, OverflowError) as err:
            raise ValueError(f"{self.metric}: {value} does not fit {self.data_type}") from err
        words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, len(packed), 2)]
        return words if self.word_order is WordOrder.BIG else list(reversed(words))


@dataclass(frozen=True, slots=True)
class RegisterTable:
    """The fields of one device model and the function that reads them."""

    fields: tuple[RegisterField, ...]
    function: int = 3

    @property
    def metrics(self) -> frozenset[Metric]:
        """The metrics of the table's fields (what a codec decoding with it declares)."""
        return frozenset(f.metric for f in self.fields)

    @property
    def first(self) -> int:
        """Lowest register address of the table."""
        return min(f.address for f in self.fields)

    @property
    def count(self) -> int:
        """Registers from `first` through the last field (one block read covers the table)."""
        return max(f.address + f.words for f in self.fields) - self.first


def decode_registers(
    table: RegisterTable, start: int, registers: Sequence[int]
) -> tuple[list[tuple[RegisterField, float | bool]], list[RegisterField]]:
    """Read every field that lies inside the block `registers` starting at address `start`.

    Returns:
        The `(field, value)` pairs found, and the fields the block does not cover.
    """
    found: list[tuple[RegisterField, float | bool]] = []
    missing: list[RegisterField] = []
    for f in table.fields:
        at = f.address - start
        if at < 0 or at + f.words > len(registers):
            missing.append(f)
        else:
            found.append((f, f.value(registers[at : at + f.words])))
    return found, missing


def encode_registers(table: RegisterTable, values: Mapping[Metric, float]) -> list[int]:
    """The register block (`table.first`, `table.count` words) holding `values` (0 elsewhere)."""
    block = [0] * table.count
    for f in table.fields:
        if f.metric in values:
            at = f.address - table.first
            block[at : at + f.words] = f.words_of(values[f.metric])
    return block


class TableError(ValueError):
    """A register table definition is invalid; `errors` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


def _number(
    entry: Mapping[str, object], key: str, default: float, where: str, errors: list[str]
) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        errors.append(f"{where}.{key}: {value!r} is not a finite number")
        return default
    return float(value)


def _field(entry: object, where: str, errors: list[str]) -> RegisterField | None:
    if not isinstance(entry, Mapping):
        errors.append(f"{where}: expected a mapping, got {type(entry).__name__}")
        return None
    before = len(errors)
    unknown = sorted(set(entry) - {"metric", "address", "type", "scale", "offset", "word_order"})
    if unknown:
        errors.append(f"{where}: unknown keys {unknown}")
    metric = next((m for m in Metric if m.value == entry.get("metric")), None)
    if metric is None:
        errors.append(f"{where}.metric: unknown metric {entry.get('metric')!r}")
    address = entry.get("address")
    if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= MAX_ADDRESS:
        errors.append(f"{where}.address: {address!r} is not a register address 0-65535")
    data_type = next((t for t in DataType if t.value == entry.get("type", "u16")), None)
    if data_type is None:
        errors.append(f"{where}.type: {entry.get('type')!r} is not one of {', '.join(DataType)}")
    order = next((o for o in WordOrder if o.value == entry.get("word_order", "big")), None)
    if order is None:
        errors.append(f"{where}.word_order: {entry.get('word_order')!r} is not big or little")
    scale = _number(entry, "scale", 1.0, where, errors)
    offset = _number(entry, "offset", 0.0, where, errors)
    if scale == 0:
        errors.append(f"{where}.scale: must not be 0")
    if len(errors) > before or metric is None or data_type is None or order is None:
        return None
    assert isinstance(address, int)  # noqa: S101 - checked above; narrows for mypy
    return RegisterField(metric, address, data_type, scale, offset, order)


def parse_register_table(mapping: Mapping[str, object]) -> RegisterTable:
    """Check a table definition (see the module docstring) and build the table.

    Raises:
        TableError: listing every problem at once (bad keys, metrics, addresses, types, overlaps).
    """
    errors: list[str] = []
    unknown = sorted(set(mapping) - {"function", "fields"})
    if unknown:
        errors.append(f"table: unknown keys {unknown}")
    function = mapping.get("function", 3)
    if isinstance(function, bool) or not isinstance(function, int) or function not in FUNCTIONS:
        errors.append(f"function: {function!r} is not 3 (holding) or 4 (input)")
    entries = mapping.get("fields")
    if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
        errors.append("fields: expected a non-empty list")
        entries = []
    numbered = [(i, f) for i, e in enumerate(entries) if (f := _field(e, f"fields[{i}]", errors))]
    fields = [f for _, f in numbered]
    used: dict[int, int] = {}
    for i, f in numbered:
        for address in range(f.address, f.address + f.words):
            if address in used:
                errors.append(
                    f"fields[{i}]: register {address} already used by fields[{used[address]}]"
                )
            used[address] = i
    if len({f.metric for f in fields}) != len(fields):
        errors.append("fields: a metric appears twice")
    if errors:
        raise TableError(errors)
    assert isinstance(function, int)  # noqa: S101 - checked above; narrows for mypy
    return RegisterTable(tuple(fields), function)
