import asyncio
import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.clock import FrozenClock
from core.derived import parse_derivations
from core.envelope_json import reading_from_json, reading_text
from core.metrics import Metric, Quality
from core.types import AlarmEvent, AlarmState, DecodeResult, RawFrame, Reading, Severity
from edge_agent.dead_letter import DeadLetterStore
from edge_agent.outbox.memory import MemoryOutbox
from edge_agent.pipeline import UNKNOWN_CODEC, Pipeline
from firmware_adapters.codec import Codec, DeviceClass
from firmware_adapters.errors import DecodeError, DecodeReason

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
CODEC_ID = "ip.test.json"


def decode_json(frame: RawFrame) -> DecodeResult:
    """A small JSON codec: {"smoke": bool, "temperature_c": float}."""
    try:
        doc = json.loads(frame.payload)
    except ValueError as err:
        raise DecodeError(CODEC_ID, DecodeReason.MALFORMED, str(err), frame.payload) from err
    if not isinstance(doc, dict):
        raise DecodeError(CODEC_ID, DecodeReason.MALFORMED, "not an object", frame.payload)
    readings = [
        Reading(frame.device_id, Metric(key), value, frame.received_at, codec_id=CODEC_ID)
        for key, value in doc.items()
    ]
    return DecodeResult(tuple(readings))


def crash(frame: RawFrame) -> DecodeResult:
    raise ZeroDivisionError(frame.payload.hex())


def make_codec(codec_id: str, decode: object) -> Codec:
    return Codec(
        id=codec_id,
        device_class=DeviceClass.GENERIC,
        description="test",
        decode=decode,  # type: ignore[arg-type]
        encode=lambda _values: b"",
        vectors=Path("none"),
    )


class SmokeEngine:
    """Fires one event per smoke=True reading, the way the rule engine reports."""

    def __init__(self) -> None:
        self.seq = 0
        self.ticks: list[datetime] = []

    def observe(self, reading: Reading, now: datetime) -> list[AlarmEvent]:
        if reading.metric is not Metric.SMOKE or reading.value is not True:
            return []
        self.seq += 1
        return [
            AlarmEvent(
                fingerprint=f"site/{reading.device_id}/smoke",
                seq=self.seq,
                state=AlarmState.FIRING,
                severity=Severity.CRITICAL,
                starts_at=now,
                at=now,
                rule_id="smoke",
                device_id=reading.device_id,
            )
        ]

    def tick(self, now: datetime) -> list[AlarmEvent]:
        self.ticks.append(now)
        return []


def frame(payload: bytes, device: str = "smoke-1", codec: str = CODEC_ID) -> RawFrame:
    return RawFrame("test", codec, payload, T0, {"device_id": device})


Parts = tuple[Pipeline, MemoryOutbox, DeadLetterStore, SmokeEngine]


@pytest.fixture
def parts(tmp_path: Path) -> Parts:
    outbox = MemoryOutbox()
    letters = DeadLetterStore(tmp_path / "dead.sqlite3")
    engine = SmokeEngine()
    pipeline = Pipeline(
        gateway_id="gw-01",
        codecs={
            CODEC_ID: make_codec(CODEC_ID, decode_json),
            "ip.test.crash": make_codec("ip.test.crash", crash),
        },
        engine=engine,
        outbox=outbox,
        dead_letters=letters,
        clock=FrozenClock(T0),
        queue_size=4,
        batch_size=3,
    )
    return pipeline, outbox, letters, engine


async def drain_outbox(outbox: MemoryOutbox) -> tuple[list[Reading], list[AlarmEvent]]:
    batch = await outbox.begin(10_000)
    if batch is None:
        return [], []
    await outbox.end(batch, accepted=batch.ids)
    return list(batch.readings), list(batch.alarm_events)


async def test_frames_become_readings_and_alarms_in_order(parts: Parts) -> None:
    pipeline, outbox, _, _ = parts
    worker = asyncio.create_task(pipeline.run())
    for i in range(10):
        await pipeline.submit(frame(json.dumps({"temperature_c": 20 + i}).encode()))
    await pipeline.submit(frame(b'{"smoke": true}'))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not pipeline.queued and (await outbox.stats()).depth == 12:
            break
    worker.cancel()
    readings, events = await drain_outbox(outbox)
    assert [r.value for r in readings if r.metric is Metric.TEMPERATURE_C] == [
        20 + i for i in range(10)
    ]
    assert [e.fingerprint for e in events] == ["site/smoke-1/smoke"]
    assert pipeline.stats.frames_in == 11
    assert pipeline.stats.alarms == 1


