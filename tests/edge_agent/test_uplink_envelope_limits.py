"""A gateway never builds an envelope the cloud refuses.

The uplink's batch caps keep every envelope within `ENVELOPE_LIMITS.max_bytes` and its record
counts, even when every record is as large as the format allows; records the format refuses (a NaN,
an id over its limit) never reach the outbox: the pipeline leaves such readings out and repairs
such alarm events, counting each, instead of failing the store.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.clock import FrozenClock
from core.envelope_json import alarm_event_text, loads
from core.errors import EnvelopeError
from core.metrics import Metric
from core.types import (
    ENVELOPE_LIMITS,
    AlarmEvent,
    AlarmState,
    DecodeResult,
    Priority,
    RawFrame,
    Reading,
    Severity,
    WorkOrderHint,
)
from edge_agent.dead_letter import DeadLetterStore
from edge_agent.outbox import OutboxLimits
from edge_agent.outbox.base import Outbox
from edge_agent.outbox.memory import MemoryOutbox
from edge_agent.outbox.sqlite import SqliteOutbox
from edge_agent.pipeline import Pipeline
from edge_agent.selfstats import SELF_CODEC
from edge_agent.uplink_settings import MAX_BATCH_BYTES, MAX_BATCH_ITEMS, UplinkSettings
from firmware_adapters.codec import Codec, DeviceClass

T0 = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)
LIMITS = ENVELOPE_LIMITS
WIDE = "\x01"  # written as \u0001: six bytes for one character, the most any character takes
UNBOUNDED = OutboxLimits(max_records=None, max_bytes=None)


def test_batch_settings_are_capped_to_the_envelope_limits() -> None:
    assert min(LIMITS.max_readings, LIMITS.max_alarm_events) >= MAX_BATCH_ITEMS
    UplinkSettings(batch_max=MAX_BATCH_ITEMS, batch_max_bytes=MAX_BATCH_BYTES)
    with pytest.raises(ValidationError):
        UplinkSettings(batch_max=MAX_BATCH_ITEMS + 1)
    with pytest.raises(ValidationError):
        UplinkSettings(batch_max_bytes=MAX_BATCH_BYTES + 1)


def _widest_event(seq: int) -> AlarmEvent:
    """An alarm event with every string, evidence entry and suppression at its limit."""
    evidence: dict[str, str | int | float | bool] = {
        f"{i:03d}{WIDE * (LIMITS.evidence_key_chars - 3)}": WIDE * LIMITS.evidence_text_chars
        for i in range(LIMITS.evidence_items)
    }
    return AlarmEvent(
        fingerprint=WIDE * LIMITS.fingerprint,
        seq=seq,
        state=AlarmState.FIRING,
        severity=Severity.CRITICAL,
        starts_at=T0,
        at=T0,
        rule_id=WIDE * LIMITS.rule_id,
        device_id=WIDE * LIMITS.device_id,
        location=WIDE * LIMITS.location,
        description=WIDE * LIMITS.description,
        valid_until=T0,
        value=-1.2345678901234567e-300,
        evidence=evidence,
        suppressed=(WIDE * LIMITS.suppressed_chars,) * LIMITS.suppressed_items,
        work_order=WorkOrderHint(WIDE * LIMITS.category, Priority.URGENT),
        rule_version=WIDE * LIMITS.rule_version,
    )


def _widest_reading(n: int) -> Reading:
    device = f"{n:06d}{WIDE * (LIMITS.device_id - 6)}"
    return Reading(device, Metric.DISTANCE_MM, -1.2345678901234567e-300, T0, codec_id=WIDE * 256)


def _smallest_reading(n: int) -> Reading:
    return Reading(f"{n}", Metric.SMOKE, value=True, ts=T0)


async def _outbox(kind: str, tmp_path: Path) -> Outbox:
    if kind == "memory":
        return MemoryOutbox(UNBOUNDED)
    return await SqliteOutbox.create(tmp_path / "outbox.sqlite3", UNBOUNDED)


async def _envelope_sizes(outbox: Outbox, settings: UplinkSettings) -> list[int]:
    """Drain `outbox` the way the uplink does; check each envelope loads; return their sizes."""
    sizes = []
    gateway_id = WIDE * LIMITS.gateway_id
    while (batch := await outbox.begin(settings.batch_max, settings.batch_max_bytes)) is not None:
        payload = batch.envelope(gateway_id, T0)
        envelope = loads(payload)
        assert len(envelope.readings) + len(envelope.alarm_events) == len(batch.records)
        sizes.append(len(payload))
        await outbox.end(batch, accepted=batch.ids)
    return sizes


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_the_widest_records_stay_within_the_envelope_limit(kind: str, tmp_path: Path) -> None:
    event_bytes = len(alarm_event_text(_widest_event(1)).encode())
    assert event_bytes < LIMITS.max_bytes - MAX_BATCH_BYTES - MAX_BATCH_ITEMS - 2_000
    outbox = await _outbox(kind, tmp_path)
    events = [_widest_event(seq) for seq in range(1, 8)]
    readings = [_widest_reading(n) for n in range(600)]
    await outbox.put(readings, events)
    settings = UplinkSettings(batch_max=MAX_BATCH_ITEMS, batch_max_bytes=MAX_BATCH_BYTES)
    sizes = await _envelope_sizes(outbox, settings)
    assert max(sizes) <= LIMITS.max_bytes
    assert max(sizes) > MAX_BATCH_BYTES * 0.9  # batches were filled to the byte cap
    await outbox.close()


async def test_the_most_records_stay_within_the_envelope_limits(tmp_path: Path) -> None:
    outbox = await _outbox("sqlite", tmp_path)
    await outbox.put([_smallest_reading(n) for n in range(MAX_BATCH_ITEMS + 10)])
    settings = UplinkSettings(batch_max=MAX_BATCH_ITEMS, batch_max_bytes=MAX_BATCH_BYTES)
    sizes = await _envelope_sizes(outbox, settings)
    assert len(sizes) == 2  # the first batch held the most records an envelope may carry
    await outbox.close()


# --- the pipeline keeps refused records out of the outbox ---------------------------------------


class NanEngine:
    """Reports, for every reading, an alarm event whose evidence holds a NaN."""

    def observe(self, reading: Reading, now: datetime) -> list[AlarmEvent]:
        return [
            AlarmEvent(
                fingerprint=f"site/{reading.device_id[:20]}/rate",
                seq=1,
                state=AlarmState.FIRING,
                severity=Severity.WARNING,
                starts_at=now,
                at=now,
                rule_id="rate",
                device_id=reading.device_id[:20],
                value=math.nan,
                evidence={"rate_per_s": math.nan, "window": 5},
            )
        ]

    def tick(self, now: datetime) -> list[AlarmEvent]:  # noqa: ARG002 - the protocol's
        return []


CODEC_ID = "ip.test.pair"
LONG_DEVICE = "d" * (LIMITS.device_id + 1)


def _pair(frame: RawFrame) -> DecodeResult:
    """Two readings: a good one, and one whose device id is over the envelope's limit."""
    good = Reading("bin-1", Metric.FILL_PCT, 40.0, frame.received_at, codec_id=CODEC_ID)
    return DecodeResult((good, dataclasses.replace(good, device_id=LONG_DEVICE)))


