from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime

import pytest

from core.metrics import Metric
from core.types import RawFrame
from firmware_adapters.chirpstack import (
    PARSER_ID,
    UpEventEncoder,
    frame_from_up_event,
    parse_up_event,
    up_topic,
)
from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.registry import get_codec

# chirpstack-docs@9d9b5bb src/chirpstack/integrations/events.md (verbatim)
DOCS_EXAMPLE = (
    '{"deduplicationId":"3ac7e3c4-4401-4b8d-9386-a5c902f9202d","time":"2022-07-18T09:34:15.775023242+00:00",'
    '"deviceInfo":{"tenantId":"52f14cd4-c6f1-4fbd-8f87-4025e1d49242","tenantName":"ChirpStack",'
    '"applicationId":"17c82e96-be03-4f38-aef3-f83d48582d97","applicationName":"Test application",'
    '"deviceProfileId":"14855bf7-d10d-4aee-b618-ebfcb64dc7ad","deviceProfileName":"Test device-profile",'
    '"deviceName":"Test device","devEui":"0101010101010101","tags":{"key":"value"}},'
    '"devAddr":"00189440","dr":1,"fPort":1,"data":"qg==",'
    '"rxInfo":[{"gatewayId":"0016c001f153a14c","uplinkId":4217106255,"rssi":-36,"snr":10.5,"context":"E3OWOQ==",'
    '"metadata":{"region_name":"eu868","region_common_name":"EU868"}}],'
    '"txInfo":{"frequency":867100000,"modulation":{"lora":{"bandwidth":125000,"spreadingFactor":11,"codeRate":"CR_4_5"}}}}'
)

# DEVICE_PROTOCOLS.md section 1, the constructed full sample (EM310-UDL payload).
FULL_SAMPLE = {
    "deduplicationId": "5e6b1f8a-0c4e-4d1a-9b0e-2f1d8c7a6b54",
    "time": "2024-05-14T08:21:07.512334101+00:00",
    "deviceInfo": {
        "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
        "deviceName": "bin-0042",
        "devEui": "24e124136b502217",
        "tags": {"site": "block-A"},
    },
    "devAddr": "01f4a3c2",
    "adr": True,
    "dr": 5,
    "fCnt": 1873,
    "fPort": 85,
    "confirmed": False,
    "data": "AXVcA4JECAQAAQ==",
    "object": {"battery": 92.0, "distance": 2116.0, "position": "tilt"},
    "rxInfo": [
        {"gatewayId": "0016c001f153a14c", "rssi": -97, "snr": 7.25, "channel": 3},
        {"gatewayId": "0016c001f153a14d", "rssi": -110, "snr": -2.0},
    ],
    "txInfo": {"frequency": 867500000},
}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_docs_example_parses_with_missing_ints_as_zero() -> None:
    event = parse_up_event(DOCS_EXAMPLE)
    assert event.dev_eui == "0101010101010101"
    assert event.application_id == "17c82e96-be03-4f38-aef3-f83d48582d97"
    assert event.f_port == 1
    assert event.f_cnt == 0
    assert event.adr is False
    assert event.data == b"\xaa"
    assert [(r.gateway_id, r.rssi, r.snr) for r in event.rx] == [("0016c001f153a14c", -36, 10.5)]
    assert event.time == datetime(2022, 7, 18, 9, 34, 15, 775023, tzinfo=UTC)
    assert event.tags == {"key": "value"}


def test_full_sample_becomes_a_frame_that_the_bound_codec_decodes_with_radio_quality() -> None:
    event = parse_up_event(json.dumps(FULL_SAMPLE).encode())
    frame = frame_from_up_event(event, "lorawan.milesight.em310_udl", event.time or NOW, "bin-0042")
    assert frame.payload == bytes.fromhex("01755c03824408040001")
    assert frame.meta["fport"] == "85"
    assert frame.meta["f_cnt"] == "1873"
    assert frame.meta["dev_eui"] == "24e124136b502217"
    assert frame.meta["gateway_id"] == "0016c001f153a14c"  # the strongest of two gateways
    result = get_codec(frame.codec_id).decode(frame)
    values = {r.metric: r.value for r in result.readings}
    assert values == {
        Metric.BATTERY_PCT: 92,
        Metric.DISTANCE_MM: 2116,
        Metric.TILT_ALARM: True,
        Metric.RSSI_DBM: -97,
        Metric.SNR_DB: 7.25,
    }
    assert {r.device_id for r in result.readings} == {"bin-0042"}
    assert {r.ts for r in result.readings} == {datetime(2024, 5, 14, 8, 21, 7, 512334, tzinfo=UTC)}


def test_device_id_defaults_to_the_dev_eui_and_no_rx_means_no_radio_readings() -> None:
    doc = dict(FULL_SAMPLE)
    del doc["rxInfo"]
    event = parse_up_event(json.dumps(doc))
    frame = frame_from_up_event(event, "lorawan.milesight.em310_udl", NOW)
    assert frame.device_id == "24e124136b502217"
    metrics = {r.metric for r in get_codec(frame.codec_id).decode(frame).readings}
    assert Metric.RSSI_DBM not in metrics


