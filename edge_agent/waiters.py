"""Tasks waiting for a condition on a value, each with its own threshold, woken only when it holds.

An `asyncio.Event` wakes every waiter on every change; a waiter lingering for a batch of 200 then
runs 200 times for nothing. Here the side that changes the value says which waiters it satisfies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

_K = TypeVar("_K")


class Waiters(Generic[_K]):
    """Futures keyed by what each waits for (event-loop side only)."""

    def __init__(self) -> None:
        """No one waiting."""
        self._waiting: list[tuple[_K, asyncio.Future[None]]] = []

    def wake(self, satisfied: Callable[[_K], bool] | None = None) -> None:
        """Wake the waiters whose key `satisfied` accepts (every waiter without it)."""
        for key, waiter in self._waiting:
            if not waiter.done() and (satisfied is None or satisfied(key)):
                waiter.set_result(None)

    async def wait(self, key: _K, timeout: float | None) -> None:  # noqa: ASYNC109 - the wait is the point
        """Return once woken for `key`, or after `timeout` s (never, for None)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (key, waiter)
        self._waiting.append(entry)
        timer = None if timeout is None else loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiting.remove(entry)
            if timer is not None:
                timer.cancel()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
