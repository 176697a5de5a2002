"""Physical behaviour models: pure, seeded, driven by simulated time.

A model is asked for a sample at increasing simulated times `t` (seconds since the scenario start),
with the local hour of day and the incidents currently active on its device (name -> start time). It
returns canonical metric values (`core.metrics.Metric` names). Things a model makes happen by itself
(a bin filling past full, a night-time intruder) are appended to `spontaneous` as `(t, incident)` so
the ground truth can list them. Randomness comes only from the generator a model is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from simulators.emission import Value

Active = Mapping[str, float]
"""Incidents active on a device: incident name -> simulated start time."""


class Model(Protocol):
    """What every physical model offers."""

    spontaneous: list[tuple[float, str]]

    def sample(self, t: float, hour: float, active: Active) -> dict[str, Value]:
        """Return the device's values at simulated time `t` (local hour of day `hour`)."""
        ...


@dataclass
class Battery:
    """A battery that drains linearly from `start_pct` at `drain_pct_per_day`."""

    start_pct: float = 100.0
    drain_pct_per_day: float = 0.05

    def pct(self, t: float) -> float:
        """Charge at time `t`, never below zero."""
        return max(0.0, self.start_pct - self.drain_pct_per_day * t / 86_400)


def diurnal_temperature(hour: float, mean: float, swing: float, rng: np.random.Generator) -> float:
    """A daily temperature curve: coldest near 05:00, warmest near 15:00, plus a little noise."""
    return mean + swing * math.sin((hour - 9.0) / 24 * 2 * math.pi) + float(rng.normal(0, 0.2))


@dataclass
class BinFill:
    """A waste bin that fills through the day and is emptied at the pickup hours.

    Incident `overflow`: someone dumps a lot; `overflow_pct_per_h` more fill per hour.
    Spontaneous incident `bin_full` when the fill level crosses `full_pct`.
    """

    rng: np.random.Generator
    depth_mm: float = 1200.0
    fill_per_day_pct: float = 60.0
    pickup_hours: tuple[float, ...] = (7.0,)
    full_pct: float = 90.0
    overflow_pct_per_h: float = 40.0
    battery: Battery = field(default_factory=Battery)
    spontaneous: list[tuple[float, str]] = field(default_factory=list)
    _fill: float = 5.0
    _last_t: float | None = None
    _last_hour: float | None = None

    def _rate_per_s(self, hour: float) -> float:
        # Busier in the morning and the evening, quiet at night.
        shape = 0.2 + math.exp(-((hour - 8) ** 2) / 4) + math.exp(-((hour - 19) ** 2) / 6)
        return self.fill_per_day_pct / 86_400 * shape / 0.75

    def sample(self, t: float, hour: float, active: Active) -> dict[str, Value]:
        """Advance the fill level to `t` and report it."""
        dt = 0.0 if self._last_t is None else t - self._last_t
        before = self._fill
        if self._last_hour is not None and any(
            _crossed(self._last_hour, hour, h) for h in self.pickup_hours
        ):
            self._fill = float(self.rng.uniform(0, 4))
            before = self._fill
        extra = self.overflow_pct_per_h / 3600 if "overflow" in active else 0.0
        self._fill = min(100.0, self._fill + (self._rate_per_s(hour) + extra) * dt)
        self._fill = max(0.0, self._fill + float(self.rng.normal(0, 0.1)))
        if before < self.full_pct <= self._fill and "overflow" not in active:
            self.spontaneous.append((t, "bin_full"))  # (during an overflow, it is that incident)
        self._last_t, self._last_hour = t, hour
        fill = round(self._fill, 1)
        return {
            "fill_pct": fill,
            "distance_mm": round(self.depth_mm * (1 - fill / 100) + 150),
            "full": fill >= self.full_pct,
            "battery_pct": round(self.battery.pct(t)),
            "temperature_c": round(diurnal_temperature(hour, 18, 6, self.rng), 1),
            "tilt_alarm": False,
        }


def _crossed(prev_hour: float, hour: float, mark: float) -> bool:
    """Whether the hour of day passed `mark` between two samples (wrapping at midnight)."""
    if prev_hour <= hour:
        return prev_hour < mark <= hour
    return mark > prev_hour or mark <= hour


@dataclass
class ManholeCover:
    """A manhole cover with a tilt sensor and a level sensor looking down the shaft.

    Incidents: `lift` (cover lifted off: large tilt, moved), `tilt` (cover ajar), `flood` (water rises
    towards the cover over `flood_rise_s`).
    """

    rng: np.random.Generator
    shaft_depth_mm: float = 2000.0
    base_water_mm: float = 100.0
    flood_rise_s: float = 1800.0
    battery: Battery = field(default_factory=Battery)
    spontaneous: list[tuple[float, str]] = field(default_factory=list)

    def sample(self, t: float, hour: float, active: Active) -> dict[str, Value]:
        """Report tilt, movement and water level."""
        tilt = abs(float(self.rng.normal(0, 0.3)))
        if "lift" in active:
            tilt = float(self.rng.uniform(40, 85))
        elif "tilt" in active:
            tilt = float(self.rng.uniform(10, 25))
        water = self.base_water_mm + float(self.rng.normal(0, 5))
        if "flood" in active:
            frac = min(1.0, (t - active["flood"]) / self.flood_rise_s)
            water += frac * (self.shaft_depth_mm - 200 - self.base_water_mm)
        water = max(0.0, water)
        return {
            "tilt_deg": round(tilt, 2),
            "tilt_x_deg": round(tilt, 2),
            "tilt_y_deg": 0.0,
            "tilt_z_deg": round(90 - tilt, 2),
            "cover_moved": "lift" in active or "tilt" in active,
            "tilt_alarm": tilt > 5.0,  # noqa: PLR2004 - the device's factory threshold
            "water_level_mm": round(water),
            "distance_mm": round(self.shaft_depth_mm - water),
            "battery_pct": round(self.battery.pct(t)),
            "temperature_c": round(diurnal_temperature(hour, 14, 2, self.rng), 1),
        }


