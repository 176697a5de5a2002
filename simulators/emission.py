"""What flows through a simulation: samples (values before encoding) and emissions (bytes on a wire).

Time is simulated: `t` is seconds since the scenario start, a float, so weeks can be generated offline
without sleeping. `device_t` is what the device's own clock says (clock skew moves only that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

Value = float | int | bool | str
"""A value a model produces or an encoder accepts."""


@dataclass(frozen=True, slots=True)
class Sample:
    """The values one device is about to report at simulated time `t`."""

    t: float
    device_id: str
    values: Mapping[str, Value]
    device_t: float | None = None

    @property
    def clock(self) -> float:
        """The device's idea of the time (its own clock, which may be skewed)."""
        return self.t if self.device_t is None else self.device_t

    def with_values(self, **changes: Value) -> Sample:
        """Return a copy with some values replaced."""
        return replace(self, values={**self.values, **changes})


@dataclass(frozen=True, slots=True)
class Emission:
    """One write of bytes onto a device's transport at simulated time `t`.

    `tags` name the faults that touched it (`drop` never appears: dropped emissions are gone);
    `topic` is set for MQTT transports.
    """

    t: float
    device_id: str
    payload: bytes
    tags: tuple[str, ...] = ()
    topic: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)

    def tagged(self, tag: str, **changes: object) -> Emission:
        """Return a copy with `tag` added and other fields replaced."""
        return replace(self, tags=(*self.tags, tag), **changes)  # type: ignore[arg-type]
