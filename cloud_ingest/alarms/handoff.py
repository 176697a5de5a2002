"""The handoff of changed alarm instances to the work-order service: durable, and off the ingest's path.

A change that needs action is marked `handoff_pending` on its `alarm_instances` row inside the
transaction that made it (`mark_pending`), so it is never lost: not when the process dies after
the commit, not when the work-order service fails. After the commit, `Handoff.hand_over` gives
the service at once the most urgent changes (critical first, at most `inline_max`), then clears
their mark; what is left of a burst (a gateway replaying a long outage) stays marked, and the
handoff's worker task hands it over in the background, so the ingest takes the next batch
instead of waiting for thousands of work-order decisions.

The worker also finds what an earlier process left marked (it died, or the service raised) and
hands it over, every `interval_s`. A mark is cleared only if the instance is still as handed
(same `last_seq`, `stale` and inhibition): a newer change made meanwhile stays marked. Several
processes may hand the same change over; the work-order service is idempotent per
(fingerprint, `last_seq`, `stale`), as its interface requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import and_, bindparam, case, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import alarm_instances
from cloud_ingest.ingest.work_orders import AlarmInstanceChange, NoWorkOrders, WorkOrderService
from cloud_ingest.tasks import cancel

log = logging.getLogger(__name__)

INLINE_MAX: Final = 64
"""Changes the ingest hands over right after their commit; the rest of a burst goes to the
worker, so a burst costs the ingest at most this many work-order decisions per batch (one
transaction of the work-order service, which decides a batch in a few set queries)."""
WORKER_BATCH: Final = 200
_IN_CHUNK: Final = 500
_SEVERITY_RANK: Final = {"critical": 0, "warning": 1, "info": 2}


def _urgency(change: AlarmInstanceChange) -> tuple[int, float]:
    """Critical first, then the oldest event first."""
    rank = _SEVERITY_RANK.get(change.severity, len(_SEVERITY_RANK))
    return (rank, change.last_event_at.timestamp())


async def mark_pending(conn: AsyncConnection, changes: Sequence[AlarmInstanceChange]) -> None:
    """Mark `changes` for the handoff, inside the transaction that made them."""
    fingerprints = sorted({c.fingerprint for c in changes})
    t = alarm_instances.c
    for start in range(0, len(fingerprints), _IN_CHUNK):
        chunk = fingerprints[start : start + _IN_CHUNK]
        await conn.execute(
            update(alarm_instances).where(t.fingerprint.in_(chunk)).values(handoff_pending=True)
        )


@dataclass
class HandoffCounters:
    """What a handoff did, since it was created (`/metrics`: `steward_ingest_alarm_handoff_*`)."""

    handed: int = 0
    """Changes handed over (and their marks cleared)."""
    failures: int = 0
    """Calls of the work-order service, or worker passes, that failed (their changes stay marked)."""


class Handoff:
    """Hands marked alarm changes to a `WorkOrderService`; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        work_orders: WorkOrderService | None = None,
        *,
        inline_max: int | None = INLINE_MAX,
        interval_s: float = 1.0,
    ) -> None:
        """Hand changes of `engine`'s alarm instances to `work_orders` (default: nobody).

        `inline_max=None` hands every change over at once (for callers off the ingest's path,
        such as the alarm sweep).
        """
        self._engine = engine
        self.work_orders: WorkOrderService = work_orders or NoWorkOrders()
        self.inline_max = inline_max
        self.interval_s = interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.counters = HandoffCounters()

    @property
    def active(self) -> bool:
        """Whether there is a work-order service to hand changes to."""
        return not isinstance(self.work_orders, NoWorkOrders)

    async def hand_over(self, changes: Sequence[AlarmInstanceChange]) -> None:
        """After a commit: the most urgent `inline_max` changes now, the rest to the worker."""
        if not changes:
            return
        if not self.active:
            return
        ordered = sorted(changes, key=_urgency)
        now = ordered if self.inline_max is None else ordered[: self.inline_max]
        await self._deliver(now)
        if len(now) < len(ordered):
            self._wake.set()

    async def run_pending_once(self, limit: int = WORKER_BATCH) -> int:
        """Hand over up to `limit` marked changes (most urgent first); how many were handed."""
        if not self.active:
            return 0
        t = alarm_instances.c
        severity_rank = case(
            *((t.severity == name, rank) for name, rank in _SEVERITY_RANK.items()),
            else_=len(_SEVERITY_RANK),
        )
        query = (
            select(alarm_instances)
            .where(t.handoff_pending.is_(True), t.inhibited_by.is_(None))
            .order_by(severity_rank, t.last_event_at, t.fingerprint)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        changes = [_change(row) for row in rows]
        return await self._deliver(changes)

    async def _deliver(self, changes: Sequence[AlarmInstanceChange]) -> int:
        if not changes:
            return 0
        try:
            await self.work_orders.alarm_instances_changed(changes)
        except Exception:
            self.counters.failures += 1
            log.exception("work-order service failed on %d changes; they stay marked", len(changes))
            return 0
        await self._clear(changes)
        self.counters.handed += len(changes)
        return len(changes)

    async def _clear(self, changes: Sequence[AlarmInstanceChange]) -> None:
        """Clear the marks of `changes` still as handed (one statement per kind of inhibition)."""
        plain = [_as_handed(c) for c in changes if c.inhibited_by is None]
        inhibited = [_as_handed(c) for c in changes if c.inhibited_by is not None]
        async with self._engine.connect() as connection:
            conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
            async with conn.begin():
                if plain:
                    await conn.execute(_CLEAR_UNINHIBITED, plain)
                if inhibited:
                    await conn.execute(_CLEAR_INHIBITED, inhibited)

    # --- the worker ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker (once); it also hands over what earlier processes left marked."""
        if self._task is None and self.active:
            self._task = asyncio.create_task(self._loop(), name="alarm-handoff")

    async def stop(self) -> None:
        """Stop the worker; what it did not hand over stays marked for the next process."""
        task, self._task = self._task, None
        await cancel(task)

    async def _loop(self) -> None:
        while True:
            handed = 0
            try:
                handed = await self.run_pending_once()
            except Exception:
                self.counters.failures += 1
                log.exception("alarm handoff failed; retrying")
            if handed:
                continue  # more may be marked; its awaits let the ingest run in between
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)