def test_64_bit_ints_as_strings_are_accepted() -> None:
    doc = dict(FULL_SAMPLE) | {"fCnt": "4294967295"}
    assert parse_up_event(json.dumps(doc)).f_cnt == 4294967295


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps({"deviceInfo": {}, "data": ""}).encode(),
        json.dumps(FULL_SAMPLE | {"data": "!!notbase64"}).encode(),
        json.dumps(FULL_SAMPLE | {"fPort": "eighty"}).encode(),
        json.dumps(FULL_SAMPLE | {"rxInfo": {"rssi": 1}}).encode(),
        json.dumps(FULL_SAMPLE | {"time": "yesterday"}).encode(),
        json.dumps(FULL_SAMPLE | {"deviceInfo": "x"}).encode(),
    ],
    ids=["truncated", "binary", "array", "no-dev-eui", "base64", "fport", "rxinfo", "time", "info"],
)
def test_bad_events_are_malformed_decode_errors(payload: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        parse_up_event(payload)
    assert info.value.reason is DecodeReason.MALFORMED
    assert info.value.codec_id == PARSER_ID


def test_encoder_builds_events_with_growing_fcnt_and_plausible_radio() -> None:
    encoder = UpEventEncoder("24E124136B502217", device_name="bin-7", rng=random.Random(3))  # noqa: S311
    assert encoder.topic == up_topic(encoder.application_id, "24e124136b502217")
    assert encoder.topic.endswith("/device/24e124136b502217/event/up")
    events = [parse_up_event(encoder.encode(bytes([i, 0xFF]), 85, NOW)) for i in range(5)]
    assert [e.f_cnt for e in events] == [0, 1, 2, 3, 4]
    assert [e.data for e in events] == [bytes([i, 0xFF]) for i in range(5)]
    assert all(e.f_port == 85 and e.dev_eui == "24e124136b502217" for e in events)
    assert all(e.time == NOW and e.device_name == "bin-7" for e in events)
    for event in events:
        (rx,) = event.rx
        assert -120 <= rx.rssi <= -40
        assert -15 <= rx.snr <= 12
    raw = json.loads(encoder.encode(b"\x01", 2, NOW))
    assert base64.b64decode(raw["data"]) == b"\x01"
    assert "devEui" not in raw  # v4 keeps it in deviceInfo


def test_codec_unwraps_a_frame_holding_the_whole_event_as_a_pass_through_source_sends_it() -> None:
    topic = up_topic("17c82e96-be03-4f38-aef3-f83d48582d97", "24e124136b502217")
    raw = json.dumps(FULL_SAMPLE).encode()
    frame = RawFrame(
        "mqtt", "lorawan.milesight.em310_udl", raw, NOW, {"device_id": "bin-0042", "topic": topic}
    )
    codec = get_codec(frame.codec_id)
    through = codec.decode(frame)
    event = parse_up_event(raw)
    built = codec.decode(frame_from_up_event(event, frame.codec_id, NOW, "bin-0042"))
    assert through.readings == built.readings
    assert {r.ts for r in through.readings} == {NOW}  # the source's receive time is kept
    inner = frame_from_up_event(event, frame.codec_id, NOW, "bin-0042")
    tagged = RawFrame(
        inner.source_id, inner.codec_id, inner.payload, NOW, {**inner.meta, "topic": topic}
    )
    assert codec.decode(tagged).readings == built.readings  # already unwrapped: not parsed again
    broken = RawFrame(
        "mqtt", frame.codec_id, b"{oops", NOW, {"device_id": "bin-0042", "topic": topic}
    )
    with pytest.raises(DecodeError) as info:
        codec.decode(broken)
    assert (info.value.codec_id, info.value.reason) == (frame.codec_id, DecodeReason.MALFORMED)


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps(FULL_SAMPLE | {"data": "AXVcA4JECAQAAQ==é"}).encode(),
        json.dumps(FULL_SAMPLE | {"time": "9999-12-31T23:59:59-01:00"}).encode(),
    ],
    ids=["non-ascii-data", "time-past-year-9999-in-utc"],
)
def test_events_that_broke_the_parser_are_malformed_decode_errors(payload: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        parse_up_event(payload)
    assert info.value.reason is DecodeReason.MALFORMED
    # The same event passed through whole to a LoRaWAN codec is that codec's malformed frame.
    topic = up_topic("app", "24e124136b502217")
    frame = RawFrame("t", "x", payload, NOW, {"device_id": "d", "topic": topic})
    with pytest.raises(DecodeError) as through_codec:
        get_codec("lorawan.milesight.em310_udl").decode(frame)
    assert through_codec.value.reason is DecodeReason.MALFORMED
    assert through_codec.value.codec_id == "lorawan.milesight.em310_udl"


def test_an_unforeseen_failure_while_parsing_is_a_codec_error_not_an_escape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from firmware_adapters import chirpstack  # noqa: PLC0415

    def explode(_doc: object, _key: str, _raw: bytes) -> object:
        raise RecursionError("too deep")

    monkeypatch.setattr(chirpstack, "_obj", explode)
    with pytest.raises(DecodeError) as info:
        parse_up_event(json.dumps(FULL_SAMPLE).encode())
    assert info.value.reason is DecodeReason.CODEC_ERROR
    assert isinstance(info.value.__cause__, RecursionError)