async def test_out_of_range_values_are_kept_and_flagged(parts: Parts) -> None:
    pipeline, outbox, _, _ = parts
    await pipeline.process([frame(b'{"temperature_c": 900}'), frame(b'{"temperature_c": 21}')])
    readings, _ = await drain_outbox(outbox)
    assert [(r.value, r.quality) for r in readings] == [
        (900, Quality.OUT_OF_RANGE),
        (21, Quality.GOOD),
    ]


async def test_undecodable_frames_go_to_dead_letters_and_counters(parts: Parts) -> None:
    pipeline, outbox, letters, _ = parts
    await pipeline.process(
        [
            frame(b"\x00garbage"),
            frame(b"[1]"),
            frame(b"\x01", codec="ip.nobody.nothing"),
            frame(b"\x02", codec="ip.test.crash"),
            frame(b'{"smoke": false}'),
        ]
    )
    readings, _ = await drain_outbox(outbox)
    assert [r.metric for r in readings] == [Metric.SMOKE]
    assert pipeline.stats.decode_errors == {
        (CODEC_ID, "malformed"): 2,
        ("ip.nobody.nothing", UNKNOWN_CODEC): 1,
        ("ip.test.crash", "codec_error"): 1,
    }
    stored = letters.recent()
    assert len(stored) == 4
    assert {d.raw_hex for d in stored} == {b"\x00garbage".hex(), b"[1]".hex(), "01", "02"}
    assert letters.expire(T0 + timedelta(days=6)) == 0
    assert letters.expire(T0 + timedelta(days=8)) == 4
    assert letters.count() == 0


async def test_full_queue_applies_backpressure_and_offer_drops_and_counts(parts: Parts) -> None:
    pipeline, _, _, _ = parts
    for _ in range(4):
        await pipeline.submit(frame(b"{}"))
    blocked = asyncio.create_task(pipeline.submit(frame(b"{}")))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    assert pipeline.offer(frame(b"{}")) is False
    assert pipeline.stats.frames_dropped == 1
    await pipeline.drain()
    await asyncio.wait_for(blocked, 1)
    await pipeline.drain()
    assert pipeline.queued == 0
    assert pipeline.stats.frames_in == 5


async def test_self_statistics_are_readings_of_the_gateway(parts: Parts) -> None:
    pipeline, outbox, _, _ = parts
    await pipeline.submit(frame(b"nope"))
    await pipeline.submit(frame(b'{"smoke": true}'))
    await pipeline.drain()
    await pipeline.report_fault("smoke-2", faulty=True)
    pipeline.stats.count_skipped("lora", "lorawan_unbound", 3)
    stats = await pipeline.publish_stats()
    by_metric = {(r.metric, r.codec_id): r.value for r in stats}
    assert all(r.device_id == "gw-01" for r in stats)
    assert by_metric[Metric.FRAMES_IN_TOTAL, "edge_agent"] == 2
    assert by_metric[Metric.DECODE_ERRORS_TOTAL, "edge_agent"] == 1
    assert by_metric[Metric.DECODE_ERRORS_TOTAL, f"edge_agent:{CODEC_ID}:malformed"] == 1
    assert by_metric[Metric.ALARMS_TOTAL, "edge_agent"] == 1
    assert by_metric[Metric.FRAMES_SKIPPED_TOTAL, "edge_agent"] == 3
    assert by_metric[Metric.FRAMES_SKIPPED_TOTAL, "edge_agent:lora:lorawan_unbound"] == 3
    assert by_metric[Metric.OUTBOX_DEPTH, "edge_agent"] == 3  # smoke reading, alarm, fault reading
    readings, _ = await drain_outbox(outbox)
    assert any(
        r.device_id == "smoke-2" and r.metric is Metric.FAULT and r.value is True for r in readings
    )


