"""The pipeline's bounded FIFO: order, room, lingering."""

from __future__ import annotations

import asyncio

import pytest

from edge_agent.frame_queue import FrameQueue


async def test_items_leave_in_order_in_takes_of_any_size() -> None:
    queue: FrameQueue[int] = FrameQueue(100)
    await queue.put_many(range(10))
    assert queue.put_nowait(10)
    assert queue.take(4) == [0, 1, 2, 3]
    assert queue.take(100) == list(range(4, 11))
    assert queue.take(5) == []
    assert len(queue) == 0


async def test_a_full_queue_refuses_offers_and_makes_puts_wait_for_room() -> None:
    queue: FrameQueue[int] = FrameQueue(3)
    await queue.put_many([0, 1, 2])
    assert not queue.put_nowait(99)
    put = asyncio.create_task(queue.put_many([3, 4, 5, 6]))
    await asyncio.sleep(0.01)
    assert not put.done()
    assert queue.take(2) == [0, 1]
    await asyncio.sleep(0.01)
    assert not put.done()  # 3 and 4 went in; 5 and 6 wait
    assert len(queue) == 3
    assert queue.take(10) == [2, 3, 4]
    async with asyncio.timeout(1):
        await put
    assert queue.take(10) == [5, 6]


async def test_wait_for_lingers_until_enough_items_or_the_timeout() -> None:
    queue: FrameQueue[int] = FrameQueue(10)
    assert not await queue.wait_for(1, 0.01)

    async def feed() -> None:
        for n in range(3):
            await asyncio.sleep(0.01)
            await queue.put_many([n])

    feeder = asyncio.create_task(feed())
    async with asyncio.timeout(1):
        assert await queue.wait_for(3, 0.5)
    await feeder
    assert not await queue.wait_for(4, 0.02)
    assert len(queue) == 3


def test_a_queue_holds_at_least_one_item() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FrameQueue[int](0)
