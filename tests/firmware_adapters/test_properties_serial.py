"""Property tests for the serial, IP and Modbus codecs: round trips, and bad bytes only raise DecodeError."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.metrics import Metric
from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec
from firmware_adapters.codecs.ip import sia_dc09
from firmware_adapters.codecs.modbus import dfrobot_sen0310, dfrobot_sen0492, generic_table
from firmware_adapters.codecs.serial import ademco_contact_id, gbt26875_3
from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.framing.base import StreamBuffer
from firmware_adapters.framing.contact_id import ContactIdFramer
from firmware_adapters.framing.gbt26875 import Gbt26875Framer
from firmware_adapters.framing.sia_dc09 import SiaDc09Framer
from firmware_adapters.panel_events import EVENT_METRICS

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)
PROPERTY = settings(max_examples=200, deadline=None)
CODECS: tuple[Codec, ...] = (
    gbt26875_3.CODEC,
    ademco_contact_id.CODEC,
    sia_dc09.CODEC,
    dfrobot_sen0492.CODEC,
    dfrobot_sen0310.CODEC,
    generic_table.CODEC,
)
GENERIC_TABLE = json.dumps(
    {
        "fields": [
            {"metric": "water_level_mm", "address": 0, "type": "u32"},
            {"metric": "temperature_c", "address": 2, "type": "f32"},
        ]
    }
)
META: dict[str, dict[str, str]] = {
    generic_table.CODEC.id: {"register_table": GENERIC_TABLE, "address": "0"}
}


def decode(codec: Codec, payload: bytes) -> DecodeResult:
    meta = {"device_id": "dev", **META.get(codec.id, {})}
    return codec.decode(RawFrame("prop", codec.id, payload, RECEIVED, meta))


def by_metric(result: DecodeResult) -> dict[tuple[str, Metric], float | bool]:
    return {(r.device_id, r.metric): r.value for r in result.readings}


times = st.datetimes(
    min_value=datetime(2000, 1, 2),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2099, 12, 30),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(lambda t: t.replace(microsecond=0))
flags = st.fixed_dictionaries(
    {m: st.booleans() for m in ("fire_alarm", "fault", "power_fault", "self_test")}
)
descriptions = st.text(alphabet="ABC区层走廊楼一二三 ", max_size=15)


@PROPERTY
@given(
    system_type=st.integers(0, 255),
    system_address=st.integers(0, 255),
    component_address=st.integers(0, 2**32 - 1),
    status=flags,
    description=descriptions,
    at=times,
    offset=st.integers(-12, 14),
)
def test_gbt_component_status_round_trip(
    *,
    system_type: int,
    system_address: int,
    component_address: int,
    status: dict[str, bool],
    description: str,
    at: datetime,
    offset: int,
) -> None:
    zone = f"{offset:+03d}:00"
    values = {
        "system_type": system_type,
        "system_address": system_address,
        "component_address": component_address,
        "description": description,
        "at": at,
        "utc_offset": zone,
        **status,
    }
    meta = {"device_id": "dev", "utc_offset": zone}
    result = gbt26875_3.decode(
        RawFrame("prop", gbt26875_3.CODEC.id, gbt26875_3.CODEC.encode(values), RECEIVED, meta)
    )
    sub = f"dev/{system_type}-{system_address}/{component_address:08x}"
    assert by_metric(result) == {(sub, Metric(k)): v for k, v in status.items()}
    assert {r.ts for r in result.readings} == {at}
    assert result.attributes[f"{sub[4:]}.description"] == description.rstrip("\x00")


@PROPERTY
@given(
    st.lists(
        st.tuples(st.integers(-500, 1500), st.sampled_from(["temperature_c", "gas_lel_pct"])),
        min_size=1,
        max_size=20,
    ),
    times,
)
def test_gbt_analog_values_round_trip(samples: list[tuple[int, str]], at: datetime) -> None:
    objects = [
        {"component_address": n, key: raw / 10, "at": at} for n, (raw, key) in enumerate(samples)
    ]
    result = decode(gbt26875_3.CODEC, gbt26875_3.CODEC.encode({"info_type": 3, "objects": objects}))
    got = by_metric(result)
    for n, (raw, key) in enumerate(samples):
        assert abs(float(got[(f"dev/0-0/{n:08x}", Metric(key))]) - raw / 10) < 1e-6


@PROPERTY
@given(
    account=st.text(alphabet="0123456789BCDEF", min_size=4, max_size=4),
    code=st.sampled_from(sorted(EVENT_METRICS)),
    qualifier=st.sampled_from([1, 3, 6]),
    partition=st.integers(0, 99),
    zone=st.integers(0, 999),
    over_ip=st.booleans(),
)
def test_panel_events_round_trip(
    *, account: str, code: str, qualifier: int, partition: int, zone: int, over_ip: bool
) -> None:
    codec = sia_dc09.CODEC if over_ip else ademco_contact_id.CODEC
    values = {
        "account": account,
        "event_code": code,
        "qualifier": qualifier,
        "partition": partition,
        "zone": zone,
    }
    result = decode(codec, codec.encode(values))
    device = "dev" if zone == 0 else f"dev/{'user' if code.startswith('4') else 'zone'}-{zone:03d}"
    assert by_metric(result) == {(device, m): qualifier != 3 for m in EVENT_METRICS[code]}
    assert (
        result.attributes["account"],
        result.attributes["event_code"],
        result.attributes["partition"],
    ) == (account, code, f"{partition:02d}")


@PROPERTY
@given(
    code=st.sampled_from(
        ["FA", "FH", "BA", "BR", "TA", "TR", "AT", "AR", "YT", "XT", "WA", "WH", "GA"]
    ),
    zone=st.integers(1, 9999),
    sequence=st.integers(0, 9999),
    at=st.none() | times,
)
def test_sia_dcs_round_trip(code: str, zone: int, sequence: int, at: datetime | None) -> None:
    values = {"id": "SIA-DCS", "sia_code": code, "zone": str(zone), "sequence": sequence, "at": at}
    result = decode(sia_dc09.CODEC, sia_dc09.CODEC.encode(values))
    assert result.attributes["sequence"] == f"{sequence:04d}"
    assert result.attributes["event_code"] == code
    assert all(
        r.ts == (at or RECEIVED) and r.device_id == f"dev/zone-{zone}" for r in result.readings
    )


@PROPERTY
@given(
    distance=st.integers(0, 65535), temperature=st.integers(-3276, 3276), slave=st.integers(1, 247)
)
def test_modbus_sensor_round_trips(distance: int, temperature: int, slave: int) -> None:
    adu = dfrobot_sen0492.CODEC.encode({"distance_mm": distance, "slave": slave})
    assert by_metric(decode(dfrobot_sen0492.CODEC, adu)) == {("dev", Metric.DISTANCE_MM): distance}
    adu = dfrobot_sen0310.CODEC.encode(
        {"distance_mm": distance // 10 * 10, "temperature_c": temperature / 10}
    )
    got = by_metric(decode(dfrobot_sen0310.CODEC, adu))
    assert got[("dev", Metric.DISTANCE_MM)] == distance // 10 * 10
    assert abs(float(got[("dev", Metric.TEMPERATURE_C)]) - temperature / 10) < 1e-6


@PROPERTY
@given(level=st.integers(0, 2**32 - 1), temperature=st.floats(-1e6, 1e6, width=32))
def test_generic_table_round_trip(level: int, temperature: float) -> None:
    adu = generic_table.encode(
        {"table": GENERIC_TABLE, "water_level_mm": level, "temperature_c": temperature}
    )
    got = by_metric(decode(generic_table.CODEC, adu))
    assert got == {
        ("dev", Metric.WATER_LEVEL_MM): level,
        ("dev", Metric.TEMPERATURE_C): temperature,
    }


def only_decode_errors(codec: Codec, payload: bytes) -> None:
    try:
        decode(codec, payload)
    except DecodeError as err:
        assert isinstance(err.reason, DecodeReason)  # noqa: PT017 - decoding may also succeed
        assert err.codec_id == codec.id  # noqa: PT017


@PROPERTY
@given(codec=st.sampled_from(CODECS), payload=st.binary(max_size=300))
def test_random_bytes_only_raise_decode_error(codec: Codec, payload: bytes) -> None:
    only_decode_errors(codec, payload)


SAMPLES: dict[str, Callable[[], bytes]] = {
    gbt26875_3.CODEC.id: lambda: gbt26875_3.CODEC.encode(
        {
            "objects": [
                {
                    "system_type": 1,
                    "component_address": 9,
                    "fire_alarm": True,
                    "description": "一层",
                    "at": RECEIVED - timedelta(days=1),
                }
            ]
            * 3
        }
    ),
    ademco_contact_id.CODEC.id: lambda: ademco_contact_id.CODEC.encode(
        {"event_code": "131", "zone": 15}
    ),
    sia_dc09.CODEC.id: lambda: sia_dc09.CODEC.encode(
        {"event_code": "111", "zone": 2, "at": RECEIVED}
    ),
    dfrobot_sen0492.CODEC.id: lambda: dfrobot_sen0492.CODEC.encode({"distance_mm": 1803}),
    dfrobot_sen0310.CODEC.id: lambda: dfrobot_sen0310.CODEC.encode(
        {"distance_mm": 120, "temperature_c": 21.5}
    ),
    generic_table.CODEC.id: lambda: generic_table.CODEC.encode(
        {"table": GENERIC_TABLE, "water_level_mm": 5, "temperature_c": 1.5}
    ),
}


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Codec, bytes]:
    codec = draw(st.sampled_from(CODECS))
    data = bytearray(SAMPLES[codec.id]())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif data:
            del data[at]
    return codec, bytes(data)


@PROPERTY
@given(mutated())
def test_mutated_frames_only_raise_decode_error(case: tuple[Codec, bytes]) -> None:
    only_decode_errors(*case)


@PROPERTY
@given(
    framer=st.sampled_from([Gbt26875Framer, ContactIdFramer, SiaDc09Framer]),
    chunks=st.lists(
        st.binary(max_size=64) | st.sampled_from([b"@@", b"##", b"\r\n", b"\n0000", b'"']),
        max_size=40,
    ),
)
def test_framers_survive_any_bytes(
    framer: Callable[[], Gbt26875Framer | ContactIdFramer | SiaDc09Framer], chunks: list[bytes]
) -> None:
    stream = StreamBuffer(framer())
    for chunk in chunks:
        for frame in stream.feed(chunk):
            assert frame
    assert stream.pending <= sum(len(c) for c in chunks)
