from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Reading, Severity
from edge_agent.outbox.base import Outbox
from edge_agent.outbox.memory import MemoryOutbox
from edge_agent.outbox.sqlite import SqliteOutbox

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

Factory = Callable[[], Awaitable[Outbox]]


def reading(n: int) -> Reading:
    return Reading("bin-1", Metric.FILL_PCT, float(n), T0 + timedelta(seconds=n))


def alarm(seq: int) -> AlarmEvent:
    return AlarmEvent(
        fingerprint="site/smoke-1/smoke",
        seq=seq,
        state=AlarmState.FIRING,
        severity=Severity.CRITICAL,
        starts_at=T0,
        at=T0,
        rule_id="smoke",
        device_id="smoke-1",
    )


@pytest.fixture(params=["memory", "sqlite"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    made: list[Outbox] = []

    async def factory() -> Outbox:
        outbox: Outbox = (
            MemoryOutbox()
            if request.param == "memory"
            else await SqliteOutbox.create(tmp_path / f"o{len(made)}.db")
        )
        made.append(outbox)
        return outbox

    yield factory
    for outbox in made:
        await outbox.close()


async def test_end_and_begin_equals_end_then_begin(make: Factory) -> None:
    a, b = await make(), await make()
    for outbox in (a, b):
        await outbox.put([reading(n) for n in range(10)], [alarm(1)])
    first_a, first_b = await a.begin(4), await b.begin(4)
    assert first_a is not None
    assert first_b is not None
    await a.put([reading(99)], [alarm(2)])
    await b.put([reading(99)], [alarm(2)])
    await a.end(first_a, accepted=first_a.ids)
    next_a = await a.begin(4)
    next_b = await b.end_and_begin(first_b, first_b.ids, 4)
    assert next_a is not None
    assert next_b is not None
    assert [r.item for r in next_b.records] == [r.item for r in next_a.records]
    assert next_b.records[0].item == alarm(2)  # alarms still leave first
    assert await b.begin(100) == next_b  # the new batch is the open one
    assert await a.stats() == await b.stats()


async def test_end_and_begin_with_nothing_accepted_keeps_the_batch(make: Factory) -> None:
    outbox = await make()
    await outbox.put([reading(n) for n in range(3)])
    batch = await outbox.begin(2)
    assert batch is not None
    assert await outbox.end_and_begin(batch, (), 2) == batch


async def test_end_and_begin_of_the_last_batch_leaves_nothing_open(make: Factory) -> None:
    outbox = await make()
    await outbox.put([reading(1)])
    batch = await outbox.begin(5)
    assert batch is not None
    assert await outbox.end_and_begin(batch, batch.ids, 5) is None
    assert (await outbox.stats()).depth == 0


async def test_the_batch_opened_survives_a_restart(tmp_path: Path) -> None:
    outbox = await SqliteOutbox.create(tmp_path / "o.db")
    await outbox.put([reading(n) for n in range(6)])
    batch = await outbox.begin(3)
    assert batch is not None
    following = await outbox.end_and_begin(batch, batch.ids, 3)
    await outbox.close()
    again = await SqliteOutbox.create(tmp_path / "o.db")
    try:
        assert following is not None
        assert await again.begin(3) == following
        assert (await again.stats()).depth == 3
    finally:
        await again.close()
