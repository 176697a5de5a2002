from __future__ import annotations

import numpy as np
import pytest

from simulators.emission import Emission, Sample
from simulators.faults import (
    BitFlip,
    BrokerDisconnect,
    ClockSkew,
    Drop,
    Duplicate,
    Fault,
    Garbage,
    Reorder,
    Scope,
    Silent,
    Spike,
    SplitWrites,
    Stuck,
    Truncate,
    Unplug,
    apply_byte_faults,
    apply_value_faults,
)


def _emissions(n: int = 200, device: str = "d1") -> list[Emission]:
    return [Emission(float(i), device, bytes([i % 256, 0xAA, 0x55, i // 256])) for i in range(n)]


def _samples(n: int = 100) -> list[Sample]:
    return [Sample(float(i), "d1", {"distance_mm": 1000 + i, "smoke": False}) for i in range(n)]


def rng(seed: int = 1) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_drop_removes_about_p_and_keeps_the_rest_intact() -> None:
    src = _emissions(1000)
    out = Drop(p=0.3).apply(src, rng())
    assert 600 < len(out) < 800
    assert all(e in src for e in out)


def test_drop_respects_device_and_window() -> None:
    src = _emissions(100) + _emissions(100, "d2")
    out = Drop(p=1.0, scope=Scope(devices=("d1",), start=10, end=20)).apply(src, rng())
    assert len(out) == 190
    assert not [e for e in out if e.device_id == "d1" and 10 <= e.t < 20]


def test_duplicate_adds_tagged_copies_of_the_same_bytes() -> None:
    out = Duplicate(p=0.5).apply(_emissions(), rng())
    copies = [e for e in out if "duplicate" in e.tags]
    assert 60 < len(copies) < 140
    originals = {e.payload for e in out if not e.tags}
    assert all(c.payload in originals for c in copies)


def test_reorder_swaps_neighbours_and_keeps_the_multiset() -> None:
    src = _emissions()
    out = Reorder(p=0.3).apply(src, rng())
    assert sorted(e.payload for e in out) == sorted(e.payload for e in src)
    assert [e.payload for e in out] != [e.payload for e in src]
    assert [e.t for e in out] == [e.t for e in src]


def test_bit_flip_changes_exactly_n_bits() -> None:
    src = _emissions()
    out = BitFlip(p=1.0, bits=3).apply(src, rng())
    for a, b in zip(src, out, strict=True):
        diff = sum((x ^ y).bit_count() for x, y in zip(a.payload, b.payload, strict=True))
        assert diff == 3


def test_truncate_keeps_a_nonempty_prefix() -> None:
    src = _emissions()
    out = Truncate(p=1.0).apply(src, rng())
    for a, b in zip(src, out, strict=True):
        assert 1 <= len(b.payload) < len(a.payload)
        assert a.payload.startswith(b.payload)


def test_split_writes_reassemble_to_the_original_stream() -> None:
    src = _emissions(50)
    out = SplitWrites(max_chunk=2).apply(src, rng())
    assert len(out) > len(src)
    assert all(len(e.payload) <= 2 for e in out)
    assert b"".join(e.payload for e in out) == b"".join(e.payload for e in src)


def test_garbage_is_inserted_before_frames_without_touching_them() -> None:
    src = _emissions()
    out = Garbage(p=0.5, max_len=8).apply(src, rng())
    noise = [e for e in out if e.tags == ("garbage",)]
    assert 60 < len(noise) < 140
    assert all(1 <= len(e.payload) <= 8 for e in noise)
    assert [e for e in out if e.tags != ("garbage",)] == src


@pytest.mark.parametrize("fault", [Unplug, BrokerDisconnect])
def test_link_faults_lose_what_was_sent_during_the_window(fault: type[Unplug]) -> None:
    out = fault(scope=Scope(start=50, end=60)).apply(_emissions(100), rng())
    assert [e.t for e in out] == [float(i) for i in range(100) if not 50 <= i < 60]


def test_stuck_holds_the_first_value_of_the_window() -> None:
    out = Stuck(metric="distance_mm", scope=Scope(start=10, end=20)).apply(_samples(), rng())
    assert [s.values["distance_mm"] for s in out[10:20]] == [1010] * 10
    assert out[20].values["distance_mm"] == 1020
    assert out[9].values["distance_mm"] == 1009


def test_spike_jumps_by_the_magnitude_and_leaves_flags_alone() -> None:
    src = _samples(500)
    out = Spike(metric="distance_mm", p=0.2, magnitude=500).apply(src, rng())
    deltas = [
        float(o.values["distance_mm"]) - float(s.values["distance_mm"])
        for s, o in zip(src, out, strict=True)
    ]
    assert set(deltas) <= {0, 500, -500}
    assert 50 < sum(1 for d in deltas if d) < 150
    assert all(o.values["smoke"] is False for o in out)


def test_spike_stays_inside_the_metric_range() -> None:
    out = Spike(metric="distance_mm", p=1.0, magnitude=50_000).apply(_samples(50), rng())
    assert {o.values["distance_mm"] for o in out} <= {0, 20_000}


def test_clock_skew_moves_device_time_only() -> None:
    out = ClockSkew(offset_s=-3600, drift_ppm=100).apply(_samples(10), rng())
    assert [s.t for s in out] == [float(i) for i in range(10)]
    assert out[5].clock == pytest.approx(5 - 3600 + 5 * 100e-6)


def test_silent_removes_the_window() -> None:
    out = Silent(scope=Scope(start=20, end=40)).apply(_samples(), rng())
    assert len(out) == 80
    assert all(not 20 <= s.t < 40 for s in out)


def test_composed_faults_are_deterministic_per_seed() -> None:
    faults: list[Fault] = [
        Drop(p=0.1),
        Duplicate(p=0.1),
        BitFlip(p=0.1),
        Garbage(p=0.1),
        SplitWrites(max_chunk=3),
    ]
    a = apply_byte_faults(_emissions(), faults, seed=7)
    b = apply_byte_faults(_emissions(), faults, seed=7)
    c = apply_byte_faults(_emissions(), faults, seed=8)
    assert a == b
    assert a != c
    assert [e.t for e in a] == sorted(e.t for e in a)


def test_value_faults_compose_in_order() -> None:
    faults: list[Fault] = [
        Spike(metric="distance_mm", p=1.0, magnitude=1),
        Stuck(metric="distance_mm"),
    ]
    out = apply_value_faults(_samples(5), faults, seed=1)
    assert len({s.values["distance_mm"] for s in out}) == 1
