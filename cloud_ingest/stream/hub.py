"""One poller per process reads new `stream_events` and fans them out to the connected clients.

Every ~150 ms (`HubSettings.poll_interval`) the hub reads the rows with `id > watermark` in id
order and hands each to the subscriptions whose user may see it (`stream.scope.sees_event`, the
Python twin of the SQL filter `event_scope` a client's backlog is read with). On PostgreSQL it also polls at once
when a change commits: every transaction that records an event sends `NOTIFY` on `CHANNEL`
(`cloud_ingest.stream.outbox`), which PostgreSQL delivers at its commit to every process, and
the hub listens on its own connection (`_listen`). Wake-ups closer than `min_interval` are
taken together, so a burst of commits costs a poll per `min_interval`, not one per commit. If
the listening connection fails, the hub goes on polling every `poll_interval` and listens again
after a while. Each event's SSE frame is encoded once (`StreamEvent.frame`) and the same bytes
go to every client.
Each subscription has a bounded queue: a client that does not keep up is cut off (its queue is
dropped, its response ends) instead of growing memory; it reconnects with `Last-Event-ID` and
reads what it missed from the table. Several processes each run their own hub on the same
table, so every process delivers every event to its own clients.

**Ids that commit out of order.** On PostgreSQL an id is drawn from a sequence when the row is
inserted, not when its transaction commits: a transaction holding id 10 may commit after one
holding id 11, so a reader can see 11 while 10 is still invisible. Delivering 11 and moving on
would lose 10 for good (every client's `Last-Event-ID` would already be past it). So the hub
only moves its `watermark` through consecutive ids: reading `id > watermark` again on each poll
(the small window of held rows is re-read), it delivers rows while each is `watermark + 1` and
stops at the first missing id. A missing id is usually a transaction about to commit and shows up
on the next poll; one that stays missing for `gap_grace` (a rolled-back transaction, whose id is
never used) is given up and the rows behind it are delivered. A given-up id is still watched for
`late_horizon`; if it appears after all (a transaction that ran longer than the grace), it is
delivered then as a *late* event, without an SSE id, so clients' resume points stay in order.
On SQLite writers are serialised, ids commit in order and no gap occurs.

Delivered ids thus increase strictly, which makes `Last-Event-ID` a sound resume point: a
resuming client gets the rows in `(last_event_id, watermark]` from the table (`backlog`), then the
live ones. At start the watermark is the table's highest id; ids missing just below it are watched
as possibly late.

The hub also prunes rows older than `retention` (a `DELETE` by time: idempotent, so any number
of processes may run it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sse_starlette import ServerSentEvent

from cloud_ingest.auth.models import User
from cloud_ingest.infra.schema import stream_events
from cloud_ingest.stream.outbox import CHANNEL
from cloud_ingest.stream.scope import event_scope, sees_event
from cloud_ingest.tasks import cancel

if TYPE_CHECKING:
    from cloud_ingest.infra.config import Settings

log = logging.getLogger(__name__)

_COLUMNS: Final = (
    stream_events.c.id,
    stream_events.c.kind,
    stream_events.c.key,
    stream_events.c.company,
    stream_events.c.location,
    stream_events.c.at,
    stream_events.c.data,
)
_RELISTEN_S: Final = 5.0
"""Seconds before listening again after the listening connection failed."""
_WATCH_MAX: Final = 1_000
"""At most this many given-up ids are watched for a late commit."""
_BACKLOG_PAGE: Final = 500


@dataclass(frozen=True, slots=True)
class HubSettings:
    """How the hub polls, holds gaps, bounds clients and keeps rows."""

    poll_interval: float = 0.15
    """Seconds between two reads of new rows."""
    gap_grace: float = 5.0
    """Seconds a missing id holds back the rows behind it before it is given up."""
    late_horizon: float = 120.0
    """Seconds a given-up id is still watched for a late commit."""
    queue_size: int = 1_000
    """Events queued for one client at most; a client that falls further behind is cut off."""
    batch: int = 500
    """Rows read per poll at most (and at most half of `queue_size`)."""
    retention: timedelta = timedelta(hours=24)
    """Rows older than this are pruned."""
    prune_interval: float = 300.0
    """Seconds between two prunes."""
    start_window: int = 1_000
    """At start, ids missing among this many below the highest are watched as possibly late."""
    min_interval: float = 0.005
    """Seconds between two polls at least, however often commits wake the hub."""
    listen: bool = True
    """On PostgreSQL, poll when a change commits (`LISTEN`), not only every `poll_interval`."""

    @classmethod
    def of(cls, settings: Settings) -> HubSettings:
        """The hub settings of the application's `stream_*` settings."""
        return cls(
            poll_interval=settings.stream_poll_interval_s,
            gap_grace=settings.stream_gap_grace_s,
            queue_size=settings.stream_queue_size,
            retention=timedelta(seconds=settings.stream_retention_s),
        )


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event as a client receives it: `event: kind`, `id: id` and the JSON `payload`."""

    id: int
    kind: str
    key: str
    company: str
    location: str
    at: datetime
    data: Mapping[str, Any]
    late: bool = False
    """Delivered after the watermark had passed its id (sent without an SSE id)."""
    payload: str = field(default="", compare=False)
    frame: bytes = field(default=b"", compare=False)
    """The whole SSE message (`event:`, `id:` unless late, `data:`), encoded once for all clients."""

    @classmethod
    def of(cls, row: Any, *, late: bool = False) -> StreamEvent:  # noqa: ANN401 - a result row
        """The event of a `stream_events` row, its JSON payload serialised once."""
        body = {
            "id": int(row.id),
            "kind": row.kind,
            "key": row.key,
            "company": row.company,
            "location": row.location,
            "at": row.at.isoformat(),
            "data": row.data,
        }
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        frame = ServerSentEvent(
            data=payload, event=row.kind, id=None if late else str(int(row.id))
        ).encode()
        return cls(
            id=int(row.id),
            kind=row.kind,
            key=row.key,
            company=row.company,
            location=row.location,
            at=row.at,
            data=row.data,
            late=late,
            payload=payload,
            frame=frame,
        )


@dataclass(slots=True)
class HubStats:
    """Counters of one hub."""

    polls: int = 0
    poll_failures: int = 0
    delivered: int = 0
    """Events handed to client queues (one per client and event)."""
    cut_off: int = 0
    """Clients cut off because their queue was full."""
    gaps_given_up: int = 0
    """Missing ids given up after `gap_grace`."""
    late: int = 0
    """Given-up ids that committed later and were delivered late."""
    pruned: int = 0
    wakeups: int = 0
    """Commits notified (PostgreSQL `NOTIFY`) that woke the poller."""


class Subscription:
    """One connected client: its user, its bounded queue and where its live events start."""

    def __init__(self, user: User, start: int, after: int, queue_size: int) -> None:
        """`start`: the hub's watermark when subscribing; live events have ids above it."""
        self.user = user
        self.start = start
        self.after = after
        """Live events with an id up to this one were already sent (a resumed client)."""
        self.queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue(queue_size + 1)
        self._size = queue_size
        self.closed = False
        self.cut_off = False

    def offer(self, event: StreamEvent) -> bool:
        """Queue `event`; `False` (and the subscription closed) when the client is too far behind."""
        if self.closed:
            return False
        if self.queue.qsize() >= self._size:
            self.cut_off = True
            self.close()
            return False
        self.queue.put_nowait(event)
        return True

    def close(self) -> None:
        """End the client's stream: what is queued is dropped, `next` returns `None`."""
        if self.closed:
            return
        self.closed = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def next(self) -> StreamEvent | None:
        """The next event, or `None` when the stream ends (cut off, or the hub stopped)."""
        return await self.queue.get()


