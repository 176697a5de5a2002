"""Sources and the pipeline survive any exception from a codec: counted, dead-lettered, logged once."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from source_recorder import Recorder

from core.clock import FrozenClock
from core.metrics import Metric
from core.site import DeviceKind
from core.types import AlarmEvent, DecodeResult, RawFrame, Reading
from edge_agent.bindings import Bindings, BindingsHolder
from edge_agent.config import ChirpStackConfig, DeviceConfig, LocalMqttConfig
from edge_agent.dead_letter import DeadLetterStore
from edge_agent.outbox.memory import MemoryOutbox
from edge_agent.pipeline import Pipeline
from edge_agent.selfstats import PipelineStats
from edge_agent.sources import mqtt as mqtt_source
from edge_agent.sources.base import SourceContext
from edge_agent.sources.dc09 import Dc09Receiver
from edge_agent.sources.serial import SerialSource
from firmware_adapters.chirpstack import PARSER_ID, UpEventEncoder, parse_up_event
from firmware_adapters.codec import Codec, DeviceClass
from firmware_adapters.errors import DecodeReason
from firmware_adapters.framing.sia_dc09 import build_message
from firmware_adapters.registry import CODECS

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEV_EUI = "24e124713d290785"
FLAKY = "ip.test.flaky"


class NoRules:
    """A rule engine that observes nothing."""

    def observe(self, reading: Reading, now: datetime) -> list[AlarmEvent]:  # noqa: ARG002
        return []

    def tick(self, now: datetime) -> list[AlarmEvent]:  # noqa: ARG002
        return []


def flaky_decode(frame: RawFrame) -> DecodeResult:
    """Decodes `{"temperature_c": n}`; any other payload hits a bug (not a `DecodeError`)."""
    doc = json.loads(frame.payload)  # raises JSONDecodeError on garbage: a codec bug
    value = doc["temperature_c"]  # KeyError on other objects
    return DecodeResult(
        (Reading(frame.device_id, Metric.TEMPERATURE_C, value, frame.received_at, codec_id=FLAKY),)
    )


def pipeline_with(tmp_path: Path) -> tuple[Pipeline, MemoryOutbox, DeadLetterStore]:
    outbox = MemoryOutbox()
    letters = DeadLetterStore(tmp_path / "dead.sqlite3")
    codec = Codec(FLAKY, DeviceClass.GENERIC, "test", flaky_decode, lambda _v: b"", Path("-"))
    pipeline = Pipeline(
        gateway_id="gw",
        codecs={FLAKY: codec, **CODECS},
        engine=NoRules(),
        outbox=outbox,
        dead_letters=letters,
        clock=FrozenClock(T0),
    )
    return pipeline, outbox, letters


def frame(payload: bytes, codec_id: str = FLAKY, **meta: str) -> RawFrame:
    return RawFrame("test", codec_id, payload, T0, {"device_id": "dev", **meta})


async def stored(outbox: MemoryOutbox) -> list[Reading]:
    batch = await outbox.begin(10_000)
    return [] if batch is None else list(batch.readings)


async def test_pipeline_counts_dead_letters_and_logs_a_codec_bug_once_then_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, outbox, letters = pipeline_with(tmp_path)
    caplog.set_level(logging.DEBUG, logger="edge_agent.pipeline")
    await pipeline.process(
        [frame(b"\xffnot json"), frame(b"\xfeagain"), frame(b'{"temperature_c": 21}')]
    )
    assert [(r.metric, r.value) for r in await stored(outbox)] == [(Metric.TEMPERATURE_C, 21)]
    assert pipeline.stats.decode_errors == {(FLAKY, "codec_error"): 2}
    assert sorted(d.raw_hex for d in letters.recent()) == sorted(
        [b"\xffnot json".hex(), b"\xfeagain".hex()]
    )
    assert {d.reason for d in letters.recent()} == {"codec_error"}
    tracebacks = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(tracebacks) == 1
    assert tracebacks[0].exc_info is not None
    assert "JSONDecodeError" in caplog.text


async def test_pipeline_counts_values_a_codec_dropped_from_a_frame_it_kept(
    tmp_path: Path,
) -> None:
    pipeline, outbox, letters = pipeline_with(tmp_path)
    # WS202: PIR trigger with an undefined daylight byte (5).
    await pipeline.process([frame(bytes.fromhex("017510030001040005"), "lorawan.milesight.ws202")])
    assert {r.metric: r.value for r in await stored(outbox)} == {
        Metric.BATTERY_PCT: 16,
        Metric.OCCUPANCY: True,
    }
    assert pipeline.stats.decode_errors == {("lorawan.milesight.ws202", "undefined_value"): 1}
    assert letters.count() == 0


def chirpstack_source(ctx: SourceContext) -> mqtt_source.MqttSource:
    bindings = BindingsHolder(
        Bindings.build(
            [
                DeviceConfig(
                    id="bin-07",
                    codec="lorawan.milesight.em310_udl",
                    kind=DeviceKind.BIN,
                    dev_eui=DEV_EUI,
                )
            ]
        )
    )
    return mqtt_source.MqttSource(
        name="local-mqtt",
        broker=LocalMqttConfig(chirpstack=ChirpStackConfig()),
        bindings=bindings,
        ctx=ctx,
        client_id="test",
    )


async def test_mqtt_source_survives_an_unforeseen_failure_and_dead_letters_the_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, _outbox, letters = pipeline_with(tmp_path)
    recorder = Recorder()
    ctx = SourceContext(
        recorder.submit,
        recorder.fault,
        pipeline.stats,
        FrozenClock(T0),
        dead_letter=pipeline.dead_letter,
    )
    source = chirpstack_source(ctx)
    encoder = UpEventEncoder(dev_eui=DEV_EUI)
    good = encoder.encode(bytes.fromhex("01755c03824408040001"), 85, T0)
    real_parse = parse_up_event

    def parse(payload: bytes | str) -> object:
        if b"boom" in (payload if isinstance(payload, bytes) else payload.encode()):
            raise RuntimeError("boom")
        return real_parse(payload)

    monkeypatch.setattr(mqtt_source, "parse_up_event", parse)
    topic = encoder.topic
    await source.handle(topic, b'{"boom": 1}')
    await source.handle(topic, json.dumps({"deviceInfo": {}, "data": "é"}).encode())
    await source.handle(topic, good)
    assert [f.device_id for f in recorder.frames] == ["bin-07"]
    stats = pipeline.stats
    assert stats.decode_errors == {(PARSER_ID, "codec_error"): 1, (PARSER_ID, "malformed"): 1}
    assert {d.raw_hex for d in letters.recent()} == {
        b'{"boom": 1}'.hex(),
        json.dumps({"deviceInfo": {}, "data": "é"}).encode().hex(),
    }


async def test_mqtt_source_rejects_an_event_with_non_ascii_data_as_malformed() -> None:
    stats = PipelineStats()
    recorder = Recorder()
    source = chirpstack_source(
        SourceContext(recorder.submit, recorder.fault, stats, FrozenClock(T0))
    )
    event = json.loads(UpEventEncoder(dev_eui=DEV_EUI).encode(b"\x01", 85, T0))
    event["data"] = "AXVc\u00e9"
    await source.handle(UpEventEncoder(dev_eui=DEV_EUI).topic, json.dumps(event).encode())
    assert recorder.frames == []
    assert stats.decode_errors == {(PARSER_ID, "malformed"): 1}


async def test_dc09_receiver_answers_duh_when_its_answer_fails_and_keeps_the_message() -> None:
    def broken(_message: bytes, _now: datetime) -> tuple[bytes, str | None]:
        raise ZeroDivisionError

    recorder = Recorder()
    receiver = Dc09Receiver(
        name="dc09",
        host="127.0.0.1",
        port=0,
        codec_id="ip.sia.dc09",
        answer=broken,
        lookup={"1234": "panel"}.get,
        ctx=SourceContext(recorder.submit, recorder.fault, PipelineStats(), FrozenClock(T0)),
    )
    message = build_message('"NULL"0001L0#1234[]').strip(b"\n\r")
    reply = await receiver._handle(message, "peer")
    assert b'"DUH"' in reply
    assert [f.device_id for f in recorder.frames] == ["panel"]  # the pipeline dead-letters it
    assert receiver.refused == 1


class ExplodingFramer:
    """A framer with a bug: it fails on a 0xEE byte."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()

    def split(self, buf: bytes) -> tuple[int, bytes | None]:
        if b"\xee" in buf:
            raise IndexError("framer bug")
        cut = buf.find(b"\n")
        return (0, None) if cut < 0 else (cut + 1, buf[:cut])


def test_serial_source_survives_a_framer_bug_and_dead_letters_the_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    letters: list[tuple[RawFrame, str, str]] = []
    recorder = Recorder()
    source = SerialSource(
        name="panel",
        port="/dev/null",
        codec_id="serial.ademco.contact_id",
        framer=ExplodingFramer(),
        ctx=SourceContext(
            recorder.submit,
            recorder.fault,
            PipelineStats(),
            FrozenClock(T0),
            dead_letter=lambda f, reason, detail: letters.append((f, reason, detail)),
        ),
    )
    assert source._split(b"half\xee", T0) == []
    assert source._split(b"next\n", T0) == [b"next"]
    ((dead, reason, detail),) = letters
    assert (dead.payload, reason) == (b"half\xee", DecodeReason.CODEC_ERROR.value)
    assert "IndexError" in detail
    assert "framer bug" in caplog.text
