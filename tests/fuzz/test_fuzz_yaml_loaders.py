"""Config, rule and scenario YAML loaders on mutated files: only their located error, no NaN/inf
in what they return, and no input that takes more than 100 ms of CPU."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is not an installed package

from bench.fuzz_mutations import alias_bomb
from bench.fuzz_targets import (
    YAML_CORPUS,
    YAML_LOADERS,
    BytesCase,
    bytes_case,
    check,
    shrink_case,
    text_corpus,
)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
FAMILIES = list(YAML_LOADERS)
NASTY = [
    b"\xef\xbb\xbfa: 1\n",
    "a: 1\n".encode("utf-16"),
    b"a: \x00\n",
    b"a: !!int abc\n",
    b"a: 2024-13-01\n",
    b"a: .nan\n",
    b"a: .inf\n",
    b"a: 1e19\n",
    b"a: " + b"9" * 5000 + b"\n",
    b"a: !!python/object/apply:os.system ['true']\n",
    b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    b"? [a, b]\n: c\n",
    b"a: 1\na: 2\n",
    b"a: *nowhere\n",
    alias_bomb(9, 9).encode(),
]


HANG_S = 5.0
"""CPU seconds that make a case a hang here: generous, since a test's first case also pays for the
imports it triggers and the machine may be busy; `bench/fuzz.py` measures the 100 ms budget."""


def assert_contract(family: str, case: BytesCase) -> None:
    start = time.thread_time()
    outcome = check(family, case)
    spent = time.thread_time() - start
    if outcome.failed or spent > HANG_S:
        small = case if spent > HANG_S else shrink_case(family, case, outcome, max_seconds=2.0)
        what = (
            f"took {spent * 1000:.0f} ms"
            if spent > HANG_S
            else f"{outcome.signature}: {outcome.detail}"
        )
        pytest.fail(f"{family}: {what}\nminimal input: {small.literal()[:2000]}")


@pytest.mark.parametrize("family", FAMILIES)
def test_yaml_corpus_seeds_load(family: str) -> None:
    for text in text_corpus(YAML_CORPUS[family]):
        outcome = check(family, BytesCase(text.encode()))
        assert outcome.kind == "ok", outcome


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("data", NASTY, ids=range(len(NASTY)))
def test_nastiest_known_yaml_inputs(family: str, data: bytes) -> None:
    assert_contract(family, BytesCase(data))


@pytest.mark.parametrize("family", FAMILIES)
@FUZZ
@given(rng=st.randoms(use_true_random=False))
@example(rng=random.Random(0))  # noqa: S311 - a seeded case, not a secret
def test_mutated_yaml_files_raise_only_located_errors(family: str, rng: random.Random) -> None:
    assert_contract(family, bytes_case(family, rng))


@pytest.mark.parametrize("family", FAMILIES)
@FUZZ
@given(data=st.data())
def test_hostile_scalar_in_a_seed_is_refused_or_finite(family: str, data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(text_corpus(YAML_CORPUS[family])))
    lines = seed.splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    value = data.draw(
        st.sampled_from(
            [".nan", ".inf", "-.inf", "1e19", "1e400", "!!int abc", "2024-13-01", "!!float .nan"]
        )
    )
    head, sep, _ = lines[index].partition(": ")
    if sep:
        lines[index] = f"{head}: {value}"
    assert_contract(family, BytesCase(("\n".join(lines) + "\n").encode()))
