"""`WorkOrders`: alarms and requests become work orders; people move them through the lifecycle.

**Alarms** (`alarm_instances_changed`, the ingest's `WorkOrderService`). An alarm instance that
needs action (`triage.needs_action`) joins the open order it is already attached to; else an open
order of the same location and category whose last alarm is within `group_window` (30 minutes by
default), so flapping, re-sends and neighbouring detectors become evidence on one order; else it
opens a new order. Any other change of an attached alarm (RESOLVED, RECOVERING, stale) is recorded
as evidence on the latest order it is attached to and never closes it, except that a category in
`auto_verify_categories` (a bin emptied) is closed by the system once all its alarms cleared.

Each change is applied at most once: its event carries the SHA-256 of (fingerprint, last_seq,
stale) in a UNIQUE column, and the whole call runs in one transaction that first takes the
(location, category) group locks it needs (PostgreSQL advisory transaction locks, in sorted order;
SQLite's write transaction serialises all writers), so redelivery and several processes never
open two orders for one group nor attach one change twice. A failing batch is retried change by
change; a change that still fails is counted and logged, never raised to the ingest.

A call is one batch: under the locks it reads, in a few set queries, everything its decisions
depend on (the dedupe keys already applied, the orders its alarms are attached to, the open
orders of its groups within the window, locked in id order, and their attached alarms), decides
change by change in memory exactly as if each change were applied alone in order (a change sees
the orders, links and events the changes before it made), then writes orders, events, links and
publications in bulk, with the new orders' numbers drawn in one step. A call of more than
`BATCH_MAX` changes is applied as consecutive batches of that size.

**Actions** (`act`). One action per transaction: the order row is locked (`SELECT ... FOR UPDATE`
on PostgreSQL), checked against the lifecycle table (`lifecycle.decide`), optionally against the
caller's `expected_version`, and changed together with its next event, so concurrent actions are
serialised and every transition starts from the state the previous one left.

**Requests** (`create_request`): residents' repair requests, 12345 hotline complaints (with the
hotline's reference, idempotent per reference, and deadline) and inspectors' reports open orders
in the same loop.

Every change is published inside its transaction (`publish.publish`: the live stream, and
notifications for the steps people act on). Due times come from the SLA table (`sla.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.scope import normal_path
from cloud_ingest.clock import Clock, SystemClock
from cloud_ingest.infra.config import Settings
from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import (
    alarm_instances,
    gateways,
    work_order_alarms,
    work_order_events,
    work_orders,
)
from cloud_ingest.ingest.work_orders import AlarmInstanceChange
from cloud_ingest.work_orders import store, triage
from cloud_ingest.work_orders.lifecycle import (
    ALARM_ACTION,
    AUTO_VERIFY_ACTION,
    OPEN_ACTION,
    OPEN_STATES,
    ActionForbiddenError,
    InvalidPayloadError,
    SlaClock,
    State,
    decide,
)
from cloud_ingest.work_orders.publish import Publication, publish, publish_many
from cloud_ingest.work_orders.sla import SlaPolicy, default_policy
from cloud_ingest.work_orders.stages import STAGE_OF, sla_category, sla_priority

log = logging.getLogger(__name__)

SOURCES: Final = ("alarm", "resident", "hotline_12345", "inspector")
"""Where work comes from."""
REQUEST_SOURCES: Final = SOURCES[1:]
ALARM_ROLE: Final = "system"
TITLE_MAX: Final = 256
DEADLINE_RANGE: Final = timedelta(days=3650)
"""A hotline deadline further than this from now is refused as a typing error."""
DESCRIPTION_MAX: Final = 4096
BATCH_MAX: Final = 500
"""Alarm changes decided in one transaction at most (a longer call is split, in order)."""
_IN_CHUNK: Final = 500
"""Values per `IN (...)` list of the alarm batch's reads."""
_GROUP_LOCKS: Final = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) k")
"""The group locks of a batch in one statement (taken in the order of the sorted keys)."""
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class WorkOrderSettings:
    """How alarms group into orders, which categories verify themselves, and the local day."""

    group_window: timedelta = timedelta(minutes=30)
    """An alarm joins an open order of its location and category whose last alarm is this recent."""
    auto_verify_categories: frozenset[str] = frozenset({"sanitation"})
    """Categories the sensor's RESOLVED closes (low risk: a bin emptied)."""
    timezone: str = "Asia/Shanghai"
    """The day in an order number (`WO-20261207-0001`) is the local day here."""

    @classmethod
    def of(cls, settings: Settings) -> WorkOrderSettings:
        """The work-order part of the application's settings."""
        categories = {c.strip() for c in settings.work_order_auto_verify.split(",")}
        return cls(
            group_window=timedelta(seconds=settings.work_order_group_window_s),
            auto_verify_categories=frozenset(c for c in categories if c),
            timezone=settings.work_order_timezone,
        )


