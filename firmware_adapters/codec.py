"""The `Codec` description: one per device model, declared as data in the codec's module."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.errors import DecodeError, internal_error
from firmware_adapters.framing.base import Framer

TRANSPORTS = frozenset({"lorawan", "zigbee2mqtt", "modbus", "serial", "ip"})


class DeviceClass(StrEnum):
    """What kind of device a codec serves; matches the device kinds of the site model."""

    SMOKE = "smoke"
    MANHOLE = "manhole"
    BIN = "bin"
    PERIMETER = "perimeter"
    FIRE_PANEL = "fire_panel"
    ALARM_PANEL = "alarm_panel"
    LEVEL = "level"
    METER = "meter"
    GENERIC = "generic"


Decoder = Callable[[RawFrame], DecodeResult]
"""A pure function of a frame; raises `DecodeError`, never returns `None` for failure."""

Encoder = Callable[[Mapping[str, object]], bytes]
"""Builds wire bytes from named values (canonical metric names where one applies); for simulators."""


@dataclass(frozen=True, slots=True)
class Codec:
    """A decoder with what the rest of the system needs to know about it.

    `id` is `<transport>.<vendor>.<model>` and mirrors the module path
    (`lorawan.milesight.em310_udl` lives in `codecs/lorawan/milesight_em310_udl.py`). `vectors` is the
    `.vectors.yaml` beside the module. `metrics` is every canonical metric `decode` may put in
    `DecodeResult.readings`, so a configuration check can tell which metrics a device's codec
    produces; it is computed from the codec's field table where it has one, and the registry refuses
    a codec that declares none (the empty default is for ad-hoc codecs in tests). `framer` makes a
    fresh framer for stream transports.

    `decode` is guarded when the codec is built (`guard_decoder`): whatever the function given
    raises, `Codec.decode` raises only `DecodeError`, with reason `codec_error` for anything the
    codec did not foresee (the original exception is its `__cause__`, with the traceback).
    """

    id: str
    device_class: DeviceClass
    description: str
    decode: Decoder
    encode: Encoder
    vectors: Path
    metrics: frozenset[Metric] = frozenset()
    framer: Callable[[], Framer] | None = None

    def __post_init__(self) -> None:
        """Guard `decode` (see the class docstring)."""
        object.__setattr__(self, "decode", guard_decoder(self.id, self.decode))

    @property
    def transport(self) -> str:
        """The transport part of the id."""
        return self.id.split(".", 1)[0]


def vectors_beside(module_file: str) -> Path:
    """Return the vectors file that sits beside a codec module (`x.py` -> `x.vectors.yaml`)."""
    path = Path(module_file)
    return path.with_name(path.stem + ".vectors.yaml")


def guard_decoder(codec_id: str, decode: Decoder) -> Decoder:
    """Wrap `decode` so that it raises only `DecodeError` (reason `codec_error` for anything else).

    A `DecodeError` passes through unchanged; any other `Exception` becomes one, chained to the
    original. Wrapping a guarded decoder again returns it as it is. The wrapper costs one call.
    """
    if getattr(decode, "_guarded", False):
        return decode

    def guarded(frame: RawFrame) -> DecodeResult:
        try:
            return decode(frame)
        except DecodeError:
            raise
        except Exception as err:
            raise internal_error(codec_id, err, frame.payload) from err

    guarded.__doc__ = decode.__doc__
    guarded._guarded = True  # type: ignore[attr-defined]  # noqa: SLF001 - marks the wrapper
    return guarded