async def test_the_pipeline_drops_and_repairs_refused_records(tmp_path: Path) -> None:
    outbox = await SqliteOutbox.create(tmp_path / "outbox.sqlite3")
    codec = Codec(
        id=CODEC_ID,
        device_class=DeviceClass.GENERIC,
        description="test",
        decode=_pair,
        encode=lambda _values: b"",
        vectors=Path("none"),
    )
    pipeline = Pipeline(
        gateway_id="gw-01",
        codecs={CODEC_ID: codec},
        engine=NanEngine(),
        outbox=outbox,
        dead_letters=DeadLetterStore(tmp_path / "dead.sqlite3"),
        clock=FrozenClock(T0),
    )
    await pipeline.process([RawFrame("src", CODEC_ID, b"\x00", T0, {"device_id": "bin-1"})])
    await pipeline.report_fault(LONG_DEVICE, faulty=True)

    batch = await outbox.begin(100)
    assert batch is not None
    envelope = loads(batch.envelope("gw-01", T0))
    assert [r.device_id for r in envelope.readings] == ["bin-1"]
    assert len(envelope.alarm_events) == 3  # every alarm kept, repaired
    assert {e.value for e in envelope.alarm_events} == {None}
    assert {tuple(e.evidence.items()) for e in envelope.alarm_events} == {(("window", 5),)}
    errors = pipeline.stats.decode_errors
    assert errors[CODEC_ID, "envelope_too_large"] == 1
    assert errors[SELF_CODEC, "envelope_too_large"] == 1
    assert errors["rules", "envelope_non_finite"] == 3
    await outbox.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_put_the_envelope_refuses_stores_nothing(kind: str, tmp_path: Path) -> None:
    outbox = await _outbox(kind, tmp_path)
    good = _smallest_reading(1)
    bad = dataclasses.replace(_smallest_reading(2), metric=Metric.DISTANCE_MM, value=math.nan)
    with pytest.raises(EnvelopeError):
        await outbox.put([good, bad])
    stats = await outbox.stats()
    assert (stats.depth, stats.alarm_depth) == (0, 0)
    await outbox.put([good])
    assert (await outbox.stats()).depth == 1
    await outbox.close()
