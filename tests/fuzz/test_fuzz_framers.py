"""Stream framers: intact frames among garbage, truncated and damaged frames are all recovered, and
the frames found do not depend on how the stream is cut into reads."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is not an installed package

from bench.fuzz_targets import (
    FRAMERS,
    Segment,
    StreamCase,
    check,
    framer_corpus,
    shrink_case,
    stream_case,
)

FUZZ = settings(
    max_examples=80,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


def assert_contract(family: str, case: StreamCase) -> None:
    outcome = check(family, case)
    if outcome.failed:
        small = shrink_case(family, case, outcome, max_seconds=2.0)
        pytest.fail(
            f"{family}: {outcome.signature} ({outcome.frames_lost} lost): {outcome.detail}\nminimal input: {small.literal()}"
        )


@pytest.mark.parametrize("family", list(FRAMERS))
@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_framer_recovers_every_intact_frame_in_any_chunking(
    family: str, rng: random.Random
) -> None:
    assert_contract(family, stream_case(family, rng))


@pytest.mark.parametrize("family", list(FRAMERS))
@FUZZ
@given(data=st.data())
def test_truncated_frame_never_swallows_the_next_one(family: str, data: st.DataObject) -> None:
    corpus = framer_corpus(family)
    first = data.draw(st.sampled_from(corpus))
    second = data.draw(st.sampled_from(corpus))
    cut = data.draw(st.integers(1, len(first.wire) - 1))
    wire = first.wire[:cut] + (b"\n" if family == "framing.contact_id" else b"")
    sizes = tuple(data.draw(st.lists(st.integers(1, 16), min_size=1, max_size=40)))
    assert_contract(family, StreamCase((Segment("truncated", wire), second), (sizes, (1,) * 400)))


@pytest.mark.parametrize("family", list(FRAMERS))
@FUZZ
@given(data=st.data())
def test_long_garbage_before_a_frame_does_not_depend_on_read_sizes(
    family: str, data: st.DataObject
) -> None:
    frame = data.draw(st.sampled_from(framer_corpus(family)))
    garbage = data.draw(st.binary(min_size=200, max_size=600))
    sizes = tuple(data.draw(st.lists(st.integers(1, 64), min_size=1, max_size=40)))
    eol = b"\r\n" if family == "framing.contact_id" else b""
    assert_contract(family, StreamCase((Segment("garbage", garbage + eol), frame), (sizes,)))
