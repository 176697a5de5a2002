"""The outbox contract: a bounded, durable queue with Telegraf-style batch transactions.

The outbox is the only way from the pipeline to the network. The pipeline `put`s readings and alarm
events in one durable transaction; the uplink takes a `Batch` with `begin`, publishes it, and after the
broker's PUBACK calls `end(batch, accepted=...)`. Anything not accepted (or rejected) stays queued.

Guarantees every implementation keeps (checked by tests/edge_agent/test_outbox_contract.py):

- Alarms leave before telemetry; each kind leaves in insertion order.
- The bound applies to telemetry: when full, the OLDEST queued telemetry that is not in the open
  batch is dropped and counted. Alarms are never dropped (they may exceed the bound).
- At most one batch is open. `begin` returns the open batch again, with the same `batch_id` and the
  same records, until `end` accepts or rejects something; for a durable outbox this holds across a
  restart too, so the cloud can de-duplicate a retried batch by its id.
- `end` with nothing accepted and nothing rejected leaves the batch open (a retry reuses its id).
  Otherwise accepted and rejected records are deleted (rejected ones are counted) and the rest of the
  batch goes back to the queue in its original place.
- `end_and_begin` is `end` followed by `begin`, atomically for a durable outbox.
- A `put` may carry a state text (the rule engine's snapshot), kept with the records it wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable
from uuid import UUID

from core.envelope_json import envelope_text
from core.types import AlarmEvent, Reading
from edge_agent.outbox.records import decode_event, decode_reading
from edge_agent.waiters import Waiters


class RecordKind(StrEnum):
    """What an outbox record holds."""

    ALARM = "alarm"
    READING = "reading"


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One queued item with its outbox id (ids grow with insertion order).

    `body` is the item's envelope JSON text (`core.envelope_json.reading_text` or
    `alarm_event_text`), which is what the uplink sends.
    """

    id: int
    kind: RecordKind
    body: str

    @property
    def item(self) -> Reading | AlarmEvent:
        """The reading or alarm event, decoded from `body`."""
        return (
            decode_event(self.body) if self.kind is RecordKind.ALARM else decode_reading(self.body)
        )


@dataclass(frozen=True, slots=True)
class Batch:
    """Records taken from the outbox for one publish, under one id the cloud de-duplicates on."""

    batch_id: UUID
    records: tuple[OutboxRecord, ...]

    @property
    def ids(self) -> tuple[int, ...]:
        """Record ids in batch order."""
        return tuple(r.id for r in self.records)

    @property
    def readings(self) -> tuple[Reading, ...]:
        """The readings of the batch, in order (decoded)."""
        return tuple(decode_reading(r.body) for r in self.records if r.kind is RecordKind.READING)

    @property
    def alarm_events(self) -> tuple[AlarmEvent, ...]:
        """The alarm events of the batch, in order (decoded)."""
        return tuple(decode_event(r.body) for r in self.records if r.kind is RecordKind.ALARM)

    def envelope(self, gateway_id: str, sent_at: datetime) -> bytes:
        """The batch as the uplink envelope (UTF-8 JSON), joined from the stored record texts."""
        return envelope_text(
            gateway_id=gateway_id,
            batch_id=self.batch_id,
            sent_at=sent_at,
            reading_texts=[r.body for r in self.records if r.kind is RecordKind.READING],
            event_texts=[r.body for r in self.records if r.kind is RecordKind.ALARM],
        ).encode()


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counters of an outbox (depths include the open batch)."""

    depth: int
    alarm_depth: int
    dropped_telemetry: int
    bytes: int
    rejected: int = 0
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    """Bounds of the telemetry queue; `None` means unbounded."""

    max_records: int | None = 100_000
    max_bytes: int | None = 64 * 1024 * 1024


class OutboxError(RuntimeError):
    """An outbox was used against its contract (unknown batch, ids not in the batch, closed)."""


@runtime_checkable
class Outbox(Protocol):
    """A durable, bounded queue of readings and alarm events with batch transactions."""

    async def put(
        self,
        readings: Sequence[Reading] = (),
        events: Sequence[AlarmEvent] = (),
        *,
        state: str | None = None,
    ) -> None:
        """Queue readings and alarm events in one transaction (durable when this returns).

        `state`, when given, replaces the saved state text (`saved_state`) in the same transaction:
        the rule engine's snapshot is stored with the alarm events it numbered, so a crash can
        never keep one without the other.
        """

    async def saved_state(self) -> str | None:
        """The state text of the last `put` that carried one (None if none ever did)."""

    async def begin(self, max_items: int, max_bytes: int | None = None) -> Batch | None:
        """Open a batch of at most `max_items` records (and about `max_bytes`), or return None.

        Returns the open batch again if one was begun and not ended.
        """

    async def end(
        self, batch: Batch, accepted: Sequence[int], rejected: Sequence[int] = ()
    ) -> None:
        """Close `batch`: delete accepted and rejected record ids; the rest stays queued."""

    async def end_and_begin(
        self, batch: Batch, accepted: Sequence[int], max_items: int, max_bytes: int | None = None
    ) -> Batch | None:
        """`end(batch, accepted)` then `begin(max_items, max_bytes)`, in one transaction if durable.

        A busy uplink commits one batch and opens the next with one disk flush instead of two.
        """

    async def stats(self) -> OutboxStats:
        """Return the current counters."""

    def set_limits(self, limits: OutboxLimits) -> None:
        """Bound the telemetry anew; the next write keeps to it."""

    async def wait_ready(self, min_items: int, timeout: float | None) -> OutboxStats:  # noqa: ASYNC109 - the wait is the point
        """Wait until `min_items` records or any alarm are queued, or `timeout` s pass; return stats."""

    async def close(self) -> None:
        """Release resources; further calls raise `OutboxError`."""


class ReadySignal:
    """Wakes waiters in `Outbox.wait_ready` when records are added (event-loop side only).

    A waiter is woken only once what it waits for is there (given the stats `notify` is passed),
    so an uplink lingering for a full batch sleeps through the small puts of a trickle.
    """

    def __init__(self) -> None:
        self._waiters: Waiters[int] = Waiters()
        """Keyed by the `min_items` each waiter waits for."""

    def notify(self, current: OutboxStats | None = None) -> None:
        """Tell waiters records were added; with `current`, only those it satisfies."""
        if current is None:
            self._waiters.wake()
        else:
            self._waiters.wake(lambda min_items: _ready(current, min_items))

    async def wait(
        self,
        stats: StatsFn,
        min_items: int,
        timeout: float | None,  # noqa: ASYNC109 - the wait is the point
    ) -> OutboxStats:
        """Wait until `stats()` shows `min_items` records or an alarm, or until `timeout` s pass."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            current = await stats()
            if _ready(current, min_items):
                return current
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return current
            await self._waiters.wait(min_items, remaining)


def _ready(stats: OutboxStats, min_items: int) -> bool:
    return stats.depth >= min_items or stats.alarm_depth > 0


class StatsFn(Protocol):
    """An async callable returning outbox stats."""

    async def __call__(self) -> OutboxStats:
        """Return the current counters."""
