"""One behaviour suite for every Outbox implementation (Telegraf buffer_suite_test.go style)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.metrics import Metric, Quality
from core.types import AlarmEvent, AlarmState, Priority, Reading, Severity, WorkOrderHint
from edge_agent.outbox import Outbox, OutboxError, OutboxLimits, RecordKind
from edge_agent.outbox.memory import MemoryOutbox
from edge_agent.outbox.sqlite import SqliteOutbox

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

OutboxFactory = Callable[[OutboxLimits | None], Awaitable[Outbox]]


def reading(n: int, device: str = "bin-1", ts: datetime | None = None) -> Reading:
    return Reading(
        device_id=device,
        metric=Metric.FILL_PCT,
        value=float(n),
        ts=ts or T0 + timedelta(seconds=n),
        quality=Quality.GOOD,
        codec_id="lorawan.milesight.em400_udl",
    )


def alarm(seq: int, device: str = "smoke-1") -> AlarmEvent:
    return AlarmEvent(
        fingerprint=f"site/{device}/smoke",
        seq=seq,
        state=AlarmState.FIRING,
        severity=Severity.CRITICAL,
        starts_at=T0,
        at=T0 + timedelta(seconds=seq),
        rule_id="smoke",
        device_id=device,
        location="d1/s1/c1/g1/cp1/b1/u1",
        description="A smoke detector reports smoke — 烟雾报警.",
        valid_until=T0 + timedelta(minutes=5),
        value=True,
        evidence={"smoke_pct": 12.5, "source": "detector"},
        suppressed=("maintenance",),
        work_order=WorkOrderHint("fire", Priority.URGENT),
        rule_version="r1",
    )


@pytest.fixture(params=["memory", "sqlite"])
async def make_outbox(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[OutboxFactory]:
    made: list[Outbox] = []

    async def factory(limits: OutboxLimits | None = None) -> Outbox:
        outbox: Outbox
        if request.param == "memory":
            outbox = MemoryOutbox(limits)
        else:
            outbox = await SqliteOutbox.create(tmp_path / f"outbox{len(made)}.db", limits)
        made.append(outbox)
        return outbox

    yield factory
    for outbox in made:
        await outbox.close()


async def drain(outbox: Outbox, max_items: int = 1000) -> list[Reading | AlarmEvent]:
    out: list[Reading | AlarmEvent] = []
    while (batch := await outbox.begin(max_items)) is not None:
        out += [r.item for r in batch.records]
        await outbox.end(batch, accepted=batch.ids)
    return out


async def test_empty_outbox_has_no_batch(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    assert await outbox.begin(10) is None
    stats = await outbox.stats()
    assert (stats.depth, stats.alarm_depth, stats.dropped_telemetry, stats.bytes) == (0, 0, 0, 0)


async def test_telemetry_leaves_in_insertion_order(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    for start in range(0, 30, 7):
        await outbox.put([reading(n) for n in range(start, min(start + 7, 30))])
    assert (await outbox.stats()).depth == 30
    assert await drain(outbox, max_items=4) == [reading(n) for n in range(30)]
    stats = await outbox.stats()
    assert (stats.depth, stats.bytes) == (0, 0)


async def test_alarms_leave_before_telemetry(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    await outbox.put([reading(1), reading(2)])
    await outbox.put([reading(3)], [alarm(1)])
    await outbox.put(events=[alarm(2)])
    batch = await outbox.begin(3)
    assert batch is not None
    assert [r.kind for r in batch.records] == [
        RecordKind.ALARM,
        RecordKind.ALARM,
        RecordKind.READING,
    ]
    assert batch.alarm_events == (alarm(1), alarm(2))
    assert batch.readings == (reading(1),)
    assert (await outbox.stats()).alarm_depth == 2
    await outbox.end(batch, accepted=batch.ids)
    assert await drain(outbox) == [reading(2), reading(3)]


async def test_records_round_trip_exactly(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    odd = Reading("dev/ü", Metric.SMOKE, value=True, ts=T0, quality=Quality.SUSPECT)
    await outbox.put([odd, reading(5)], [alarm(7)])
    drained = await drain(outbox)
    assert drained == [alarm(7), odd, reading(5)]
    event = drained[0]
    assert isinstance(event, AlarmEvent)
    assert event.description == "A smoke detector reports smoke — 烟雾报警."
    assert event.work_order == WorkOrderHint("fire", Priority.URGENT)


async def test_same_millisecond_readings_are_both_kept(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    same = [reading(1, ts=T0), reading(2, ts=T0), reading(2, ts=T0)]
    await outbox.put(same[:1])
    await outbox.put(same[1:])
    assert await drain(outbox) == same


async def test_bound_drops_oldest_telemetry_never_alarms(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(OutboxLimits(max_records=5, max_bytes=None))
    await outbox.put([reading(n) for n in range(4)], [alarm(1), alarm(2)])
    await outbox.put([reading(n) for n in range(4, 8)], [alarm(3)])
    stats = await outbox.stats()
    assert stats.dropped_telemetry == 3
    assert stats.alarm_depth == 3
    assert stats.depth == 8
    await outbox.put([reading(n) for n in range(8, 20)])
    assert (await outbox.stats()).dropped_telemetry == 15
    assert await drain(outbox) == [alarm(1), alarm(2), alarm(3)] + [
        reading(n) for n in range(15, 20)
    ]


async def test_byte_bound_drops_oldest_telemetry(make_outbox: OutboxFactory) -> None:
    probe = await make_outbox(None)
    await probe.put([reading(1)])
    one = (await probe.stats()).bytes
    outbox = await make_outbox(OutboxLimits(max_records=None, max_bytes=3 * one + one // 2))
    await outbox.put([reading(n) for n in range(1, 8)], [alarm(1)])
    stats = await outbox.stats()
    assert stats.dropped_telemetry == 4
    assert await drain(outbox) == [alarm(1), reading(5), reading(6), reading(7)]


async def test_bound_never_drops_the_open_batch(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(OutboxLimits(max_records=3, max_bytes=None))
    await outbox.put([reading(n) for n in range(3)])
    batch = await outbox.begin(2)
    assert batch is not None
    await outbox.put([reading(n) for n in range(3, 6)])
    assert await outbox.begin(2) == batch
    assert (await outbox.stats()).dropped_telemetry == 3
    await outbox.end(batch, accepted=batch.ids)
    assert await drain(outbox) == [reading(5)]


async def test_rebegin_returns_the_same_batch(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    await outbox.put([reading(n) for n in range(5)], [alarm(1)])
    first = await outbox.begin(3)
    assert first is not None
    await outbox.put([reading(9)], [alarm(2)])
    again = await outbox.begin(10)
    assert again is not None
    assert again.batch_id == first.batch_id
    assert again.records == first.records
    assert (await outbox.stats()).in_flight == 3


async def test_end_without_outcome_keeps_the_batch_open(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    await outbox.put([reading(n) for n in range(3)])
    batch = await outbox.begin(2)
    assert batch is not None
    await outbox.end(batch, accepted=[])
    retry = await outbox.begin(2)
    assert retry == batch


async def test_partial_accept_requeues_the_rest_in_place(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    await outbox.put([reading(n) for n in range(6)], [alarm(1)])
    batch = await outbox.begin(4)
    assert batch is not None
    assert batch.records[0].item == alarm(1)
    await outbox.end(batch, accepted=[batch.ids[0], batch.ids[2]])
    assert (await outbox.stats()).depth == 5
    rest = await outbox.begin(10)
    assert rest is not None
    assert rest.batch_id != batch.batch_id
    assert list(rest.readings) == [reading(0), reading(2), reading(3), reading(4), reading(5)]


async def test_rejected_records_are_removed_and_counted(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    await outbox.put([reading(n) for n in range(4)])
    batch = await outbox.begin(3)
    assert batch is not None
    await outbox.end(batch, accepted=batch.ids[:1], rejected=batch.ids[1:2])
    stats = await outbox.stats()
    assert (stats.depth, stats.rejected, stats.in_flight) == (2, 1, 0)
    assert await drain(outbox) == [reading(2), reading(3)]


async def test_end_checks_batch_and_ids(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    await outbox.put([reading(n) for n in range(4)])
    batch = await outbox.begin(2)
    assert batch is not None
    with pytest.raises(OutboxError, match="not in batch"):
        await outbox.end(batch, accepted=[batch.ids[0], 999])
    await outbox.end(batch, accepted=batch.ids)
    with pytest.raises(OutboxError, match="not the open batch"):
        await outbox.end(batch, accepted=batch.ids)
    assert await drain(outbox) == [reading(2), reading(3)]


async def test_begin_respects_max_bytes_but_takes_one(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    await outbox.put([reading(n) for n in range(10)])
    one = (await outbox.stats()).bytes // 10
    batch = await outbox.begin(100, max_bytes=3 * one + 1)
    assert batch is not None
    assert len(batch.records) == 3
    await outbox.end(batch, accepted=batch.ids)
    single = await outbox.begin(100, max_bytes=1)
    assert single is not None
    assert len(single.records) == 1


async def test_wait_ready_wakes_on_put_and_times_out(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    stats = await outbox.wait_ready(1, timeout=0.05)
    assert stats.depth == 0
    waiter = asyncio.create_task(outbox.wait_ready(3, timeout=10))
    await outbox.put([reading(1)])
    await asyncio.sleep(0.02)
    assert not waiter.done()
    await outbox.put([reading(2), reading(3)])
    assert (await asyncio.wait_for(waiter, 5)).depth == 3
    # An alarm makes the outbox ready at once, whatever the batch size.
    await outbox.put(events=[alarm(1)])
    assert (await outbox.wait_ready(100, timeout=10)).alarm_depth == 1


async def test_closed_outbox_refuses_work(make_outbox: OutboxFactory) -> None:
    outbox = await make_outbox(None)
    await outbox.close()
    with pytest.raises(OutboxError):
        await outbox.put([reading(1)])


async def test_a_put_may_carry_the_state_text_kept_with_its_records(
    make_outbox: OutboxFactory,
) -> None:
    outbox = await make_outbox(None)
    assert await outbox.saved_state() is None
    await outbox.put([reading(1)], [alarm(1)], state='{"seq": 1}')
    await outbox.put([reading(2)])  # no state: the last one stays
    assert await outbox.saved_state() == '{"seq": 1}'
    await outbox.put(state='{"seq": 2}')  # the state alone adds no record
    assert await outbox.saved_state() == '{"seq": 2}'
    assert (await outbox.stats()).depth == 3


async def test_the_state_text_survives_a_restart(tmp_path: Path) -> None:
    outbox = await SqliteOutbox.create(tmp_path / "o.db")
    await outbox.put([reading(1)], state="kept")
    await outbox.close()
    reopened = await SqliteOutbox.create(tmp_path / "o.db")
    try:
        assert await reopened.saved_state() == "kept"
    finally:
        await reopened.close()


# Operations: ("put", readings, alarms) or ("send", max_items, how) where how picks the outcome.
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 6), st.integers(0, 2)),
        st.tuples(st.just("send"), st.integers(1, 5), st.sampled_from(["all", "none", "half"])),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(ops=_ops, bound=st.integers(3, 12))
def test_memory_and_sqlite_agree(ops: list[tuple[str, int, object]], bound: int) -> None:
    async def run(outbox: Outbox) -> tuple[list[object], tuple[int, int, int]]:
        n = 0
        delivered: list[object] = []
        for op, a, b in ops:
            if op == "put":
                await outbox.put(
                    [reading(n + i) for i in range(a)], [alarm(n + i) for i in range(int(str(b)))]
                )
                n += 10
                continue
            batch = await outbox.begin(a)
            if batch is None:
                continue
            ids = {"all": batch.ids, "none": (), "half": batch.ids[::2]}[str(b)]
            delivered += [r.item for r in batch.records if r.id in ids]
            await outbox.end(batch, accepted=ids)
        stats = await outbox.stats()
        delivered += await drain(outbox)
        await outbox.close()
        return delivered, (stats.depth, stats.alarm_depth, stats.dropped_telemetry)

    limits = OutboxLimits(max_records=bound, max_bytes=None)
    with tempfile.TemporaryDirectory() as tmp:
        mem = asyncio.run(run(MemoryOutbox(limits)))
        sql = asyncio.run(_sqlite_run(run, Path(tmp) / "o.db", limits))
    assert mem == sql
    alarms = [x for x in mem[0] if isinstance(x, AlarmEvent)]
    n_alarms = sum(int(str(b)) for op, _, b in ops if op == "put")
    assert len(alarms) == n_alarms  # never an alarm lost
    readings = [x for x in mem[0] if isinstance(x, Reading)]
    n_readings = sum(a for op, a, _ in ops if op == "put")
    assert len(readings) + mem[1][2] == n_readings  # every reading delivered or counted as dropped


async def _sqlite_run(
    run: Callable[[Outbox], Awaitable[tuple[list[object], tuple[int, int, int]]]],
    path: Path,
    limits: OutboxLimits,
) -> tuple[list[object], tuple[int, int, int]]:
    return await run(await SqliteOutbox.create(path, limits))
