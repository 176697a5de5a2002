"""The delivery worker: claims due deliveries, sends them, retries with backoff, logs each try.

A run claims up to `batch` due deliveries in one short transaction: a pending one never tried, or
a pending/failed one whose `next_attempt_at` has come. The claim is a single
`UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING ...`: on
PostgreSQL concurrent workers (other processes included) skip each other's rows, on SQLite the
one writer serializes it. The claim counts the attempt and pushes `next_attempt_at` out by the
`lease`, so a worker that dies mid-send leaves the delivery to be tried again after the lease.

Sending happens after that commit, outside any transaction. Then, per delivery, one transaction
records the attempt (`notification_attempts`) and the outcome: `sent`; or `failed` with the next
try after an exponential backoff with jitter (`backoff * 2^(attempts-1)`, at most `backoff_max`,
times a random factor in `[1 - jitter, 1 + jitter]`); or `dead` after `max_attempts` tries.
Delivery is at least once: a receiver that answered after the lease ran out may see a repeat
(same `X-Steward-Delivery` id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import (
    notification_attempts,
    notification_channels,
    notification_deliveries,
)
from cloud_ingest.notify.channels import ChannelFactory, DeliveryError, Message, SmtpSettings
from cloud_ingest.notify.outbox import DEAD, FAILED, PENDING, SENT
from cloud_ingest.tasks import cancel

log = logging.getLogger(__name__)

_ERROR_MAX = 1024


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How the worker runs (see `cloud_ingest.infra.config.Settings`, `notify_*`)."""

    interval: timedelta = timedelta(seconds=5)
    """Time between two runs when there was nothing (more) to send."""
    batch: int = 20
    """At most this many deliveries per run, sent concurrently."""
    max_attempts: int = 8
    """A delivery is dead after this many failed tries."""
    backoff: timedelta = timedelta(seconds=30)
    """The wait after the first failure; doubled after each further one."""
    backoff_max: timedelta = timedelta(hours=1)
    """The longest wait between two tries."""
    jitter: float = 0.2
    """Each wait is multiplied by a random factor in `[1 - jitter, 1 + jitter]`."""
    lease: timedelta = timedelta(minutes=2)
    """A claimed delivery is claimable again after this long (its worker died mid-send)."""
    send_timeout: timedelta = timedelta(seconds=30)
    """The longest one send may take (it then counts as failed)."""


@dataclass(slots=True)
class WorkerCounters:
    """What the worker did, since it was created."""

    runs: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    errors: int = 0
    """Runs that failed as a whole (the database was unreachable, ...)."""


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    channel_id: int
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class _ChannelRow:
    kind: str
    target: str
    secret: str | None
    options: dict[str, object]
    enabled: bool


def retry_delay(
    attempts: int, settings: WorkerSettings, rng: random.Random | None = None
) -> timedelta:
    """The wait before the next try after `attempts` failed ones (with jitter)."""
    base = settings.backoff.total_seconds() * 2 ** max(attempts - 1, 0)
    capped = min(base, settings.backoff_max.total_seconds())
    factor = 1.0 + (rng or random).uniform(-settings.jitter, settings.jitter)
    return timedelta(seconds=max(capped * factor, 0.0))