@dataclass(slots=True)
class WorkOrderStats:
    """Counters of the alarm intake (read by tests and metrics)."""

    orders_opened: int = 0
    alarms_attached: int = 0
    duplicates: int = 0
    ignored: int = 0
    failures: int = 0
    auto_verified: int = 0


@dataclass(frozen=True, slots=True)
class RequestInput:
    """A request for work from a person (`POST /api/v1/requests`)."""

    source: str
    text: str
    location: str
    category: str = "general"
    title: str | None = None
    photos: Sequence[str] = ()
    priority: str | None = None
    external_ref: str | None = None
    external_deadline: datetime | None = None
    company: str | None = None


@dataclass(slots=True)
class _Link:
    """An alarm attached to an order, as the batch leaves it."""

    first_seq: int
    last_seq: int
    state: str
    updated_at: datetime
    new: bool = True
    """Not stored yet (inserted at the end of the batch)."""
    dirty: bool = False
    """Stored, and moved on by the batch (updated at the end)."""

    @classmethod
    def of(cls, row: Any) -> _Link:  # noqa: ANN401 - a `work_order_alarms` row
        """The link of a stored row."""
        return cls(int(row.first_seq), int(row.last_seq), str(row.state), row.updated_at, new=False)

    def values(self, order_id: int, fingerprint: str) -> dict[str, object]:
        """The `work_order_alarms` row."""
        return {
            "order_id": order_id,
            "fingerprint": fingerprint,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "state": self.state,
            "updated_at": self.updated_at,
        }


@dataclass(slots=True)
class _Order:
    """An order a batch may change: its row as the changes so far left it."""

    row: dict[str, Any]
    key: tuple[int, int]
    """Orders compare by id: (0, id) for a stored order, (1, n) for the n-th opened by the batch
    (its id, drawn at the end, is above every stored one)."""
    version: int
    """The version as read under the lock (0: opened by the batch)."""
    links: dict[str, _Link] = field(default_factory=dict)
    """The alarms attached (of a stored order: those the batch's decisions need)."""


