"""A source context for tests: records the frames and fault reports a source hands over."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from core.types import RawFrame


class Recorder:
    """Keeps every submitted frame and fault report; `until` waits for a condition on them."""

    def __init__(self) -> None:
        self.frames: list[RawFrame] = []
        self.faults: list[tuple[str, bool]] = []
        self.changed = asyncio.Event()

    async def submit(self, frame: RawFrame) -> None:
        """Record a frame."""
        self.frames.append(frame)
        self.changed.set()

    async def fault(self, device_id: str, faulty: bool) -> None:
        """Record a fault report."""
        self.faults.append((device_id, faulty))
        self.changed.set()

    async def until(self, predicate: Callable[[], bool], limit: float = 5.0) -> None:
        """Wait until `predicate()` holds, at most `limit` seconds."""
        async with asyncio.timeout(limit):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
