"""Alarm-panel event formats shared by the Contact ID and SIA DC-09 codecs.

Contact ID (SIA DC-05): `ACCT MT Q XYZ GG CCC S`, 16 digits 0-9 and B-F (no A). Digit values count
0 as 10; S makes the sum of all 16 digits a multiple of 15 (F when it already is, never 0).
Q is 1 new event / opening, 3 restore / closing, 6 condition still present.

Canonical metrics of event codes (value True for Q 1 and 6, False for Q 3): fire 110-118 ->
`fire_alarm` (111 also `smoke`); burglary 130-136, 138, 139 -> `intrusion`; 137, 144, 145 ->
`tamper`; 154 -> `water_leak`; 301 -> `power_fault`; 302, 309, 311, 384 -> `low_battery`;
143, 147, 300, 373, 380, 381, 389 -> `fault`; 602 (periodic test) -> `online` of the panel. Other
codes decode to attributes only.

Sub-devices: `<frame device>/zone-<CCC>` for zone events, `<frame device>/user-<CCC>` for
open/close (4xx) events, the frame device itself when CCC is 000.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from core.metrics import Metric, quality_of
from core.types import Reading, Scalar
from firmware_adapters.errors import DecodeError, DecodeReason

DIGITS: Final = "0123456789BCDEF"
MESSAGE_LEN: Final = 16
MESSAGE_TYPES: Final = frozenset({"18", "98"})
QUALIFIERS: Final = {"1": "new", "3": "restore", "6": "status"}

_FIRE = (Metric.FIRE_ALARM,)
EVENT_METRICS: Final[dict[str, tuple[Metric, ...]]] = {
    "110": _FIRE,
    "111": (Metric.FIRE_ALARM, Metric.SMOKE),
    **dict.fromkeys(("112", "113", "114", "115", "116", "117", "118"), _FIRE),
    **dict.fromkeys(
        ("130", "131", "132", "133", "134", "135", "136", "138", "139"), (Metric.INTRUSION,)
    ),
    **dict.fromkeys(("137", "144", "145"), (Metric.TAMPER,)),
    "154": (Metric.WATER_LEAK,),
    "301": (Metric.POWER_FAULT,),
    **dict.fromkeys(("302", "309", "311", "384"), (Metric.LOW_BATTERY,)),
    **dict.fromkeys(("143", "147", "300", "373", "380", "381", "389"), (Metric.FAULT,)),
    # A periodic test report says the panel and its line work: the panel is online.
    "602": (Metric.ONLINE,),
}
CONTACT_ID_METRICS: Final[frozenset[Metric]] = frozenset(
    {
        Metric.FIRE_ALARM,
        Metric.SMOKE,
        Metric.INTRUSION,
        Metric.TAMPER,
        Metric.WATER_LEAK,
        Metric.POWER_FAULT,
        Metric.LOW_BATTERY,
        Metric.FAULT,
        Metric.ONLINE,
    }
)
"""Every metric of `EVENT_METRICS`: what `event_readings` can emit."""
EVENT_NAMES: Final = {
    "110": "fire", "111": "smoke", "112": "combustion", "113": "water_flow", "114": "heat",
    "115": "pull_station", "116": "duct", "117": "flame", "118": "fire_near_alarm",
    "120": "panic", "121": "duress", "122": "silent_panic", "123": "audible_panic",
    "130": "burglary", "131": "perimeter", "132": "interior", "133": "24_hour", "134": "entry_exit",
    "135": "day_night", "136": "outdoor", "137": "tamper", "138": "near_alarm", "139": "intrusion_verifier",
    "140": "general_alarm", "143": "expansion_module_failure", "144": "sensor_tamper",
    "145": "expansion_module_tamper", "146": "silent_burglary", "147": "sensor_supervision_failure",
    "150": "24_hour_non_burglary", "151": "gas", "154": "water_leak", "158": "high_temperature",
    "159": "low_temperature", "300": "system_trouble", "301": "ac_loss", "302": "low_system_battery",
    "305": "system_reset", "309": "battery_test_failure", "311": "battery_missing",
    "373": "fire_trouble", "380": "sensor_trouble", "381": "rf_supervision_loss",
    "384": "rf_low_battery", "389": "sensor_self_test_failure", "400": "open_close",
    "401": "open_close_by_user", "403": "automatic_open_close", "441": "armed_stay",
    "570": "zone_bypass", "602": "periodic_test",
}  # fmt: skip


_VALUES: Final = {c: (int(c, 16) or 10) for c in DIGITS}
_DIGIT_OF: Final = {v: c for c, v in _VALUES.items()}


def digit_value(char: str) -> int:
    """Value of a Contact ID digit for the checksum (`0` counts as 10, B-F 11-15)."""
    return _VALUES[char]


def checksum_digit(body: str) -> str:
    """Return the digit S that completes the 15 digits of `body` (F when the sum is already 0 mod 15)."""
    rest = -sum(digit_value(c) for c in body) % 15
    return _DIGIT_OF[rest or 15]


@dataclass(frozen=True, slots=True)
class PanelEvent:
    """One Contact ID event: account, qualifier digit, event code, group (partition), zone or user."""

    account: str
    qualifier: str
    code: str
    group: str
    zone: str
    message_type: str = "18"

    @property
    def is_open_close(self) -> bool:
        """Open/close events (4xx) name a user in CCC, not a zone."""
        return self.code.startswith("4")

    def message(self) -> str:
        """The 16-digit message including its checksum digit."""
        body = (
            f"{self.account}{self.message_type}{self.qualifier}{self.code}{self.group}{self.zone}"
        )
        return body + checksum_digit(body)


def parse_contact_id(codec_id: str, text: str, raw: bytes) -> PanelEvent:
    """Parse and check a 16-digit Contact ID message (spaces allowed between groups).

    Raises:
        DecodeError: wrong length or digit (`A` included), bad checksum, message type other than
            18/98 (unsupported), qualifier other than 1/3/6 (range).
    """
    digits = "".join(text.split()).upper()
    if len(digits) != MESSAGE_LEN:
        raise DecodeError(codec_id, DecodeReason.LENGTH, f"{len(digits)} digits, need 16", raw)
    bad = sorted({c for c in digits if c not in DIGITS})
    if bad:
        raise DecodeError(
            codec_id, DecodeReason.MALFORMED, f"digits {bad} not allowed (0-9, B-F)", raw
        )
    if sum(digit_value(c) for c in digits) % 15:
        raise DecodeError(codec_id, DecodeReason.CHECKSUM, f"mod-15 sum of {digits} is not 0", raw)
    event = PanelEvent(
        digits[:4], digits[6], digits[7:10], digits[10:12], digits[12:15], digits[4:6]
    )
    if event.message_type not in MESSAGE_TYPES:
        raise DecodeError(
            codec_id, DecodeReason.UNSUPPORTED, f"message type {event.message_type}", raw
        )
    if event.qualifier not in QUALIFIERS:
        raise DecodeError(codec_id, DecodeReason.RANGE, f"qualifier {event.qualifier}", raw)
    return event


def event_device(device_id: str, event: PanelEvent) -> str:
    """The sub-device an event belongs to (see the module docstring)."""
    if event.zone == "000":
        return device_id
    kind = "user" if event.is_open_close else "zone"
    return f"{device_id}/{kind}-{event.zone}"


def event_readings(codec_id: str, device_id: str, event: PanelEvent, ts: datetime) -> list[Reading]:
    """Canonical readings of one event (none for codes without a canonical metric)."""
    value = event.qualifier != "3"
    device = event_device(device_id, event)
    return [
        Reading(device, metric, value, ts, quality_of(metric, value), codec_id)
        for metric in EVENT_METRICS.get(event.code, ())
    ]


def event_attributes(event: PanelEvent) -> dict[str, Scalar]:
    """Attributes of one event: account, code, name, qualifier, partition, zone or user, armed."""
    attributes: dict[str, Scalar] = {
        "account": event.account,
        "event_code": event.code,
        "event": EVENT_NAMES.get(event.code, "unknown"),
        "qualifier": QUALIFIERS.get(event.qualifier, event.qualifier),
        "partition": event.group,
    }
    if event.is_open_close:
        attributes["user"] = event.zone
        attributes["armed"] = event.qualifier == "3"
    else:
        attributes["zone"] = event.zone
    return attributes