@dataclass(slots=True)
class _Batch:
    """What one alarm call has read, and decided so far (per transaction)."""

    companies: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    """Dedupe keys of the changes applied (stored, or earlier in the batch)."""
    orders: list[_Order] = field(default_factory=list)
    stored: dict[int, _Order] = field(default_factory=dict)
    opened: list[_Order] = field(default_factory=list)
    by_fingerprint: dict[str, list[_Order]] = field(default_factory=dict)
    groups: dict[tuple[str, str], list[_Order]] = field(default_factory=dict)
    events: list[tuple[_Order, dict[str, object]]] = field(default_factory=list)
    publications: list[tuple[_Order, dict[str, Any], str, str | None]] = field(default_factory=list)

    def add_order(self, order: _Order) -> None:
        """Know `order` (stored, or opened by the batch)."""
        self.orders.append(order)
        if order.version:
            self.stored[int(order.row["id"])] = order
        group = (str(order.row["location"]), str(order.row["category"]))
        self.groups.setdefault(group, []).append(order)

    def link(self, order: _Order, fingerprint: str, link: _Link) -> None:
        """Attach `fingerprint` to `order` (a link already known stays as it is)."""
        if fingerprint in order.links:
            return
        order.links[fingerprint] = link
        self.by_fingerprint.setdefault(fingerprint, []).append(order)

    def event(
        self,
        order: _Order,
        *,
        action: str,
        to_state: State,
        at: datetime,
        evidence: Mapping[str, object],
        data: Mapping[str, object] | None = None,
        reason: str | None = None,
        dedupe: str | None = None,
    ) -> None:
        """Append the order's next event (as `store.append_event` does) and move its row on."""
        row = order.row
        opening = action == OPEN_ACTION
        seq = 1 if opening else int(row["version"]) + 1
        event: dict[str, object] = {
            "seq": seq,
            "action": action,
            "from_state": None if opening else row["state"],
            "to_state": to_state.value,
            "actor": store.SYSTEM_ACTOR,
            "role": ALARM_ROLE,
            "at": at,
            "reason": reason,
            "evidence": dict(evidence),
            "data": dict(data or {}),
            "dedupe": dedupe,
        }
        self.events.append((order, event))
        row.update(state=to_state.value, version=seq, updated_at=at)
        if dedupe is not None:
            self.seen.add(dedupe)

    def publish(self, order: _Order, *, action: str, from_state: str | None) -> None:
        """Publish the order's row as it is now (written with the batch)."""
        self.publications.append((order, dict(order.row), action, from_state))


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