@dataclass(slots=True)
class DeliveryWorker:
    """Sends the outbox's deliveries; `run_once()` for one pass, `start()`/`stop()` as a task."""

    engine: AsyncEngine
    settings: WorkerSettings = field(default_factory=WorkerSettings)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The clock (`cloud_ingest.clock.Clock.now`)."""
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    client: httpx.AsyncClient | None = None
    """The HTTP client for webhooks and robots (default: one of the worker's own)."""
    rng: random.Random = field(default_factory=random.Random)
    counters: WorkerCounters = field(default_factory=WorkerCounters)
    _task: asyncio.Task[None] | None = None
    _own_client: httpx.AsyncClient | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def _factory(self) -> ChannelFactory:
        if self.client is None:
            if self._own_client is None:
                timeout = self.settings.send_timeout.total_seconds()
                self._own_client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
            return ChannelFactory(self._own_client, self.smtp)
        return ChannelFactory(self.client, self.smtp)

    async def run_once(self) -> int:
        """Claim and send the due deliveries once; the number tried."""
        self.counters.runs += 1
        claimed = await self._claim(self.now())
        if not claimed:
            return 0
        channels = await self._channels({c.channel_id for c in claimed})
        factory = self._factory()
        await asyncio.gather(*(self._deliver(factory, c, channels) for c in claimed))
        return len(claimed)

    async def _claim(self, now: datetime) -> list[_Claimed]:
        d = notification_deliveries.c
        due = select(d.id).where(
            or_(
                and_(d.status == PENDING, d.attempts == 0),
                and_(d.status.in_((PENDING, FAILED)), d.next_attempt_at <= now),
            )
        )
        batch = (
            due.order_by(d.next_attempt_at, d.id)
            .limit(self.settings.batch)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            update(notification_deliveries)
            .where(d.id.in_(batch))
            .values(
                status=PENDING,
                attempts=d.attempts + 1,
                next_attempt_at=now + self.settings.lease,
            )
            .returning(d.id, d.channel_id, d.payload, d.attempts)
        )
        async with self.engine.connect() as connection:
            # A read first: an idle pass takes no write lock (SQLite has one writer).
            if (await connection.execute(due.limit(1))).first() is None:
                return []
            await connection.rollback()
            conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
            async with conn.begin():
                rows = (await conn.execute(stmt)).all()
        return [_Claimed(r.id, r.channel_id, dict(r.payload), r.attempts) for r in rows]

    async def _channels(self, ids: set[int]) -> dict[int, _ChannelRow]:
        c = notification_channels.c
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(c.id, c.kind, c.target, c.secret, c.options, c.enabled).where(c.id.in_(ids))
            )
            return {
                r.id: _ChannelRow(r.kind, r.target, r.secret, dict(r.options or {}), r.enabled)
                for r in rows
            }

    async def _deliver(
        self, factory: ChannelFactory, claimed: _Claimed, channels: dict[int, _ChannelRow]
    ) -> None:
        row = channels.get(claimed.channel_id)
        error: str | None
        if row is None:
            error = "the channel was deleted"
        elif not row.enabled:
            error = "the channel is disabled"
        else:
            error = await self._send(factory, claimed, row)
        try:
            await self._record(claimed, error)
        except Exception:
            self.counters.errors += 1
            log.exception("could not record the outcome of delivery %d", claimed.id)

    async def _send(
        self, factory: ChannelFactory, claimed: _Claimed, row: _ChannelRow
    ) -> str | None:
        try:
            channel = factory.channel(row.kind, row.target, row.secret, row.options)
            async with asyncio.timeout(self.settings.send_timeout.total_seconds()):
                await channel.send(Message(claimed.id, claimed.payload))
        except DeliveryError as err:
            return str(err) or "failed"
        except TimeoutError:
            return f"no answer within {self.settings.send_timeout.total_seconds():g} s"
        except ValueError as err:
            return f"channel misconfigured: {err}"
        except Exception as err:
            log.exception("channel %s failed on delivery %d", row.kind, claimed.id)
            return f"{type(err).__name__}: {err}"
        return None

    async def _record(self, claimed: _Claimed, error: str | None) -> None:
        now = self.now()
        d = notification_deliveries.c
        if error is None:
            values: dict[str, object] = {"status": SENT, "sent_at": now, "last_error": None}
        elif claimed.attempts >= self.settings.max_attempts:
            values = {"status": DEAD, "last_error": error[:_ERROR_MAX]}
        else:
            delay = retry_delay(claimed.attempts, self.settings, self.rng)
            values = {
                "status": FAILED,
                "last_error": error[:_ERROR_MAX],
                "next_attempt_at": now + delay,
            }
        async with self.engine.connect() as connection:
            conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
            async with conn.begin():
                await conn.execute(
                    insert(notification_attempts).values(
                        delivery_id=claimed.id,
                        attempt=claimed.attempts,
                        at=now,
                        ok=error is None,
                        error=None if error is None else error[:_ERROR_MAX],
                    )
                )
                await conn.execute(
                    update(notification_deliveries)
                    .where(d.id == claimed.id, d.attempts == claimed.attempts)
                    .values(**values)
                )
        status = values["status"]
        if status == SENT:
            self.counters.sent += 1
        elif status == DEAD:
            self.counters.dead += 1
            log.warning(
                "delivery %d is dead after %d tries: %s", claimed.id, claimed.attempts, error
            )
        else:
            self.counters.failed += 1

    def wake(self) -> None:
        """Run the next pass now instead of after the interval."""
        self._wake.set()

    def start(self) -> None:
        """Start the periodic task (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="notification-worker")

    async def stop(self) -> None:
        """Stop the task (sends in flight are cancelled and retried after the lease)."""
        task, self._task = self._task, None
        await cancel(task)
        client, self._own_client = self._own_client, None
        if client is not None:
            await client.aclose()

    async def _loop(self) -> None:
        interval = self.settings.interval.total_seconds()
        while True:
            try:
                tried = await self.run_once()
            except Exception:
                tried = 0
                self.counters.errors += 1
                log.exception("notification worker run failed")
            if tried < self.settings.batch:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._wake.wait()
                self._wake.clear()


async def deliver_all(worker: DeliveryWorker, *, rounds: int = 10) -> int:
    """Run `worker` until a pass finds nothing due (at most `rounds` passes); the number tried."""
    total = 0
    for _ in range(rounds):
        tried = await worker.run_once()
        total += tried
        if tried == 0:
            break
    return total


__all__: Sequence[str] = (
    "DeliveryWorker",
    "WorkerCounters",
    "WorkerSettings",
    "deliver_all",
    "retry_delay",
)
