"""Every case of every codec's vectors file, run through the registered codec."""

from __future__ import annotations

from collections import Counter

import pytest
from vector_cases import DEVICE, RECEIVED_AT, VectorCase, all_cases, same_value

from core.metrics import Quality
from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.registry import get_codec

CASES = list(all_cases())


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_vector(case: VectorCase) -> None:
    codec = get_codec(case.codec_id)
    frame = case.frame()
    if "error" in case.doc:
        with pytest.raises(DecodeError) as info:
            codec.decode(frame)
        assert info.value.reason is DecodeReason(case.doc["error"])
        assert info.value.codec_id == case.codec_id
        return
    result = codec.decode(frame)
    expected = list(case.doc.get("readings") or [])
    unmatched = list(result.readings)
    for want in expected:
        match = next(
            (
                r
                for r in unmatched
                if r.metric.value == want["metric"]
                and r.device_id == want.get("device", DEVICE)
                and same_value(r.value, want["value"])
                and r.quality is Quality(want.get("quality", "good"))
            ),
            None,
        )
        assert match is not None, f"missing {want} in {result.readings}"
        unmatched.remove(match)
    assert not unmatched, f"unexpected readings {unmatched}"
    for reading in result.readings:
        assert reading.codec_id == case.codec_id
        assert reading.ts.tzinfo is not None
        if not case.doc.get("device_time"):
            assert reading.ts == RECEIVED_AT
    for key, value in (case.doc.get("attributes") or {}).items():
        assert key in result.attributes, f"attribute {key} missing from {result.attributes}"
        assert result.attributes[key] == value


def test_case_names_are_unique_per_codec() -> None:
    counts = Counter((c.codec_id, c.name) for c in CASES)
    assert [k for k, n in counts.items() if n > 1] == []