class WorkOrders:
    """The work-order service on `engine` (see the module text); `clock` gives every time."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock | None = None,
        settings: WorkOrderSettings | None = None,
        sla: SlaPolicy | None = None,
    ) -> None:
        """Serve orders from `engine`; the default clock is the system's, the SLA the shipped."""
        self._engine = engine
        self._clock: Clock = clock or SystemClock()
        self.settings = settings or WorkOrderSettings()
        self._tz = ZoneInfo(self.settings.timezone)
        self._sla = sla
        self.stats = WorkOrderStats()

    # --- alarms -------------------------------------------------------------------------------

    async def alarm_instances_changed(self, changes: Sequence[AlarmInstanceChange]) -> None:
        """Open, join or annotate orders for `changes` (idempotent; never raises)."""
        if not changes:
            return
        if len(changes) > BATCH_MAX:
            for start in range(0, len(changes), BATCH_MAX):
                await self.alarm_instances_changed(changes[start : start + BATCH_MAX])
            return
        try:
            await self._apply_changes(changes)
        except Exception:
            if len(changes) == 1:
                self.stats.failures += 1
                log.exception("work orders: alarm change %s failed", changes[0].fingerprint)
                return
            for change in changes:
                await self.alarm_instances_changed([change])

    async def _apply_changes(self, changes: Sequence[AlarmInstanceChange]) -> None:
        async with self._engine.connect() as connection:
            conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
            async with conn.begin():
                if conn.dialect.name == "postgresql":
                    keys = sorted(
                        {triage.group_lock_key(c.location, triage.category_of(c)) for c in changes}
                    )
                    await conn.execute(_GROUP_LOCKS, {"keys": keys})
                batch = await self._prefetch(conn, changes)
                counts = WorkOrderStats()
                for change in changes:
                    self._apply_one(change, batch, counts)
                await self._write(conn, batch)
        for name in ("orders_opened", "alarms_attached", "duplicates", "ignored", "auto_verified"):
            setattr(self.stats, name, getattr(self.stats, name) + getattr(counts, name))

    async def _prefetch(
        self, conn: AsyncConnection, changes: Sequence[AlarmInstanceChange]
    ) -> _Batch:
        """Read, in a few set queries, everything the batch's decisions depend on (locked)."""
        batch = _Batch()
        gateway_ids = sorted({c.gateway_id for c in changes})
        for chunk in _chunks(gateway_ids):
            rows = await conn.execute(
                select(gateways.c.id, gateways.c.company).where(gateways.c.id.in_(chunk))
            )
            batch.companies.update((str(gid), str(company)) for gid, company in rows)
        fingerprints = sorted({c.fingerprint for c in changes})
        for chunk in _chunks(fingerprints):
            rows = await conn.execute(
                select(alarm_instances.c.fingerprint, alarm_instances.c.description).where(
                    alarm_instances.c.fingerprint.in_(chunk)
                )
            )
            batch.descriptions.update((str(fp), str(d)) for fp, d in rows)
        dedupes = sorted({triage.dedupe_key(c) for c in changes})
        for chunk in _chunks(dedupes):
            seen = await conn.execute(
                select(work_order_events.c.dedupe).where(work_order_events.c.dedupe.in_(chunk))
            )
            batch.seen.update(str(d) for d in seen.scalars())
        links: list[Any] = []
        for chunk in _chunks(fingerprints):
            links.extend(
                await conn.execute(
                    select(work_order_alarms).where(work_order_alarms.c.fingerprint.in_(chunk))
                )
            )
        await self._load_orders(conn, changes, links, batch)
        for link in links:
            if int(link.order_id) in batch.stored:
                batch.link(batch.stored[int(link.order_id)], link.fingerprint, _Link.of(link))
        verifying = [
            order_id
            for order_id, order in batch.stored.items()
            if order.row["category"] in self.settings.auto_verify_categories
            and State(order.row["state"]) in OPEN_STATES
        ]
        for ids in _chunks(verifying):
            for link in await conn.execute(
                select(work_order_alarms).where(work_order_alarms.c.order_id.in_(ids))
            ):
                batch.link(batch.stored[int(link.order_id)], link.fingerprint, _Link.of(link))
        return batch

    async def _load_orders(
        self,
        conn: AsyncConnection,
        changes: Sequence[AlarmInstanceChange],
        links: Sequence[Any],
        batch: _Batch,
    ) -> None:
        """Lock and read the orders a change may join: attached ones and group candidates.

        Of the orders an alarm is attached to, only its latest and the open ones can be chosen;
        of a group, only the open orders whose last alarm may still be within the window of the
        batch's earliest change. One query in id order, so concurrent batches lock rows in the
        same order.
        """
        latest: dict[str, int] = {}
        for link in links:
            latest[link.fingerprint] = max(int(link.order_id), latest.get(link.fingerprint, 0))
        acting = [c for c in changes if triage.needs_action(c)]
        conditions: list[ColumnElement[bool]] = []
        open_values = [s.value for s in OPEN_STATES]
        t = work_orders.c
        if latest:
            attached = select(work_order_alarms.c.order_id).where(
                work_order_alarms.c.fingerprint.in_(sorted(latest))
            )
            conditions.append(t.id.in_(sorted(set(latest.values()))))
            conditions.append(and_(t.id.in_(attached), t.state.in_(open_values)))
        if acting:
            since = min(c.last_event_at for c in acting) - self.settings.group_window
            conditions.append(
                and_(
                    t.location.in_(sorted({c.location for c in acting})),
                    t.category.in_(sorted({triage.category_of(c) for c in acting})),
                    t.state.in_(open_values),
                    func.coalesce(t.last_alarm_at, t.created_at) >= since,
                )
            )
        if not conditions:
            return
        query = select(work_orders).where(or_(*conditions)).order_by(t.id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        result = await conn.execute(query)
        names = list(result.keys())
        for values in result.all():
            row = dict(zip(names, values, strict=True))
            batch.add_order(_Order(row, (0, int(row["id"])), int(row["version"])))

    def _apply_one(
        self, change: AlarmInstanceChange, batch: _Batch, counts: WorkOrderStats
    ) -> None:
        """Decide `change` against the batch's state as the changes before it left it."""
        dedupe = triage.dedupe_key(change)
        if dedupe in batch.seen:
            counts.duplicates += 1
            return
        acts = triage.needs_action(change)
        order = self._attached_order(batch, change.fingerprint, open_only=acts)
        if order is None and acts:
            order = self._group_order(batch, change)
        if order is None:
            if not acts:
                counts.ignored += 1
                return
            self._open_for_alarm(change, batch, dedupe)
            counts.orders_opened += 1
            return
        self._attach(batch, order, change, dedupe, counts)

    @staticmethod
    def _attached_order(batch: _Batch, fingerprint: str, *, open_only: bool) -> _Order | None:
        """The latest order `fingerprint` is attached to (the latest open one: `open_only`)."""
        best: _Order | None = None
        for order in batch.by_fingerprint.get(fingerprint, ()):
            if open_only and State(order.row["state"]) not in OPEN_STATES:
                continue
            if best is None or order.key > best.key:
                best = order
        return best

    def _group_order(self, batch: _Batch, change: AlarmInstanceChange) -> _Order | None:
        """The latest open order of the change's group whose last alarm is within the window."""
        since = change.last_event_at - self.settings.group_window
        best: _Order | None = None
        for order in batch.groups.get((change.location, triage.category_of(change)), ()):
            row = order.row
            last = row["last_alarm_at"] if row["last_alarm_at"] is not None else row["created_at"]
            if State(row["state"]) not in OPEN_STATES or last < since:
                continue
            if best is None or order.key > best.key:
                best = order
        return best

    def _open_for_alarm(self, change: AlarmInstanceChange, batch: _Batch, dedupe: str) -> None:
        now = self._clock.now()
        category, priority = triage.category_of(change), triage.priority_of(change)
        description = batch.descriptions.get(change.fingerprint, "")
        row: dict[str, Any] = {
            "source": "alarm",
            "category": category,
            "priority": priority,
            "company": batch.companies.get(change.gateway_id, ""),
            "location": change.location,
            "title": f"{change.rule_id} at {change.location}"[:TITLE_MAX],
            "description": description[:DESCRIPTION_MAX],
            "fingerprint": change.fingerprint,
            "last_alarm_at": change.last_event_at,
            "due_at": self._due(
                State.NEW, category=category, source="alarm", priority=priority, started_at=now
            ),
            "verifier": None,
            "closed_at": None,
            "state": State.NEW.value,
            "version": 0,
            "created_at": now,
            "updated_at": now,
        }
        order = _Order(row, (1, len(batch.opened)), 0)
        batch.opened.append(order)
        batch.add_order(order)
        batch.event(
            order,
            action=OPEN_ACTION,
            to_state=State.NEW,
            at=now,
            evidence={"alarms": [_alarm_evidence(change)]},
            data={"rule_id": change.rule_id, "device_id": change.device_id},
            dedupe=dedupe,
        )
        state = triage.state_of(change)
        batch.link(order, change.fingerprint, _Link(change.last_seq, change.last_seq, state, now))
        batch.publish(order, action=OPEN_ACTION, from_state=None)

    def _attach(
        self,
        batch: _Batch,
        order: _Order,
        change: AlarmInstanceChange,
        dedupe: str,
        counts: WorkOrderStats,
    ) -> None:
        now = self._clock.now()
        state = triage.state_of(change)
        self._record_alarm(batch, order, change, now)
        row = order.row
        if triage.needs_action(change):
            last = row["last_alarm_at"]
            row["last_alarm_at"] = (
                change.last_event_at if last is None else max(last, change.last_event_at)
            )
            row["priority"] = triage.more_urgent(row["priority"], triage.priority_of(change))
        batch.event(
            order,
            action=ALARM_ACTION,
            to_state=State(row["state"]),
            at=now,
            evidence={"alarms": [_alarm_evidence(change)]},
            data={"alarm_state": state, "stale": change.stale, "device_id": change.device_id},
            dedupe=dedupe,
        )
        counts.alarms_attached += 1
        batch.publish(order, action=ALARM_ACTION, from_state=row["state"])
        if (
            state in triage.CLEARED_STATES
            and row["category"] in self.settings.auto_verify_categories
            and State(row["state"]) in OPEN_STATES
            and self._all_cleared(order)
        ):
            before = row["state"]
            row.update(verifier=store.SYSTEM_ACTOR, closed_at=now, due_at=None)
            batch.event(
                order,
                action=AUTO_VERIFY_ACTION,
                to_state=State.CLOSED,
                at=now,
                reason=f"{row['category']} verifies itself: every attached alarm cleared",
                evidence={"alarms": [_alarm_evidence(change)]},
            )
            counts.auto_verified += 1
            batch.publish(order, action=AUTO_VERIFY_ACTION, from_state=before)

    @staticmethod
    def _record_alarm(
        batch: _Batch, order: _Order, change: AlarmInstanceChange, now: datetime
    ) -> None:
        """Attach the alarm to the order, or move its link on unless `change` is older."""
        state = "stale" if change.stale else triage.state_of(change)
        link = order.links.get(change.fingerprint)
        if link is None:
            batch.link(
                order, change.fingerprint, _Link(change.last_seq, change.last_seq, state, now)
            )
        elif change.last_seq >= link.last_seq:
            link.last_seq, link.state, link.updated_at = change.last_seq, state, now
            link.dirty = True

    @staticmethod
    def _all_cleared(order: _Order) -> bool:
        return all(link.state in triage.CLEARED_STATES for link in order.links.values())

    async def _write(self, conn: AsyncConnection, batch: _Batch) -> None:
        """Write what the batch decided: new orders, changed orders, events, links, publications."""
        if batch.opened:
            numbers = await store.next_numbers(conn, self._clock.now(), self._tz, len(batch.opened))
            for order, number in zip(batch.opened, numbers, strict=True):
                order.row["number"] = number
            inserted = await store.insert_orders(conn, [o.row for o in batch.opened])
            for order, stored in zip(batch.opened, inserted, strict=True):
                order.row = {**stored, **order.row, "id": stored["id"]}
        await store.update_orders(
            conn,
            [(o.row, o.version) for o in batch.stored.values() if o.row["version"] != o.version],
        )
        await store.insert_events(conn, [{**e, "order_id": o.row["id"]} for o, e in batch.events])
        new_links: list[dict[str, object]] = []
        moved_links: list[dict[str, object]] = []
        for order in batch.orders:
            for fingerprint, link in order.links.items():
                if link.new or link.dirty:
                    values = link.values(order.row["id"], fingerprint)
                    (new_links if link.new else moved_links).append(values)
        await store.insert_links(conn, new_links)
        await store.update_links(conn, moved_links)
        await publish_many(
            conn,
            [
                Publication({**order.row, **snapshot}, action, from_state, store.SYSTEM_ACTOR)
                for order, snapshot, action, from_state in batch.publications
            ],
        )

    # --- actions ------------------------------------------------------------------------------

    async def act(
        self,
        order_id: int,
        action: str,
        user: User,
        payload: Mapping[str, object],
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Apply `action` by `user` to the order; return the order's row after it.

        Raises `store.OrderNotFoundError` (absent or outside the user's scope),
        `store.VersionConflictError` (`expected_version` is stale), and the lifecycle's
        `IllegalActionError`, `ActionForbiddenError`, `InvalidPayloadError`.
        """
        async with self._engine.connect() as connection:
            conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
            async with conn.begin():
                order = await store.lock_order(conn, order_id, store.visible_orders(user))
                if expected_version is not None and expected_version != order["version"]:
                    raise store.VersionConflictError(
                        expected_version, int(order["version"]), State(order["state"])
                    )
                facts = replace(
                    store.facts_of(order), hold_approved=order["hold_approved_at"] is not None
                )
                now = self._clock.now()
                # a dispatch's assignee: the roster's pick, or the person named, checked (lent?)
                from cloud_ingest.dispatch.service import prepare_dispatch  # noqa: PLC0415

                payload, assigned = await prepare_dispatch(
                    conn, order, action, user, payload, now=now
                )
                decision = decide(facts, action, user.name, user.role, payload)
                changes = dict(decision.changes)
                if decision.timestamp_column is not None:
                    changes[decision.timestamp_column] = now
                if decision.counts_rework:
                    changes["rework_count"] = int(order["rework_count"]) + 1
                if decision.sla_clock is SlaClock.PAUSE:  # an approved hold keeps the due time
                    changes.update(due_at=None, hold_due_at=order["due_at"])
                elif decision.sla_clock is SlaClock.RESUME or (
                    decision.sla_clock is SlaClock.RESTART
                    and decision.to_state != decision.from_state
                ):
                    paused = order["hold_approved_at"], order["hold_due_at"]
                    changes["due_at"] = self._due(
                        decision.to_state,
                        category=order["category"],
                        source=order["source"],
                        priority=order["priority"],
                        started_at=now,
                        deadline=order["external_deadline"],
                        paused=paused if decision.sla_clock is SlaClock.RESUME else None,
                    )
                order = await store.append_event(
                    conn,
                    order,
                    action=decision.action.value,
                    to_state=decision.to_state,
                    actor=user.name,
                    role=user.role.value,
                    at=now,
                    reason=decision.reason,
                    evidence=decision.evidence,
                    data={**decision.data, **assigned},
                    changes=changes,
                )
                await publish(
                    conn,
                    order,
                    action=decision.action.value,
                    from_state=decision.from_state.value,
                    actor=user.name,
                    reason=decision.reason,
                )
                return order

    # --- requests -----------------------------------------------------------------------------

    async def create_request(self, user: User, request: RequestInput) -> dict[str, Any]:
        """Open an order for a person's request; return its row.

        A resident's request is always `resident` and theirs (`requester`); a 12345 complaint
        needs the hotline's `external_ref` and is opened once per reference (a repeat returns the
        existing order). The location must lie within the user's area. Raises
        `InvalidPayloadError` or `ActionForbiddenError`.
        """
        source, location = self._check_request(user, request)
        now = self._clock.now()
        try:
            return await self._insert_request(user, request, source, location, now)
        except IntegrityError:
            existing = await self._by_external_ref(source, request.external_ref)
            if existing is None:
                raise
            return existing

    def _check_request(self, user: User, request: RequestInput) -> tuple[str, str]:
        source = "resident" if user.role is Role.RESIDENT else request.source
        if source not in REQUEST_SOURCES:
            raise InvalidPayloadError(f"'source' must be one of {', '.join(REQUEST_SOURCES)}")
        if source == "hotline_12345" and not (request.external_ref or "").strip():
            raise InvalidPayloadError("a 12345 complaint needs the hotline's 'external_ref'")
        if not request.text.strip():
            raise InvalidPayloadError("'text' must describe the problem")
        location = normal_path(
            request.location or (user.area if user.role is Role.RESIDENT else "")
        )
        if not location:
            raise InvalidPayloadError("'location' (a site path) is required")
        area = normal_path(user.area)
        if (
            not user.sees_everything
            and area
            and not (location == area or location.startswith(area + "/"))
        ):
            raise ActionForbiddenError(f"{location!r} is outside your area {area!r}")
        deadline = request.external_deadline
        if deadline is not None:
            if deadline.utcoffset() is None:
                raise InvalidPayloadError("'external_deadline' needs a time zone offset")
            try:
                far = abs(deadline.astimezone(UTC) - self._clock.now()) > DEADLINE_RANGE
            except OverflowError:
                far = True
            if far:
                raise InvalidPayloadError("'external_deadline' is not within ten years of now")
        return source, location

    async def _insert_request(
        self, user: User, request: RequestInput, source: str, location: str, now: datetime
    ) -> dict[str, Any]:
        async with self._engine.connect() as connection:
            conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
            async with conn.begin():
                if request.external_ref:
                    existing = (
                        await conn.execute(
                            select(work_orders.c.id).where(
                                work_orders.c.source == source,
                                work_orders.c.external_ref == request.external_ref,
                            )
                        )
                    ).scalar_one_or_none()
                    if existing is not None:
                        return await store.lock_order(conn, int(existing))
                company = user.company
                if user.sees_everything:
                    company = request.company or await store.company_of_location(conn, location)
                category = request.category.strip() or "general"
                priority = triage.normal_priority(
                    request.priority if user.role is not Role.RESIDENT else None, "P3"
                )
                if triage.is_fire_or_manhole(category):
                    priority = "P1"
                text_ = request.text.strip()
                values = {
                    "number": await store.next_number(conn, now, self._tz),
                    "source": source,
                    "category": category,
                    "priority": priority,
                    "company": company,
                    "location": location,
                    "title": (request.title or text_.splitlines()[0])[:TITLE_MAX],
                    "description": text_[:DESCRIPTION_MAX],
                    "external_ref": request.external_ref,
                    "external_deadline": request.external_deadline,
                    "requester": user.name if source == "resident" else None,
                    "due_at": self._due(
                        State.NEW,
                        category=category,
                        source=source,
                        priority=priority,
                        started_at=now,
                        deadline=request.external_deadline,
                    ),
                }
                photos = list(request.photos)
                order = await store.insert_order(
                    conn,
                    values,
                    actor=user.name,
                    role=user.role.value,
                    at=now,
                    evidence={"photos": photos} if photos else {},
                    data={"source": source},
                )
                await publish(conn, order, action="open", from_state=None, actor=user.name)
                return order

    async def _by_external_ref(self, source: str, ref: str | None) -> dict[str, Any] | None:
        if not ref:
            return None
        async with self._engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(work_orders).where(
                            work_orders.c.source == source, work_orders.c.external_ref == ref
                        )
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    # --- reads --------------------------------------------------------------------------------

    async def get(self, order_id: int, user: User) -> dict[str, Any]:
        """The order with its `events` and `alarms`; `OrderNotFoundError` outside the scope."""
        async with self._engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(work_orders).where(
                            work_orders.c.id == order_id, store.visible_orders(user)
                        )
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise store.OrderNotFoundError(f"no work order {order_id}")
            order = dict(row)
            order["events"] = await store.events_of(conn, order_id)
            order["alarms"] = await store.alarms_of(conn, order_id)
        return order

    async def find(
        self,
        user: User,
        *,
        limit: int,
        after: int | None = None,
        states: Sequence[str] = (),
        category: str | None = None,
        company: str | None = None,
        location: str | None = None,
        sources: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Up to `limit` orders `user` may see, newest first (keyset after order id `after`)."""
        async with self._engine.connect() as conn:
            return await store.list_orders(
                conn,
                store.visible_orders(user),
                limit=limit,
                after=after,
                states=states,
                category=category,
                company=company,
                location=location,
                sources=sources,
            )

    # --- SLA ----------------------------------------------------------------------------------

    def _due(
        self,
        state: State,
        *,
        category: str,
        source: str,
        priority: str,
        started_at: datetime,
        deadline: datetime | None = None,
        paused: tuple[datetime | None, datetime | None] | None = None,
    ) -> datetime | None:
        """When the SLA stage that `state` runs falls due (None: no stage runs).

        `paused` (when a hold was approved, the due time it stopped) resumes the stage: it is due
        after the time that was left then, counted as working time on the category's calendar
        (wall time for a wall-clock category), none if it was overdue already.
        """
        stage = STAGE_OF.get(state)
        if stage is None:
            return None
        policy = self._sla
        if policy is None:
            policy = self._sla = default_policy()
        entry = sla_category(source, category)
        stopped_at, stopped_due = paused or (None, None)
        if stopped_at is not None and stopped_due is not None:
            calendar = policy.calendar_for(entry)
            left = max(calendar.working_time_between(stopped_at, stopped_due), timedelta(0))
            return calendar.add_working_time(started_at, left)
        try:
            return policy.due(
                stage,
                entry,
                started_at,
                priority=sla_priority(priority),
                deadline=deadline,
            )
        except (ValueError, KeyError):
            log.warning("work orders: no SLA due time for %s/%s", entry, stage)
            return None


def _alarm_evidence(change: AlarmInstanceChange) -> dict[str, object]:
    return {
        "fingerprint": change.fingerprint,
        "seq": change.last_seq,
        "state": triage.state_of(change),
        "severity": change.severity,
        "at": change.last_event_at.isoformat(),
        "stale": change.stale,
    }


__all__ = [
    "REQUEST_SOURCES",
    "SOURCES",
    "RequestInput",
    "WorkOrderSettings",
    "WorkOrderStats",
    "WorkOrders",
]