class Hub:
    """The process's poller and fan-out; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: HubSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Nothing runs before `start`."""
        self._engine = engine
        self.settings = settings or HubSettings()
        self._clock = clock
        self._watermark = 0
        self._stall: tuple[int, float] | None = None
        self._watched: dict[int, float] = {}
        self._subs: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        """Set while the hub listens for commits (PostgreSQL)."""
        self.ready = asyncio.Event()
        """Set once the watermark is known (the table was read)."""
        self.stats = HubStats()
        self._wake = asyncio.Event()
        self._page = max(1, min(self.settings.batch, self.settings.queue_size // 2))
        """Rows read per poll: half a client queue, so a client that keeps up is never cut off
        by a burst; a full page is followed by the next poll at once."""
        self._more = False

    @property
    def watermark(self) -> int:
        """Every id up to this one was delivered or given up."""
        return self._watermark

    @property
    def clients(self) -> int:
        """Connected clients."""
        return len(self._subs)

    async def start(self) -> None:
        """Start the poller (it reads the starting watermark first, retrying until it can)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="stream-hub")
        if (
            self._listener is None
            and self.settings.listen
            and self._engine.dialect.name == "postgresql"
        ):
            self._listener = asyncio.create_task(self._listen(), name="stream-hub-listen")

    async def stop(self) -> None:
        """Stop polling and end every client's stream."""
        task, self._task = self._task, None
        await cancel(task)
        listener, self._listener = self._listener, None
        await cancel(listener)
        for sub in list(self._subs):
            sub.close()
        self._subs.clear()

    def wake(self) -> None:
        """Poll now instead of at the end of the interval (a hint, e.g. from a notification)."""
        self._wake.set()

    def subscribe(self, user: User, after: int | None = None) -> Subscription:
        """Register a client of `user`; live events follow the current watermark.

        `after` is the client's `Last-Event-ID`: events up to it are not sent again. Call
        `backlog(user, after, sub.start)` for the ones between it and the watermark.
        """
        start = self._watermark
        sub = Subscription(user, start, max(start, after or 0), self.settings.queue_size)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget `sub` (its client went away)."""
        self._subs.discard(sub)
        sub.close()

    async def backlog(self, user: User, after: int, upto: int) -> AsyncIterator[StreamEvent]:
        """The events `user` may see with `after < id <= upto`, in id order, from the table."""
        t = stream_events.c
        scope = event_scope(user)
        cursor = after
        while cursor < upto:
            query = (
                select(*_COLUMNS)
                .where(t.id > cursor, t.id <= upto, scope)
                .order_by(t.id)
                .limit(_BACKLOG_PAGE)
            )
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
            if not rows:
                return
            for row in rows:
                yield StreamEvent.of(row)
            cursor = int(rows[-1].id)

    async def poll_once(self) -> int:
        """Read new rows once and fan them out; how many events were delivered or late."""
        t = stream_events.c
        query = select(*_COLUMNS).where(t.id > self._watermark).order_by(t.id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.limit(self._page))).all()
            late: Sequence[Any] = ()
            if self._watched:
                watched = sorted(self._watched)
                late = (
                    await conn.execute(select(*_COLUMNS).where(t.id.in_(watched)).order_by(t.id))
                ).all()
        self.stats.polls += 1
        now = self._clock()
        count = 0
        for row in rows:
            if row.id != self._watermark + 1 and not self._give_up(int(row.id), now):
                break
            self._watermark = int(row.id)
            self._stall = None
            self._fan_out(StreamEvent.of(row))
            count += 1
        self._more = count >= self._page  # a whole page went out: there may be more at once
        for row in late:
            self._watched.pop(int(row.id), None)
            self.stats.late += 1
            self._fan_out(StreamEvent.of(row, late=True))
            count += 1
        horizon = now - self.settings.late_horizon
        self._watched = {i: at for i, at in self._watched.items() if at >= horizon}
        return count

    async def prune(self, now: datetime | None = None) -> int:
        """Delete the rows older than `retention`; how many were deleted."""
        at = now or datetime.now(UTC)
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(stream_events).where(stream_events.c.at < at - self.settings.retention)
            )
        deleted = int(result.rowcount or 0)
        self.stats.pruned += deleted
        return deleted

    def _give_up(self, next_id: int, now: float) -> bool:
        """Whether the ids between the watermark and `next_id` are given up (held `gap_grace`)."""
        if self._stall is None or self._stall[0] != self._watermark:
            self._stall = (self._watermark, now)
        if now - self._stall[1] < self.settings.gap_grace:
            return False
        missing = range(self._watermark + 1, next_id)
        self.stats.gaps_given_up += len(missing)
        log.warning(
            "stream ids %d..%d given up after %.1f s", missing[0], missing[-1], now - self._stall[1]
        )
        self._watch(missing, now)
        return True

    def _watch(self, ids: range, now: float) -> None:
        for missing in ids:
            if len(self._watched) >= _WATCH_MAX:
                break
            self._watched[missing] = now

    def _fan_out(self, event: StreamEvent) -> None:
        for sub in list(self._subs):
            if not event.late and event.id <= sub.after:
                continue
            if not sees_event(sub.user, event.kind, event.company, event.location, event.data):
                continue
            if sub.offer(event):
                self.stats.delivered += 1
            else:
                self._subs.discard(sub)
                self.stats.cut_off += 1
                log.info(
                    "stream client %s cut off: %d events behind", sub.user.name, sub.queue.maxsize
                )

    async def _start_watermark(self) -> None:
        """Begin at the highest id; watch the missing ids just below it as possibly late."""
        t = stream_events.c
        while True:
            try:
                async with self._engine.connect() as conn:
                    top = (await conn.execute(select(func.max(t.id)))).scalar_one_or_none() or 0
                    low = max(0, int(top) - self.settings.start_window)
                    present = set(
                        (await conn.execute(select(t.id).where(t.id > low, t.id <= top))).scalars()
                    )
                break
            except Exception:
                self.stats.poll_failures += 1
                log.warning("stream hub cannot read stream_events yet; retrying", exc_info=True)
                await asyncio.sleep(max(self.settings.poll_interval, 1.0))
        self._watermark = int(top)
        now = self._clock()
        self._watch(range(low + 1, int(top) + 1), now)
        for present_id in present:
            self._watched.pop(present_id, None)
        self.ready.set()

    def _notified(self, *_args: object) -> None:
        self.stats.wakeups += 1
        self._wake.set()

    async def _listen(self) -> None:
        """Hold a connection that `LISTEN`s on `CHANNEL` (again after a failure) for wake-ups."""
        while True:
            try:
                async with self._engine.connect() as conn:
                    await self._listen_on(conn)
            except Exception:
                log.warning("stream hub cannot listen for commits; polling only", exc_info=True)
            self.listening.clear()
            await asyncio.sleep(_RELISTEN_S)

    async def _listen_on(self, conn: AsyncConnection) -> None:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        lost = asyncio.Event()
        driver.add_termination_listener(lambda _c: lost.set())
        await driver.add_listener(CHANNEL, self._notified)
        try:
            self.listening.set()
            self._wake.set()  # catch up with what committed before listening began
            await lost.wait()
        finally:
            with contextlib.suppress(Exception):
                await driver.remove_listener(CHANNEL, self._notified)

    async def _run(self) -> None:
        await self._start_watermark()
        next_prune = self._clock()
        last_poll = -self.settings.min_interval
        while True:
            gap = last_poll + self.settings.min_interval - self._clock()
            if gap > 0:
                await asyncio.sleep(gap)  # commits close together: one poll for them all
            last_poll = self._clock()
            try:
                await self.poll_once()
                if self._clock() >= next_prune:
                    next_prune = self._clock() + self.settings.prune_interval
                    await self.prune()
            except Exception:
                self.stats.poll_failures += 1
                log.exception("stream hub poll failed")
            if self._more:
                await asyncio.sleep(0)  # let the clients take the page first
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval):
                    await self._wake.wait()
            self._wake.clear()
