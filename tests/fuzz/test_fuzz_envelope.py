"""`core.envelope_json.loads` on mutated envelopes: only `EnvelopeError`, never NaN/inf in the result."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is not an installed package

from bench.fuzz_targets import BytesCase, bytes_case, check, shrink_case, text_corpus

FUZZ = settings(
    max_examples=300,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
READING = '{"device":"d","metric":"distance_mm","value":%s,"ts":"2026-01-01T00:00:00+00:00","quality":"good","codec":"c"}'
ENVELOPE = '{"schema_version":1,"gateway_id":"gw","batch_id":"12345678-1234-5678-1234-567812345678","sent_at":"2026-01-01T00:00:00+00:00","readings":[%s],"alarm_events":[]}'


def assert_contract(case: BytesCase) -> None:
    outcome = check("envelope", case)
    if outcome.failed:
        small = shrink_case("envelope", case, outcome, max_seconds=2.0)
        pytest.fail(
            f"envelope: {outcome.signature}: {outcome.detail}\nminimal input: {small.literal()}"
        )


def test_envelope_corpus_seeds_load() -> None:
    for text in text_corpus("envelope"):
        assert check("envelope", BytesCase(text.encode())).kind == "ok"


@FUZZ
@given(rng=st.randoms(use_true_random=False))
@example(rng=random.Random(0))  # noqa: S311 - a seeded case, not a secret
def test_mutated_envelopes_raise_only_envelope_error(rng: random.Random) -> None:
    assert_contract(bytes_case("envelope", rng))


@FUZZ
@given(value=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 5000]))
def test_non_finite_and_huge_reading_values_are_refused(value: str) -> None:
    assert_contract(BytesCase((ENVELOPE % (READING % value)).encode()))


@FUZZ
@given(depth=st.sampled_from([100, 1000, 5000, 100_000]), opener=st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_refused(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = opener * depth + ("1" if opener != "[" else "") + closer * depth
    assert_contract(BytesCase(text.encode()))


@FUZZ
@given(
    data=st.sampled_from(
        [
            b"\xef\xbb\xbf{}",
            b"\xff\xfe{\x00}\x00",
            b'"\\ud800"',
            b"\x00",
            b"",
            b'{"schema_version": 1e400}',
        ]
    )
)
def test_bad_encodings_are_refused(data: bytes) -> None:
    assert_contract(BytesCase(data))
