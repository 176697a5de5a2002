"""Milesight GS524N LoRaWAN smoke detector: a fixed 6-byte frame (not TLV), fPort 85.

| byte | content |
|---|---|
| 0 | high nibble firmware `version`, low nibble `protocol` version |
| 1 | high nibble sensor type (1 smoke), low nibble message type (the event) |
| 2 | battery % |
| 3 | smoke concentration % |
| 4 | temperature, int8, °C |
| 5 | checksum: the sum of all six bytes is 0 mod 256 |

The official decoder does not verify the checksum; we do, per the protocol (`checksum` error).

Readings: `battery_pct`, `smoke_pct`, `temperature_c`, plus by event: alarm -> `smoke` true; normal
-> `smoke` false; low battery -> `low_battery` true; failover -> `fault` true; removed / installed ->
`tamper` true / false; testing alarm -> `self_test` true and `low_battery` as the event says; silent
-> no flag (the alarm was hushed at the device). Attributes: `event`, `version`, `protocol`,
`sensor_type`. An undefined message type or sensor type keeps the measured values and adds an
`undefined_value` issue.

Encoder keys: `event` (a name below), `battery_pct`, `smoke_pct`, `temperature_c`; optional
`version` and `protocol` (default 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError, IssueKind
from firmware_adapters.fields import Decoded
from firmware_adapters.lorawan import (
    RADIO_METRICS,
    chirpstack_aware,
    finish,
    fport_of,
    require_length,
)

ID = "lorawan.milesight.gs524n"
SMOKE_SENSOR = 1
EVENTS: Final[Mapping[int, tuple[str, Mapping[Metric, bool]]]] = {
    1: ("alarm", {Metric.SMOKE: True}),
    2: ("silent", {}),
    4: ("low battery", {Metric.LOW_BATTERY: True}),
    5: ("failover", {Metric.FAULT: True}),
    7: ("normal", {Metric.SMOKE: False}),
    10: ("removed", {Metric.TAMPER: True}),
    11: ("installed", {Metric.TAMPER: False}),
    14: ("testing alarm with normal battery", {Metric.SELF_TEST: True, Metric.LOW_BATTERY: False}),
    15: ("testing alarm with low battery", {Metric.SELF_TEST: True, Metric.LOW_BATTERY: True}),
}
EVENT_CODES: Final = {name: code for code, (name, _) in EVENTS.items()}
METRICS: Final[frozenset[Metric]] = frozenset(
    {
        Metric.BATTERY_PCT,
        Metric.SMOKE_PCT,
        Metric.TEMPERATURE_C,
        Metric.SMOKE,
        Metric.LOW_BATTERY,
        Metric.FAULT,
        Metric.TAMPER,
        Metric.SELF_TEST,
    }
)
"""What `decode` emits: the three measurements and the flags of `EVENTS` (radio metrics on top)."""


def decode(frame: RawFrame) -> DecodeResult:
    """Decode one 6-byte frame."""
    fport_of(frame, ID, (85,))
    require_length(frame, ID, (6,))
    buf = frame.payload
    if sum(buf) & 0xFF:
        raise DecodeError(ID, DecodeReason.CHECKSUM, f"byte sum 0x{sum(buf) & 0xFF:02x} != 0", buf)
    out = Decoded()
    out.put("version", buf[0] >> 4)
    out.put("protocol", buf[0] & 0x0F)
    sensor, message = buf[1] >> 4, buf[1] & 0x0F
    out.put("sensor_type", "smoke sensor" if sensor == SMOKE_SENSOR else "unknown")
    if sensor != SMOKE_SENSOR:
        out.issue(IssueKind.UNDEFINED_VALUE, f"sensor type: undefined value {sensor}")
    out.put(Metric.BATTERY_PCT, buf[2])
    out.put(Metric.SMOKE_PCT, buf[3])
    out.put(Metric.TEMPERATURE_C, buf[4] - 256 if buf[4] > 127 else buf[4])  # noqa: PLR2004
    event = EVENTS.get(message)
    if event is None:
        out.issue(IssueKind.UNDEFINED_VALUE, f"message type: undefined value {message}")
        out.put("event", "unknown")
    else:
        out.put("event", event[0])
        for metric, value in event[1].items():
            out.put(metric, value)
    return finish(frame, ID, out)


def _byte(
    values: Mapping[str, object], key: str, low: int, high: int, default: int | None = None
) -> int:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise EncodeError(f"{key} must be a number in {low}..{high}, got {value!r}")
    return round(value)


def encode(values: Mapping[str, object]) -> bytes:
    """Build a frame (with its checksum) from the values named in the module docstring."""
    event = values.get("event")
    if event not in EVENT_CODES:
        raise EncodeError(f"event must be one of {sorted(EVENT_CODES)}, got {event!r}")
    body = bytes(
        [
            _byte(values, "version", 0, 15, 2) << 4 | _byte(values, "protocol", 0, 15, 2),
            SMOKE_SENSOR << 4 | EVENT_CODES[str(event)],
            _byte(values, Metric.BATTERY_PCT.value, 0, 255),
            _byte(values, Metric.SMOKE_PCT.value, 0, 255),
            _byte(values, Metric.TEMPERATURE_C.value, -128, 127) & 0xFF,
        ]
    )
    return body + bytes([-sum(body) & 0xFF])


CODEC = Codec(
    ID,
    DeviceClass.SMOKE,
    "Milesight GS524N LoRaWAN smoke detector",
    chirpstack_aware(ID, decode),
    encode,
    vectors_beside(__file__),
    metrics=METRICS | RADIO_METRICS,
)
