"""An in-memory outbox with the same contract as the SQLite one (tests, demos; not durable)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

from core.types import AlarmEvent, Reading
from edge_agent.outbox.base import (
    Batch,
    OutboxError,
    OutboxLimits,
    OutboxRecord,
    OutboxStats,
    ReadySignal,
    RecordKind,
)
from edge_agent.outbox.records import encode_event, encode_reading, utf8_size


class MemoryOutbox:
    """Outbox kept in two insertion-ordered dicts (alarms, telemetry); lost when the process ends."""

    def __init__(self, limits: OutboxLimits | None = None) -> None:
        """Create an empty outbox bounded by `limits` (default `OutboxLimits()`)."""
        self._limits = limits or OutboxLimits()
        self._alarms: dict[int, tuple[str, int]] = {}
        self._readings: dict[int, tuple[str, int]] = {}
        self._next_id = 1
        self._bytes = 0
        self._telemetry_bytes = 0
        self._dropped = 0
        self._rejected = 0
        self._open: Batch | None = None
        self._closed = False
        self._signal = ReadySignal()
        self._state: str | None = None

    def _check(self) -> None:
        if self._closed:
            raise OutboxError("outbox is closed")

    async def put(
        self,
        readings: Sequence[Reading] = (),
        events: Sequence[AlarmEvent] = (),
        *,
        state: str | None = None,
    ) -> None:
        """Queue readings and alarm events, dropping the oldest telemetry beyond the bound."""
        self._check()
        if state is not None:
            self._state = state
        # Encode everything first: a record the envelope refuses leaves nothing half stored.
        alarm_bodies = [encode_event(event) for event in events]
        reading_bodies = [encode_reading(reading) for reading in readings]
        for body in alarm_bodies:
            size = utf8_size(body)
            self._alarms[self._next_id] = (body, size)
            self._next_id += 1
            self._bytes += size
        for body in reading_bodies:
            size = utf8_size(body)
            self._readings[self._next_id] = (body, size)
            self._next_id += 1
            self._bytes += size
            self._telemetry_bytes += size
        self._enforce_bound()
        if readings or events:
            self._signal.notify()

    def _over(self) -> bool:
        max_records, max_bytes = self._limits.max_records, self._limits.max_bytes
        return (max_records is not None and len(self._readings) > max_records) or (
            max_bytes is not None and self._telemetry_bytes > max_bytes
        )

    def _enforce_bound(self) -> None:
        if not self._over():
            return
        in_flight = set(self._open.ids) if self._open else set()
        victims: list[int] = []
        count, size_total = len(self._readings), self._telemetry_bytes
        for rid, (_, size) in self._readings.items():
            if rid in in_flight:
                continue
            victims.append(rid)
            count -= 1
            size_total -= size
            max_records, max_bytes = self._limits.max_records, self._limits.max_bytes
            if (max_records is None or count <= max_records) and (
                max_bytes is None or size_total <= max_bytes
            ):
                break
        for rid in victims:
            _, size = self._readings.pop(rid)
            self._bytes -= size
            self._telemetry_bytes -= size
        self._dropped += len(victims)

    def _oldest(self, max_items: int, max_bytes: int | None) -> Iterator[OutboxRecord]:
        taken = 0
        size_total = 0
        sources = ((RecordKind.ALARM, self._alarms), (RecordKind.READING, self._readings))
        for kind, table in sources:
            for rid, (body, size) in table.items():
                if taken >= max_items or (
                    max_bytes is not None and taken and size_total + size > max_bytes
                ):
                    return
                taken += 1
                size_total += size
                yield OutboxRecord(rid, kind, body)

    async def begin(self, max_items: int, max_bytes: int | None = None) -> Batch | None:
        """Return the open batch, or open a new one from the oldest alarms, then telemetry."""
        self._check()
        if self._open is not None:
            return self._open
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        records = tuple(self._oldest(max_items, max_bytes))
        if not records:
            return None
        self._open = Batch(uuid.uuid4(), records)
        return self._open

    async def end(
        self, batch: Batch, accepted: Sequence[int], rejected: Sequence[int] = ()
    ) -> None:
        """Delete accepted and rejected records; with neither, keep the batch open for a retry."""
        self._check()
        if self._open is None or batch.batch_id != self._open.batch_id:
            raise OutboxError(f"batch {batch.batch_id} is not the open batch")
        ids = set(self._open.ids)
        unknown = (set(accepted) | set(rejected)) - ids
        if unknown:
            raise OutboxError(f"record ids not in batch {batch.batch_id}: {sorted(unknown)}")
        if not accepted and not rejected:
            return
        for rid in {*accepted, *rejected}:
            if rid in self._alarms:
                _, size = self._alarms.pop(rid)
            else:
                _, size = self._readings.pop(rid)
                self._telemetry_bytes -= size
            self._bytes -= size
        self._rejected += len(set(rejected) - set(accepted))
        self._open = None

    async def end_and_begin(
        self, batch: Batch, accepted: Sequence[int], max_items: int, max_bytes: int | None = None
    ) -> Batch | None:
        """Close `batch` with `accepted`, then open the next batch."""
        await self.end(batch, accepted)
        return await self.begin(max_items, max_bytes)

    async def saved_state(self) -> str | None:
        """The state text of the last `put` that carried one."""
        self._check()
        return self._state

    def set_limits(self, limits: OutboxLimits) -> None:
        """Bound the telemetry anew; the next write keeps to it."""
        self._limits = limits

    async def stats(self) -> OutboxStats:
        """Return depths (including the open batch), drops and bytes."""
        return OutboxStats(
            depth=len(self._alarms) + len(self._readings),
            alarm_depth=len(self._alarms),
            dropped_telemetry=self._dropped,
            bytes=self._bytes,
            rejected=self._rejected,
            in_flight=len(self._open.records) if self._open else 0,
        )

    async def wait_ready(self, min_items: int, timeout: float | None) -> OutboxStats:  # noqa: ASYNC109 - the wait is the point
        """Wait until `min_items` records or any alarm are queued, or `timeout` s pass."""
        self._check()
        return await self._signal.wait(self.stats, min_items, timeout)

    async def close(self) -> None:
        """Mark the outbox closed (its contents are discarded)."""
        self._closed = True