@dataclass
class SmokeDetector:
    """A smoke detector; incident `fire` builds smoke up with time constant `build_s`."""

    rng: np.random.Generator
    build_s: float = 120.0
    alarm_pct: float = 10.0
    battery: Battery = field(default_factory=Battery)
    spontaneous: list[tuple[float, str]] = field(default_factory=list)

    def sample(self, t: float, hour: float, active: Active) -> dict[str, Value]:
        """Report smoke concentration, the alarm flag and temperature."""
        smoke = abs(float(self.rng.normal(0, 0.3)))
        temp = diurnal_temperature(hour, 22, 1.5, self.rng)
        if "fire" in active:
            age = max(0.0, t - active["fire"])
            level = 1 - math.exp(-age / self.build_s)
            smoke += 80 * level
            temp += 40 * level
        smoke = min(100.0, smoke)
        return {
            "smoke_pct": round(smoke, 1),
            "smoke": smoke >= self.alarm_pct,
            "fire_alarm": smoke >= self.alarm_pct,
            "temperature_c": round(temp, 1),
            "battery_pct": round(self.battery.pct(t)),
            "low_battery": self.battery.pct(t) < 15,  # noqa: PLR2004 - typical detector threshold
            "tamper": "tamper" in active,
        }


@dataclass
class Perimeter:
    """A perimeter sensor (door contact with PIR): intrusions happen at night.

    Incident `breach` opens the contact and triggers motion. Besides scripted breaches, a Poisson
    process with `night_rate_per_h` raises short spontaneous `intrusion` incidents between 22:00 and
    05:00.
    """

    rng: np.random.Generator
    night_rate_per_h: float = 0.0
    hold_s: float = 60.0
    battery: Battery = field(default_factory=Battery)
    spontaneous: list[tuple[float, str]] = field(default_factory=list)
    _last_t: float | None = None
    _until: float = -1.0

    def sample(self, t: float, hour: float, active: Active) -> dict[str, Value]:
        """Report contact, motion and tamper."""
        dt = 0.0 if self._last_t is None else t - self._last_t
        self._last_t = t
        night = hour >= 22 or hour < 5  # noqa: PLR2004 - night hours
        if night and dt > 0 and self.night_rate_per_h > 0:
            p = 1 - math.exp(-self.night_rate_per_h * dt / 3600)
            if self.rng.random() < p and t >= self._until:
                self._until = t + self.hold_s
                self.spontaneous.append((t, "intrusion"))
        moving = "breach" in active or t < self._until
        return {
            "contact_open": "breach" in active,
            "occupancy": moving,
            "intrusion": moving,
            "tamper": "tamper" in active,
            "battery_pct": round(self.battery.pct(t)),
        }


@dataclass
class WaterMeter:
    """A water meter: household use by time of day; incident `leak` adds a constant flow."""

    rng: np.random.Generator
    mean_lph: float = 20.0
    leak_lph: float = 30.0
    battery: Battery = field(default_factory=Battery)
    spontaneous: list[tuple[float, str]] = field(default_factory=list)
    _volume_l: float = 0.0
    _last_t: float | None = None

    def sample(self, t: float, hour: float, active: Active) -> dict[str, Value]:
        """Advance the counter and report volume, flow and the leak flag."""
        dt = 0.0 if self._last_t is None else t - self._last_t
        self._last_t = t
        use = self.mean_lph * (0.1 + 2 * math.exp(-((hour - 7.5) ** 2) / 2))
        use += self.mean_lph * 1.5 * math.exp(-((hour - 20) ** 2) / 3)
        flow = max(0.0, use + float(self.rng.normal(0, 2)))
        if "leak" in active:
            flow += self.leak_lph
        self._volume_l += flow * dt / 3600
        return {
            "water_volume_l": round(self._volume_l, 1),
            "water_flow_lph": round(flow, 1),
            "water_leak": "leak" in active,
            "battery_pct": round(self.battery.pct(t)),
        }


MODEL_TYPES = {
    "bin": BinFill,
    "manhole": ManholeCover,
    "smoke": SmokeDetector,
    "perimeter": Perimeter,
    "meter": WaterMeter,
}
"""Model classes by device kind (`core.site.DeviceKind` values); panels reuse smoke/perimeter."""


def make_model(kind: str, rng: np.random.Generator, params: Mapping[str, object]) -> Model:
    """Build the model for a device kind with its parameters from the scenario."""
    cls = MODEL_TYPES.get(kind)
    if kind == "fire_panel":
        # A panel reports its detectors' alarm state: it latches within seconds of the fire.
        cls, params = SmokeDetector, {"build_s": 3.0, **params}
    elif cls is None:
        cls = {"alarm_panel": Perimeter, "level": ManholeCover}.get(kind)
    if cls is None:
        raise ValueError(
            f"no behaviour model for device kind {kind!r}; known: {sorted(MODEL_TYPES)}"
        )
    model: Model = cls(rng=rng, **params)  # params are checked by the dataclass
    return model
