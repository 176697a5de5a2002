"""SIA DC-03 event codes as carried in SIA DC-09 `SIA-DCS` messages (`Nri1/FA015`).

The data starts with `N` (new event) or `O` (old event), then `/`-separated tokens: lower-case
modifiers (`ri` area, `id` user, `ti` time, `pi` peripheral) and events (two upper-case letters and
an optional zone or user number). Codes with a canonical metric set it True (alarm, trouble) or
False (restore); others become attributes only. Zone events belong to `<device>/zone-<n>`,
opening/closing (`OP`, `CL`) to `<device>/user-<n>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from core.metrics import Metric

SIA_CODES: Final[dict[str, tuple[str, Metric | None, bool]]] = {
    "FA": ("fire_alarm", Metric.FIRE_ALARM, True),
    "FH": ("fire_alarm_restore", Metric.FIRE_ALARM, False),
    "FR": ("fire_restoral", Metric.FIRE_ALARM, False),
    "KA": ("heat_alarm", Metric.FIRE_ALARM, True),
    "KH": ("heat_alarm_restore", Metric.FIRE_ALARM, False),
    "FT": ("fire_trouble", Metric.FAULT, True),
    "FJ": ("fire_trouble_restore", Metric.FAULT, False),
    "BA": ("burglary_alarm", Metric.INTRUSION, True),
    "BH": ("burglary_alarm_restore", Metric.INTRUSION, False),
    "BR": ("burglary_restoral", Metric.INTRUSION, False),
    "TA": ("tamper_alarm", Metric.TAMPER, True),
    "TR": ("tamper_restoral", Metric.TAMPER, False),
    "AT": ("ac_trouble", Metric.POWER_FAULT, True),
    "AR": ("ac_restoral", Metric.POWER_FAULT, False),
    "YT": ("system_battery_trouble", Metric.LOW_BATTERY, True),
    "YR": ("system_battery_restoral", Metric.LOW_BATTERY, False),
    "XT": ("transmitter_battery_trouble", Metric.LOW_BATTERY, True),
    "XR": ("transmitter_battery_restoral", Metric.LOW_BATTERY, False),
    "WA": ("water_alarm", Metric.WATER_LEAK, True),
    "WH": ("water_alarm_restore", Metric.WATER_LEAK, False),
    "GA": ("gas_alarm", None, True),
    "PA": ("panic_alarm", None, True),
    "OP": ("opening", None, False),
    "CL": ("closing", None, True),
    "RP": ("automatic_test", None, True),
}
"""code -> (name, canonical metric or None, value of the metric / armed state for OP and CL)."""
USER_CODES: Final = frozenset({"OP", "CL"})
SIA_METRICS: Final[frozenset[Metric]] = frozenset(
    {
        Metric.FIRE_ALARM,
        Metric.FAULT,
        Metric.INTRUSION,
        Metric.TAMPER,
        Metric.POWER_FAULT,
        Metric.LOW_BATTERY,
        Metric.WATER_LEAK,
    }
)
"""Every metric of `SIA_CODES`: what a `SIA-DCS` message can emit."""

_EVENT = re.compile(r"(?P<code>[A-Z]{2})(?P<number>[0-9A-Fa-f]{0,4})")
_MODIFIER = re.compile(r"(?P<name>[a-z]{2})(?P<value>[0-9A-Za-z]*)")


@dataclass(frozen=True, slots=True)
class SiaEvent:
    """One event token with the modifiers in force."""

    code: str
    number: str
    modifiers: dict[str, str]

    @property
    def name(self) -> str:
        """The event's name, or `unknown`."""
        return SIA_CODES.get(self.code, ("unknown", None, True))[0]


def parse_sia_data(data: str) -> list[SiaEvent] | None:
    """Split SIA-DCS data (after `#acct|`) into events; `None` when it does not follow the grammar."""
    if data[:1] not in {"N", "O"}:
        return None
    modifiers: dict[str, str] = {}
    events: list[SiaEvent] = []
    for token in data[1:].split("/"):
        if (event := _EVENT.fullmatch(token)) is not None:
            events.append(SiaEvent(event["code"], event["number"], dict(modifiers)))
        elif (modifier := _MODIFIER.fullmatch(token)) is not None:
            modifiers[modifier["name"]] = modifier["value"]
        else:
            return None
    return events or None