async def test_tick_stores_time_driven_events(parts: Parts) -> None:
    pipeline, _, _, engine = parts
    await pipeline.tick()
    assert engine.ticks == [T0]


async def test_durable_submit_returns_only_after_the_outbox_has_the_results(parts: Parts) -> None:
    pipeline, outbox, _, _ = parts
    waiting = asyncio.create_task(pipeline.submit_durable(frame(b'{"smoke": true}')))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert (await outbox.stats()).depth == 0
    worker = asyncio.create_task(pipeline.run())
    await asyncio.wait_for(waiting, 2)
    assert (await outbox.stats()).depth == 2  # the reading and its alarm event
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)


async def test_two_readings_of_one_device_in_the_same_millisecond_are_both_kept(
    parts: Parts,
) -> None:
    pipeline, outbox, _, _ = parts
    await pipeline.process([frame(b'{"temperature_c": 21.0}'), frame(b'{"temperature_c": 21.5}')])
    readings, _ = await drain_outbox(outbox)
    assert [(r.ts, r.value) for r in readings] == [(T0, 21.0), (T0, 21.5)]


class FlakyOutbox(MemoryOutbox):
    """Fails the first writes like a full disk, then recovers."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def put(
        self,
        readings: Sequence[Reading] = (),
        events: Sequence[AlarmEvent] = (),
        *,
        state: str | None = None,
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database or disk is full")
        await super().put(readings, events, state=state)


async def test_a_failing_outbox_write_is_retried_without_losing_or_repeating(
    tmp_path: Path,
) -> None:
    outbox = FlakyOutbox(failures=2)
    engine = SmokeEngine()
    pipeline = Pipeline(
        gateway_id="gw-01",
        codecs={CODEC_ID: make_codec(CODEC_ID, decode_json)},
        engine=engine,
        outbox=outbox,
        dead_letters=DeadLetterStore(tmp_path / "dead.sqlite3"),
        clock=FrozenClock(T0),
    )
    await pipeline.process([frame(b'{"smoke": true}')])
    readings, events = await drain_outbox(outbox)
    assert len(readings) == 1
    assert [e.seq for e in events] == [1]
    assert pipeline.stats.store_failures == 2


async def test_bindings_derive_what_rules_watch_in_the_pipeline(parts: Parts) -> None:
    """A fence contact becomes an intrusion, a distance a fill level; both reach rules and outbox."""
    pipeline, outbox, _, engine = parts
    seen: list[Reading] = []
    observe = engine.observe

    def recording(reading: Reading, now: datetime) -> list[AlarmEvent]:
        seen.append(reading)
        return observe(reading, now)

    engine.observe = recording  # type: ignore[method-assign]
    pipeline.set_derivations(
        {
            "gate-1": parse_derivations({"smoke": {"from": ["contact_open", "occupancy"]}}),
            "bin-1": parse_derivations(
                {"fill_pct": {"from": "distance_mm", "empty_mm": 1350, "full_mm": 150}}
            ),
        }
    )
    await pipeline.process(
        [
            frame(b'{"contact_open": true}', device="gate-1"),
            frame(b'{"occupancy": false}', device="gate-1"),
            frame(b'{"distance_mm": 300}', device="bin-1"),
            frame(b'{"distance_mm": 300}', device="other-bin"),
        ]
    )
    readings, events = await drain_outbox(outbox)
    derived = [(r.device_id, r.metric, r.value, r.derived_from) for r in readings if r.derived_from]
    assert derived == [
        ("gate-1", Metric.SMOKE, True, Metric.CONTACT_OPEN),
        # the PIR quiet while the contact is still open: still true
        ("gate-1", Metric.SMOKE, True, Metric.OCCUPANCY),
        ("bin-1", Metric.FILL_PCT, 87.5, Metric.DISTANCE_MM),
    ]
    assert [r.metric for r in seen].count(Metric.FILL_PCT) == 1
    assert len(readings) == 7
    assert [e.device_id for e in events] == ["gate-1", "gate-1"]
    text = reading_text(readings[1])
    assert '"from":"contact_open"' in text
    assert reading_from_json(json.loads(text)).derived_from is Metric.CONTACT_OPEN
