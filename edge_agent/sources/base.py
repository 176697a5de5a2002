"""What every source shares: the context it reports to, and jittered reconnect backoff."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.clock import Clock
from core.types import RawFrame
from edge_agent.selfstats import PipelineStats

Submit = Callable[[RawFrame], Awaitable[None]]
"""Hands a frame to the pipeline; waits while the pipeline's queue is full."""

SubmitMany = Callable[[Sequence[RawFrame]], Awaitable["asyncio.Future[None]"]]
"""Hands frames received together to the pipeline, in order; waits while the queue is full and
returns a future that is done once all of them are stored."""

DeadLetter = Callable[[RawFrame, str, str], None]
"""Keeps a frame nothing could decode (raw bytes, reason, detail) and counts it by codec and reason."""

ReportFault = Callable[[str, bool], Awaitable[None]]
"""Reports that a device's link was lost (`True`) or is back (`False`)."""

Reply = Callable[[bytes], bytes | None]
"""Builds the answer a bidirectional protocol owes its device for one frame (or None)."""


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a source may use: hand frames on, count framing errors, report link faults, read time."""

    submit: Submit
    fault: ReportFault
    stats: PipelineStats
    clock: Clock
    submit_durable: Submit | None = None
    """Like `submit`, but returns only once the frame's results are in the outbox (for sources
    that acknowledge to the device); falls back to `submit` when absent."""
    submit_many: SubmitMany | None = None
    """Hands on frames received together (see `SubmitMany`); `submit_all` falls back to `submit`."""
    dead_letter: DeadLetter | None = None
    """Stores and counts what a source itself could not turn into a frame for a codec (the
    pipeline's `dead_letter`); `refuse` falls back to counting only."""

    def refuse(self, frame: RawFrame, reason: str, detail: str) -> None:
        """Count input the source could not use by its frame's codec and `reason`, and keep its bytes.

        With `dead_letter` the input goes to the dead letters (which count it); without, it is only
        counted in `stats.decode_errors`.
        """
        if self.dead_letter is not None:
            self.dead_letter(frame, reason, detail)
        else:
            self.stats.count_decode_error(frame.codec_id, reason)

    async def submit_acknowledged(self, frame: RawFrame) -> None:
        """Hand on a frame the source is about to acknowledge to its device."""
        await (self.submit_durable or self.submit)(frame)

    async def submit_all(self, frames: Sequence[RawFrame]) -> asyncio.Future[None]:
        """Hand on frames received together; the future is done once all of them are stored.

        Without `submit_many` the frames go one by one through `submit` and the future is done at
        once (the context offers no way to know when they are stored).
        """
        if self.submit_many is not None:
            return await self.submit_many(frames)
        for frame in frames:
            await self.submit(frame)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Source(Protocol):
    """A long-running task that turns device traffic into RawFrames.

    `run()` returns only when cancelled; it handles lost links itself (reconnect with backoff).
    """

    name: str

    async def run(self) -> None:
        """Move bytes until cancelled."""
        ...


class Backoff:
    """Exponential backoff with full jitter, reset after a success."""

    def __init__(
        self, first: float = 0.2, maximum: float = 30.0, rng: random.Random | None = None
    ) -> None:
        """Start at `first` seconds and never exceed `maximum`."""
        self.first = first
        self.maximum = maximum
        self._attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self) -> float:
        """Return how long to wait before the next attempt."""
        ceiling = min(self.maximum, self.first * (2**self._attempt))
        self._attempt = min(self._attempt + 1, 30)
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Forget past failures."""
        self._attempt = 0
