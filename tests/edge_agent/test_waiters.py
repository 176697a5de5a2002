"""Waiters with thresholds: woken only when what each waits for holds, or when its time is up."""

from __future__ import annotations

import asyncio

from edge_agent.outbox.base import OutboxStats, ReadySignal
from edge_agent.waiters import Waiters


async def test_only_the_waiters_a_change_satisfies_are_woken() -> None:
    waiters: Waiters[int] = Waiters()
    small = asyncio.create_task(waiters.wait(2, None))
    large = asyncio.create_task(waiters.wait(5, None))
    await asyncio.sleep(0)
    waiters.wake((1).__ge__)
    await asyncio.sleep(0)
    assert not small.done()
    assert not large.done()
    waiters.wake((3).__ge__)
    await asyncio.sleep(0)
    assert small.done()
    assert not large.done()
    waiters.wake()  # without a condition: everyone
    async with asyncio.timeout(1):
        await large


async def test_a_wait_ends_at_its_timeout_and_a_cancelled_one_leaves_no_trace() -> None:
    waiters: Waiters[int] = Waiters()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await waiters.wait(1, 0.05)
    assert loop.time() - start >= 0.05
    cancelled = asyncio.create_task(waiters.wait(1, None))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    later = asyncio.create_task(waiters.wait(1, None))
    await asyncio.sleep(0)
    waiters.wake()
    async with asyncio.timeout(1):
        await later


def stats_of(depth: int, alarms: int = 0) -> OutboxStats:
    return OutboxStats(depth=depth, alarm_depth=alarms, dropped_telemetry=0, bytes=0)


async def test_an_outbox_waiter_sleeps_through_puts_that_leave_the_batch_short() -> None:
    signal = ReadySignal()
    current = stats_of(0)
    looked = 0

    async def stats() -> OutboxStats:
        nonlocal looked
        looked += 1
        return current

    waiter = asyncio.create_task(signal.wait(stats, 3, timeout=10))
    await asyncio.sleep(0)
    for depth in (1, 2):
        current = stats_of(depth)
        signal.notify(current)
        await asyncio.sleep(0)
    assert not waiter.done()
    assert looked == 1  # woken by neither short put
    current = stats_of(2, alarms=1)  # an alarm is ready at once, whatever the batch size
    signal.notify(current)
    async with asyncio.timeout(1):
        assert (await waiter).alarm_depth == 1
    assert looked == 2
