"""The handoff of alarm changes to the work-order service: never lost, urgent first, bursts off the path."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.alarms.handoff import Handoff
from cloud_ingest.infra.schema import alarm_instances
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.ingest.service import IngestService
from cloud_ingest.ingest.work_orders import AlarmInstanceChange
from core.envelope_json import dumps
from core.types import AlarmEvent, AlarmState, Envelope, Severity

NOW = datetime.now(UTC).replace(microsecond=0)


class Recording:
    """A work-order service that keeps what it is handed, or raises while `failing`."""

    def __init__(self, *, failing: bool = False) -> None:
        self.failing = failing
        self.calls: list[list[AlarmInstanceChange]] = []

    async def alarm_instances_changed(self, changes: Sequence[AlarmInstanceChange]) -> None:
        if self.failing:
            raise RuntimeError("the work-order database is away")
        self.calls.append(list(changes))

    @property
    def handed(self) -> list[str]:
        return [c.fingerprint for call in self.calls for c in call]


def alarm(n: int, severity: Severity, seq: int = 1) -> AlarmEvent:
    at = NOW - timedelta(seconds=60 - n)
    return AlarmEvent(
        fingerprint=f"d1/dev-{n}/rule",
        seq=seq,
        state=AlarmState.FIRING,
        severity=severity,
        starts_at=at,
        at=at,
        rule_id="rule",
        device_id=f"dev-{n}",
        location="d1/c1",
    )


def up(*events: AlarmEvent) -> Incoming:
    envelope = Envelope("gw-a", uuid4(), NOW, alarm_events=events)
    return Incoming("steward/v1/gw-a/up", dumps(envelope), NOW)


async def pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).where(alarm_instances.c.handoff_pending.is_(True))
        return int((await conn.execute(query)).scalar_one())


async def test_a_change_the_service_could_not_take_is_handed_over_later(
    engine: AsyncEngine,
) -> None:
    away = Recording(failing=True)
    await IngestService(engine, work_orders=away)([up(alarm(1, Severity.CRITICAL))])
    assert await pending(engine) == 1  # committed, not lost
    # Another process (or this one after a restart) finds it and hands it over, once.
    back = Recording()
    handoff = Handoff(engine, back)
    assert await handoff.run_pending_once() == 1
    assert back.handed == ["d1/dev-1/rule"]
    assert await pending(engine) == 0
    assert await handoff.run_pending_once() == 0


async def test_a_burst_hands_the_urgent_first_and_leaves_the_rest_to_the_worker(
    engine: AsyncEngine,
) -> None:
    service_side = Recording()
    ingest = IngestService(engine, work_orders=service_side)
    ingest.handoff.inline_max = 4
    events = [alarm(n, Severity.CRITICAL if n % 3 == 0 else Severity.WARNING) for n in range(12)]
    await ingest([up(*events)])
    inline = service_side.handed
    assert inline == ["d1/dev-0/rule", "d1/dev-3/rule", "d1/dev-6/rule", "d1/dev-9/rule"]
    assert await pending(engine) == 8
    ingest.handoff.start()
    try:
        for _ in range(200):  # the worker runs in the background: up to 10 s
            if not await pending(engine):
                break
            await asyncio.sleep(0.05)
    finally:
        await ingest.handoff.stop()
    assert sorted(service_side.handed) == sorted(e.fingerprint for e in events)
    assert len(service_side.handed) == len(events)  # each once


async def test_a_newer_change_made_while_one_is_handed_keeps_its_mark(
    engine: AsyncEngine,
) -> None:
    recorder = Recording()
    ingest = IngestService(engine, work_orders=Recording(failing=True))
    await ingest([up(alarm(1, Severity.CRITICAL, seq=1))])
    handoff = Handoff(engine, recorder)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(alarm_instances))).mappings().all()
    old = [
        AlarmInstanceChange(
            **{k: rows[0][k] for k in AlarmInstanceChange.__dataclass_fields__ if k in rows[0]}
        )
    ]
    await ingest([up(alarm(1, Severity.CRITICAL, seq=2))])  # newer, while `old` is in flight
    await handoff.hand_over(old)
    assert await pending(engine) == 1  # the mark of seq 2 stays
    assert await handoff.run_pending_once() == 1
    assert [c.last_seq for call in recorder.calls for c in call] == [1, 2]
    assert await pending(engine) == 0
