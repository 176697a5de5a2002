"""Every registered codec, fed mutated seeds of its corpus: only `DecodeError`, never NaN/inf."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is not an installed package

from bench.fuzz_targets import CodecCase, check, codec_case, codec_corpus, shrink_case
from firmware_adapters.registry import CODECS

FUZZ = settings(
    max_examples=60,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # the failure message carries a delta-debugged input
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
NAN_F32 = b"\x7f\xc0\x00\x00"


def assert_contract(codec_id: str, case: CodecCase) -> None:
    outcome = check(codec_id, case)
    if outcome.failed:
        small = shrink_case(codec_id, case, outcome, max_seconds=2.0)
        pytest.fail(
            f"{codec_id}: {outcome.signature}: {outcome.detail}\nminimal input: {small.literal()}"
        )


@pytest.mark.parametrize("codec_id", sorted(CODECS))
def test_codec_corpus_seeds_keep_the_contract(codec_id: str) -> None:
    for seed in codec_corpus(codec_id):
        assert_contract(codec_id, seed)


@pytest.mark.parametrize("codec_id", sorted(CODECS))
@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_codec_mutated_frames_raise_only_decode_error(codec_id: str, rng: random.Random) -> None:
    assert_contract(codec_id, codec_case(codec_id, rng))


HOSTILE_META = ["nan", "inf", "-inf", "1e400", "9" * 5000, "\uff18\uff15", "", "0x", "1_0"]


@pytest.mark.parametrize("codec_id", sorted(CODECS))
@FUZZ
@given(
    seed=st.integers(0, 1000),
    key=st.sampled_from(
        ["fport", "rssi", "snr", "address", "table", "exposes", "kind", "utc_offset"]
    ),
    value=st.sampled_from(HOSTILE_META),
)
def test_codec_hostile_metadata_raises_only_decode_error(
    codec_id: str, seed: int, key: str, value: str
) -> None:
    seeds = codec_corpus(codec_id)
    base = seeds[seed % len(seeds)]
    assert_contract(codec_id, CodecCase(base.payload, {**base.meta, key: value}))


@FUZZ
@given(payload=st.binary(max_size=16))
@example(payload=NAN_F32 * 4)
@example(payload=b"\x7f\x80\x00\x00" * 4)
@example(payload=b"\xff\x80\x00\x00" * 4)
def test_generic_modbus_table_float_registers_are_finite(payload: bytes) -> None:
    table = '{"fields":[{"metric":"temperature_c","address":0,"type":"f32"},{"metric":"water_level_mm","address":2,"type":"f32"}]}'
    registers = bytes([1, 3, len(payload)]) + payload
    from firmware_adapters.framing.modbus_rtu import build_response  # noqa: PLC0415 - pymodbus is slow to import

    words = [
        int.from_bytes(payload[i : i + 2].ljust(2, b"\0"), "big") for i in range(0, len(payload), 2)
    ]
    frame = build_response(1, words) if words else registers
    assert_contract(
        "modbus.generic.table", CodecCase(frame, {"address": "0", "register_table": table})
    )


@FUZZ
@given(
    text=st.sampled_from(
        [
            '{"battery": NaN}',
            '{"temperature": Infinity}',
            '{"voltage": 1e400}',
            '{"battery": ' + "9" * 5000 + "}",
            "[" * 5000 + "]" * 5000,
            '{"angle_x": -Infinity}',
        ]
    )
)
def test_zigbee2mqtt_non_finite_json_is_refused(text: str) -> None:
    assert_contract("zigbee2mqtt.generic.exposes", CodecCase(text.encode(), {"kind": "state"}))


@FUZZ
@given(rssi=st.sampled_from(["nan", "inf", "-inf", "1e400", "NaN"]))
def test_lorawan_radio_metadata_is_finite_or_refused(rssi: str) -> None:
    base = codec_corpus("lorawan.milesight.em310_udl")[0]
    assert_contract(
        "lorawan.milesight.em310_udl",
        CodecCase(base.payload, {**base.meta, "rssi": rssi, "snr": rssi}),
    )