_HANDED: Final = and_(
    alarm_instances.c.fingerprint == bindparam("handed_fingerprint"),
    alarm_instances.c.last_seq == bindparam("handed_seq"),
    alarm_instances.c.stale == bindparam("handed_stale"),
)
_CLEAR_UNINHIBITED: Final = (
    update(alarm_instances)
    .where(_HANDED, alarm_instances.c.inhibited_by.is_(None))
    .values(handoff_pending=False)
)
_CLEAR_INHIBITED: Final = (
    update(alarm_instances)
    .where(_HANDED, alarm_instances.c.inhibited_by == bindparam("handed_inhibited_by"))
    .values(handoff_pending=False)
)


def _as_handed(change: AlarmInstanceChange) -> dict[str, object]:
    """The parameters of `_CLEAR_*` for `change`."""
    values: dict[str, object] = {
        "handed_fingerprint": change.fingerprint,
        "handed_seq": change.last_seq,
        "handed_stale": change.stale,
    }
    if change.inhibited_by is not None:
        values["handed_inhibited_by"] = change.inhibited_by
    return values


def _change(row: object) -> AlarmInstanceChange:
    values = dict(row)  # type: ignore[call-overload]
    return AlarmInstanceChange(
        fingerprint=values["fingerprint"],
        gateway_id=values["gateway_id"],
        device_id=values["device_id"],
        rule_id=values["rule_id"],
        location=values["location"],
        state=values["state"],
        severity=values["severity"],
        last_seq=values["last_seq"],
        last_event_at=values["last_event_at"],
        valid_until=values["valid_until"],
        work_order=values["work_order"],
        stale=bool(values["stale"]),
        inhibited_by=values["inhibited_by"],
    )
