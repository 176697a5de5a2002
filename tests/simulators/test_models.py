from __future__ import annotations

import numpy as np

from simulators.models import (
    BinFill,
    ManholeCover,
    Perimeter,
    SmokeDetector,
    WaterMeter,
    make_model,
)


def rng() -> np.random.Generator:
    return np.random.default_rng(3)


def test_smoke_builds_up_during_a_fire() -> None:
    m = SmokeDetector(rng=rng(), build_s=60)
    quiet = m.sample(0, 12, {})
    early = m.sample(30, 12, {"fire": 0})
    later = m.sample(300, 12, {"fire": 0})
    assert quiet["smoke"] is False
    assert float(quiet["smoke_pct"]) < float(early["smoke_pct"]) < float(later["smoke_pct"])
    assert later["smoke"] is True
    assert float(later["temperature_c"]) > float(quiet["temperature_c"]) + 20


def test_manhole_lift_tilt_and_flood() -> None:
    m = ManholeCover(rng=rng(), flood_rise_s=100)
    calm = m.sample(0, 12, {})
    lifted = m.sample(10, 12, {"lift": 5})
    flooding = [m.sample(t, 12, {"flood": 0}) for t in (10, 50, 200)]
    assert calm["cover_moved"] is False
    assert float(calm["tilt_deg"]) < 2
    assert lifted["cover_moved"] is True
    assert float(lifted["tilt_deg"]) >= 40
    levels = [float(s["water_level_mm"]) for s in flooding]
    assert levels == sorted(levels)
    assert float(flooding[-1]["distance_mm"]) < 400


def test_bin_overflow_fills_fast_and_is_reported_once_full() -> None:
    m = BinFill(rng=rng(), fill_per_day_pct=50)
    for t in range(0, 3 * 3600, 300):
        m.sample(float(t), 10 + t / 3600, {"overflow": 0})
    # full during the overflow is that incident, not a second one
    assert not any(name == "bin_full" for _, name in m.spontaneous)
    assert m.sample(3 * 3600, 13, {})["full"] is True


def test_a_bin_filling_past_full_by_itself_is_an_incident() -> None:
    m = BinFill(rng=rng(), fill_per_day_pct=300)
    for t in range(0, 12 * 3600, 300):
        m.sample(float(t), 8 + t / 3600, {})
    assert any(name == "bin_full" for _, name in m.spontaneous)


def test_perimeter_intrusions_happen_only_at_night() -> None:
    m = Perimeter(rng=rng(), night_rate_per_h=4)
    for t in range(0, 86_400 * 3, 30):
        m.sample(float(t), (t / 3600) % 24, {})
    hours = [(t / 3600) % 24 for t, _ in m.spontaneous]
    assert len(hours) > 10
    assert all(h >= 22 or h < 5 for h in hours)


def test_water_meter_leak_adds_night_flow() -> None:
    normal = WaterMeter(rng=rng())
    leaking = WaterMeter(rng=rng())
    a = [normal.sample(t, 3, {}) for t in range(0, 3600, 60)]
    b = [leaking.sample(t, 3, {"leak": 0}) for t in range(0, 3600, 60)]
    assert float(b[-1]["water_volume_l"]) > float(a[-1]["water_volume_l"]) + 25
    assert b[-1]["water_leak"] is True


def test_battery_drains() -> None:
    m = make_model("smoke", rng(), {})
    assert float(m.sample(0, 0, {})["battery_pct"]) > float(
        m.sample(400 * 86_400, 0, {})["battery_pct"]
    )
