"""The background tasks of the server: a periodic job, and stopping a task the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel `task` (if any) and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Periodic:
    """Runs `job` every `interval_s` seconds in a task of its own, from `start()` to `stop()`.

    A run that raises is logged (as "`name` failed") and counted by `on_failure`; the next run
    comes at its time. `stop()` cancels a run in progress (its transaction rolls back).
    """

    def __init__(
        self,
        name: str,
        interval_s: float,
        job: Callable[[], Awaitable[object]],
        on_failure: Callable[[], None],
    ) -> None:
        """Prepare the task; nothing runs before `start()`."""
        self.name = name
        self.interval_s = interval_s
        self._job = job
        self._on_failure = on_failure
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the periodic task (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Stop the task and wait until it has ended."""
        task, self._task = self._task, None
        await cancel(task)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self._job()
            except Exception:
                self._on_failure()
                log.exception("%s failed", self.name)
