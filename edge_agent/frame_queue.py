"""The pipeline's bounded FIFO: sources put many frames at once, the worker takes many at once.

`asyncio.Queue` costs a few microseconds per item on each side; a gateway receiving tens of
thousands of messages a second moves them in the batches it received them in instead. A worker
lingering for a batch is woken once, when the batch is there or its time is up, not on every put:
at a trickle of one message a millisecond that saves a task switch per message.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

from edge_agent.waiters import Waiters

_T = TypeVar("_T")


class FrameQueue(Generic[_T]):
    """A bounded FIFO with batch puts and takes, for one event loop."""

    def __init__(self, maxsize: int) -> None:
        """A queue holding at most `maxsize` items (at least 1)."""
        self._items: deque[_T] = deque()
        self._waiters: Waiters[int] = Waiters()
        """Keyed by the item count each `wait_for` waits for."""
        self._room = asyncio.Event()
        self.maxsize = 0
        self.resize(maxsize)

    def resize(self, maxsize: int) -> None:
        """Change the bound; items already queued beyond a smaller one stay until taken."""
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        if len(self._items) < maxsize:
            self._room.set()
        else:
            self._room.clear()

    def __len__(self) -> int:
        """Items waiting."""
        return len(self._items)

    def put_nowait(self, item: _T) -> bool:
        """Append `item` if there is room; return whether it went in."""
        if len(self._items) >= self.maxsize:
            return False
        self._items.append(item)
        self._after_put()
        return True

    async def put_many(self, items: Sequence[_T]) -> None:
        """Append `items` in order, waiting for room whenever the queue is full."""
        done = 0
        while done < len(items):
            room = self.maxsize - len(self._items)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            self._items.extend(items[done : done + room])
            done += room
            self._after_put()

    def _after_put(self) -> None:
        queued = len(self._items)
        self._waiters.wake(queued.__ge__)
        if queued >= self.maxsize:
            self._room.clear()

    async def wait_for(self, count: int, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - lingering is the point
        """Wait until at least `count` items wait or `timeout` s pass; return whether they do."""
        if len(self._items) >= count:
            return True
        if timeout is not None and timeout <= 0:
            return False
        await self._waiters.wait(count, timeout)
        return len(self._items) >= count

    def take(self, limit: int) -> list[_T]:
        """Remove and return up to `limit` items, oldest first."""
        items = self._items
        if len(items) <= limit:
            out = list(items)
            items.clear()
        else:
            out = [items.popleft() for _ in range(limit)]
        if len(items) < self.maxsize:
            self._room.set()
        return out
