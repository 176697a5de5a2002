"""What GB/T 26875.3 information objects mean: status bits, operation bits, analog types (tables 3-6).

Canonical mapping of status words (types 1, 2 and 21):
`fire_alarm` = fire bit; `fault` = fault bit (plus bus, channel and line faults);
`power_fault` = main, backup or component power fault; `self_test` = bit0 clear (bit0 set means normal
operation per the standard; some public re-implementations invert it, see DEVICE_PROTOCOLS.md §7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from core.metrics import Metric

_COMMON_BITS: Final = {
    0: "normal",
    1: "fire_alarm",
    2: "fault",
    3: "disabled",
    4: "supervisory",
    5: "started",
    6: "feedback",
    7: "delayed",
}
SYSTEM_BITS: Final = {
    **_COMMON_BITS,
    8: "main_power_fault",
    9: "backup_power_fault",
    10: "bus_fault",
    11: "manual_mode",
    12: "config_changed",
    13: "reset",
}
"""Type 1 system status word."""
COMPONENT_BITS: Final = {**_COMMON_BITS, 8: "power_fault"}
"""Type 2 component status word."""
UITD_BITS: Final = {
    0: "normal",
    1: "fire_alarm",
    2: "fault",
    3: "main_power_fault",
    4: "backup_power_fault",
    5: "channel_fault",
    6: "line_fault",
}
"""Type 21 status byte of the user information transmission device itself."""
OPERATION_BITS: Final = {
    0: "reset",
    1: "silence",
    2: "manual_alarm",
    3: "alarm_cleared",
    4: "self_check",
    5: "acknowledge",
    6: "test",
}
"""Type 4 operation flags."""
UITD_OPERATION_BITS: Final = {**OPERATION_BITS, 5: "roll_call_answer"}
"""Type 24 operation flags of the transmission device."""

STATUS_BITS: Final = {1: SYSTEM_BITS, 2: COMPONENT_BITS, 21: UITD_BITS}
_FAULT_FLAGS: Final = frozenset({"fault", "bus_fault", "channel_fault", "line_fault"})
_POWER_FLAGS: Final = frozenset({"main_power_fault", "backup_power_fault", "power_fault"})


def flag_names(word: int, bits: dict[int, str]) -> list[str]:
    """Name the set bits of `word` (bit0 is reported as `test` when clear, not as `normal`)."""
    names = [name for bit, name in bits.items() if bit and word >> bit & 1]
    if not word & 1:
        names.insert(0, "test")
    return names


def status_readings(word: int, bits: dict[int, str]) -> dict[Metric, bool]:
    """Map a status word to canonical boolean metrics."""
    flags = set(flag_names(word, bits))
    return {
        Metric.FIRE_ALARM: "fire_alarm" in flags,
        Metric.FAULT: bool(flags & _FAULT_FLAGS),
        Metric.POWER_FAULT: bool(flags & _POWER_FLAGS),
        Metric.SELF_TEST: "test" in flags,
    }


def status_word(values: dict[Metric, bool], bits: dict[int, str]) -> int:
    """Build a status word from canonical booleans (inverse of `status_readings`)."""
    by_name = {name: bit for bit, name in bits.items()}
    word = 0 if values.get(Metric.SELF_TEST, False) else 1
    if values.get(Metric.FIRE_ALARM, False):
        word |= 1 << by_name["fire_alarm"]
    if values.get(Metric.FAULT, False):
        word |= 1 << by_name["fault"]
    if values.get(Metric.POWER_FAULT, False):
        word |= 1 << by_name.get("power_fault", by_name.get("main_power_fault", 0))
    return word


@dataclass(frozen=True, slots=True)
class AnalogType:
    """One row of table 6: a name with its unit, the resolution, and the canonical metric if any."""

    name: str
    scale: float
    metric: Metric | None = None


ANALOG_TYPES: Final = {
    1: AnalogType("event_count", 1),
    2: AnalogType("height_m", 0.01),
    3: AnalogType("temperature_c", 0.1, Metric.TEMPERATURE_C),
    4: AnalogType("pressure_mpa", 0.1),
    5: AnalogType("pressure_kpa", 0.1),
    6: AnalogType("gas_lel_pct", 0.1, Metric.GAS_LEL_PCT),
    7: AnalogType("time_s", 1),
    8: AnalogType("voltage_v", 0.1),
    9: AnalogType("current_a", 0.1),
    10: AnalogType("flow_lps", 0.1),
    11: AnalogType("air_volume_m3_per_min", 0.1),
    12: AnalogType("wind_speed_mps", 1),
}
"""Table 6 analog value types; reserved and user types are reported raw as `analog_<n>`."""
ANALOG_BY_METRIC: Final = {a.metric: t for t, a in ANALOG_TYPES.items() if a.metric is not None}

METRICS: Final[frozenset[Metric]] = frozenset(
    {
        Metric.FIRE_ALARM,
        Metric.FAULT,
        Metric.POWER_FAULT,
        Metric.SELF_TEST,
        Metric.TEMPERATURE_C,
        Metric.GAS_LEL_PCT,
    }
)
"""What a frame can yield: the metrics of `status_readings` and of the analog types with one."""
