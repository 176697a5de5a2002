"""A busy uplink: batches are committed and opened together, in order, alarms first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from core.envelope_json import loads
from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Envelope, Reading, Severity
from edge_agent.outbox.base import Batch
from edge_agent.outbox.sqlite import SqliteOutbox
from edge_agent.uplink import Uplink, UplinkTopics
from edge_agent.uplink_settings import BackoffSettings, UplinkSettings
from simulators.services import Mosquitto

pytestmark = pytest.mark.integration

GW = "gw-busy"
T0 = datetime(2026, 11, 22, tzinfo=UTC)


def readings(start: int, count: int) -> list[Reading]:
    return [
        Reading(f"bin-{n % 4}", Metric.FILL_PCT, float(n), T0 + timedelta(milliseconds=n // 3))
        for n in range(start, start + count)
    ]


def alarm(seq: int) -> AlarmEvent:
    return AlarmEvent(
        "site/smoke-1/smoke", seq, AlarmState.FIRING, Severity.CRITICAL, T0, T0, "smoke", "smoke-1"
    )


class CountingOutbox(SqliteOutbox):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[str] = []
        self.before_next: list[tuple[list[Reading], list[AlarmEvent]]] = []
        """Put just before the next batch is opened: records arriving mid-backlog, on cue."""

    async def end(
        self, batch: Batch, accepted: Sequence[int], rejected: Sequence[int] = ()
    ) -> None:
        self.calls.append("end")
        await super().end(batch, accepted, rejected)

    async def end_and_begin(
        self, batch: Batch, accepted: Sequence[int], max_items: int, max_bytes: int | None = None
    ) -> Batch | None:
        self.calls.append("end_and_begin")
        if self.before_next:
            await self.put(*self.before_next.pop(0))
        return await super().end_and_begin(batch, accepted, max_items, max_bytes)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 20 s")


async def collect(broker: Mosquitto, out: list[Envelope], ready: asyncio.Event) -> None:
    async with aiomqtt.Client(broker.host, broker.port, identifier="busy-collector") as client:
        await client.subscribe(UplinkTopics.for_gateway(GW).up, qos=1)
        ready.set()
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            out.append(loads(message.payload))


async def test_a_backlog_goes_out_in_order_with_one_transaction_per_batch(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    outbox = CountingOutbox(tmp_path / "outbox.db")
    await outbox.open()
    await outbox.put(readings(0, 1000))
    outbox.before_next.append((readings(1000, 10), [alarm(1)]))  # arrives after the first batch
    settings = UplinkSettings.model_validate(
        {
            "host": mosquitto.host,
            "port": mosquitto.port,
            "batch_max": 200,
            "batch_wait_s": 0.3,
            "publish_timeout_s": 2.0,
            "backoff": BackoffSettings(initial_s=0.05, max_s=0.5),
        }
    )
    uplink = Uplink(settings, outbox, gateway_id=GW)
    got: list[Envelope] = []
    ready = asyncio.Event()
    collector = asyncio.create_task(collect(mosquitto, got, ready))
    await ready.wait()
    task = asyncio.create_task(uplink.run())
    try:
        await until(lambda: sum(len(e.readings) + len(e.alarm_events) for e in got) >= 1011)
        # The collector may see the last batch before its PUBACK is back and committed.
        await until(lambda: uplink.counters.records_sent == 1011)
    finally:
        uplink.stop()
        await asyncio.gather(task, return_exceptions=True)
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        stats = await outbox.stats()
        await outbox.close()
    assert [r.value for e in got for r in e.readings] == [float(n) for n in range(1010)]
    assert all(len(e.readings) + len(e.alarm_events) <= 200 for e in got)
    assert len({e.batch_id for e in got}) == len(got)
    # The alarm put mid-backlog overtakes the telemetry queued before it: it is in the batch
    # opened right after it arrived, ahead of the 800 readings still waiting.
    with_alarm = [i for i, e in enumerate(got) if e.alarm_events]
    assert with_alarm == [1]
    assert got[1].alarm_events == (alarm(1),)
    assert got[1].readings[0].value == 200.0
    # While a full batch was waiting, commit and next begin shared one call (one transaction).
    assert outbox.calls.count("end_and_begin") >= 3
    assert outbox.calls[-1] == "end"
    assert (stats.depth, stats.in_flight) == (0, 0)
