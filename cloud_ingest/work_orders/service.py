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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text, update
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
    OPEN_STATES,
    ActionForbiddenError,
    InvalidPayloadError,
    State,
    decide,
)
from cloud_ingest.work_orders.publish import publish
from cloud_ingest.work_orders.sla import SlaPolicy, Stage, default_policy

log = logging.getLogger(__name__)

SOURCES: Final = ("alarm", "resident", "hotline_12345", "inspector")
"""Where work comes from."""
REQUEST_SOURCES: Final = SOURCES[1:]
ALARM_ROLE: Final = "system"
TITLE_MAX: Final = 256
DEADLINE_RANGE: Final = timedelta(days=3650)
"""A hotline deadline further than this from now is refused as a typing error."""
DESCRIPTION_MAX: Final = 4096
_STAGE_OF: Final = {
    State.NEW: Stage.ACCEPTANCE,
    State.ACCEPTED: Stage.DISPATCH,
    State.REWORK: Stage.DISPATCH,
    State.REOPENED: Stage.DISPATCH,
    State.DISPATCHED: Stage.ARRIVAL,
    State.IN_PROGRESS: Stage.HANDLING,
    State.AWAITING_VERIFICATION: Stage.VERIFICATION,
}
"""The SLA stage that runs while an order is in a state (none: the clock does not run)."""
_SLA_PRIORITY: Final = {"P1": "urgent", "P2": "high", "P3": "normal", "P4": "low"}


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
class _Batch:
    """What one alarm call has looked up so far (per transaction)."""

    companies: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)


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
                    for key in keys:
                        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
                batch = await self._prefetch(conn, changes)
                counts = WorkOrderStats()
                for change in changes:
                    await self._apply_one(conn, change, batch, counts)
        for name in ("orders_opened", "alarms_attached", "duplicates", "ignored", "auto_verified"):
            setattr(self.stats, name, getattr(self.stats, name) + getattr(counts, name))

    async def _prefetch(
        self, conn: AsyncConnection, changes: Sequence[AlarmInstanceChange]
    ) -> _Batch:
        batch = _Batch()
        gateway_ids = sorted({c.gateway_id for c in changes})
        rows = await conn.execute(
            select(gateways.c.id, gateways.c.company).where(gateways.c.id.in_(gateway_ids))
        )
        batch.companies = {str(gid): str(company) for gid, company in rows}
        fingerprints = sorted({c.fingerprint for c in changes})
        rows = await conn.execute(
            select(alarm_instances.c.fingerprint, alarm_instances.c.description).where(
                alarm_instances.c.fingerprint.in_(fingerprints)
            )
        )
        batch.descriptions = {str(fp): str(d) for fp, d in rows}
        return batch

    async def _apply_one(
        self,
        conn: AsyncConnection,
        change: AlarmInstanceChange,
        batch: _Batch,
        counts: WorkOrderStats,
    ) -> None:
        dedupe = triage.dedupe_key(change)
        seen = await conn.execute(
            select(work_order_events.c.id).where(work_order_events.c.dedupe == dedupe)
        )
        if seen.first() is not None:
            counts.duplicates += 1
            return
        acts = triage.needs_action(change)
        order = await self._attached_order(conn, change.fingerprint, open_only=acts)
        if order is None and acts:
            order = await self._group_order(conn, change)
        if order is None:
            if not acts:
                counts.ignored += 1
                return
            await self._open_for_alarm(conn, change, batch, dedupe)
            counts.orders_opened += 1
            return
        await self._attach(conn, order, change, dedupe, counts)

    async def _attached_order(
        self, conn: AsyncConnection, fingerprint: str, *, open_only: bool
    ) -> dict[str, Any] | None:
        query = (
            select(work_orders.c.id)
            .join(work_order_alarms, work_order_alarms.c.order_id == work_orders.c.id)
            .where(work_order_alarms.c.fingerprint == fingerprint)
        )
        if open_only:
            query = query.where(work_orders.c.state.in_([s.value for s in OPEN_STATES]))
        order_id = (
            await conn.execute(query.order_by(work_orders.c.id.desc()).limit(1))
        ).scalar_one_or_none()
        return None if order_id is None else await store.lock_order(conn, int(order_id))

    async def _group_order(
        self, conn: AsyncConnection, change: AlarmInstanceChange
    ) -> dict[str, Any] | None:
        since = change.last_event_at - self.settings.group_window
        order_id = (
            await conn.execute(
                select(work_orders.c.id)
                .where(
                    work_orders.c.location == change.location,
                    work_orders.c.category == triage.category_of(change),
                    work_orders.c.state.in_([s.value for s in OPEN_STATES]),
                    func.coalesce(work_orders.c.last_alarm_at, work_orders.c.created_at) >= since,
                )
                .order_by(work_orders.c.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        return None if order_id is None else await store.lock_order(conn, int(order_id))

    async def _open_for_alarm(
        self, conn: AsyncConnection, change: AlarmInstanceChange, batch: _Batch, dedupe: str
    ) -> None:
        now = self._clock.now()
        category, priority = triage.category_of(change), triage.priority_of(change)
        description = batch.descriptions.get(change.fingerprint, "")
        title = f"{change.rule_id} at {change.location}"[:TITLE_MAX]
        values = {
            "number": await store.next_number(conn, now, self._tz),
            "source": "alarm",
            "category": category,
            "priority": priority,
            "company": batch.companies.get(change.gateway_id, ""),
            "location": change.location,
            "title": title,
            "description": description[:DESCRIPTION_MAX],
            "fingerprint": change.fingerprint,
            "last_alarm_at": change.last_event_at,
            "due_at": self._due(
                State.NEW, category=category, source="alarm", priority=priority, started_at=now
            ),
        }
        order = await store.insert_order(
            conn,
            values,
            actor=store.SYSTEM_ACTOR,
            role=ALARM_ROLE,
            at=now,
            evidence={"alarms": [_alarm_evidence(change)]},
            data={"rule_id": change.rule_id, "device_id": change.device_id},
            dedupe=dedupe,
        )
        await conn.execute(
            work_order_alarms.insert().values(
                order_id=order["id"],
                fingerprint=change.fingerprint,
                first_seq=change.last_seq,
                last_seq=change.last_seq,
                state=triage.state_of(change),
                updated_at=now,
            )
        )
        await publish(conn, order, action="open", from_state=None, actor=store.SYSTEM_ACTOR)

    async def _attach(
        self,
        conn: AsyncConnection,
        order: dict[str, Any],
        change: AlarmInstanceChange,
        dedupe: str,
        counts: WorkOrderStats,
    ) -> None:
        now = self._clock.now()
        state = triage.state_of(change)
        await self._record_alarm(conn, order["id"], change, now)
        changes: dict[str, object] = {}
        if triage.needs_action(change):
            last = order["last_alarm_at"]
            changes["last_alarm_at"] = (
                change.last_event_at if last is None else max(last, change.last_event_at)
            )
            priority = triage.more_urgent(order["priority"], triage.priority_of(change))
            if priority != order["priority"]:
                changes["priority"] = priority
        order = await store.append_event(
            conn,
            order,
            action=ALARM_ACTION,
            to_state=State(order["state"]),
            actor=store.SYSTEM_ACTOR,
            role=ALARM_ROLE,
            at=now,
            evidence={"alarms": [_alarm_evidence(change)]},
            data={"alarm_state": state, "stale": change.stale, "device_id": change.device_id},
            changes=changes,
            dedupe=dedupe,
        )
        counts.alarms_attached += 1
        await publish(
            conn, order, action=ALARM_ACTION, from_state=order["state"], actor=store.SYSTEM_ACTOR
        )
        if (
            state in triage.CLEARED_STATES
            and order["category"] in self.settings.auto_verify_categories
            and State(order["state"]) in OPEN_STATES
            and await self._all_cleared(conn, order["id"])
        ):
            before = order["state"]
            order = await store.append_event(
                conn,
                order,
                action=AUTO_VERIFY_ACTION,
                to_state=State.CLOSED,
                actor=store.SYSTEM_ACTOR,
                role=ALARM_ROLE,
                at=now,
                reason=f"{order['category']} verifies itself: every attached alarm cleared",
                evidence={"alarms": [_alarm_evidence(change)]},
                changes={"verifier": store.SYSTEM_ACTOR, "closed_at": now, "due_at": None},
            )
            counts.auto_verified += 1
            await publish(
                conn, order, action=AUTO_VERIFY_ACTION, from_state=before, actor=store.SYSTEM_ACTOR
            )

    async def _record_alarm(
        self, conn: AsyncConnection, order_id: int, change: AlarmInstanceChange, now: datetime
    ) -> None:
        table = work_order_alarms
        key = (table.c.order_id == order_id, table.c.fingerprint == change.fingerprint)
        row = (await conn.execute(select(table.c.last_seq).where(*key))).first()
        state = "stale" if change.stale else triage.state_of(change)
        if row is None:
            await conn.execute(
                table.insert().values(
                    order_id=order_id,
                    fingerprint=change.fingerprint,
                    first_seq=change.last_seq,
                    last_seq=change.last_seq,
                    state=state,
                    updated_at=now,
                )
            )
        elif change.last_seq >= int(row[0]):
            await conn.execute(
                update(table)
                .where(*key)
                .values(last_seq=change.last_seq, state=state, updated_at=now)
            )

    async def _all_cleared(self, conn: AsyncConnection, order_id: int) -> bool:
        states = await conn.execute(
            select(work_order_alarms.c.state).where(work_order_alarms.c.order_id == order_id)
        )
        return all(s in triage.CLEARED_STATES for (s,) in states)

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
                decision = decide(store.facts_of(order), action, user.name, user.role, payload)
                now = self._clock.now()
                changes = dict(decision.changes)
                if decision.timestamp_column is not None:
                    changes[decision.timestamp_column] = now
                if decision.counts_rework:
                    changes["rework_count"] = int(order["rework_count"]) + 1
                if decision.to_state != decision.from_state:
                    changes["due_at"] = self._due(
                        decision.to_state,
                        category=order["category"],
                        source=order["source"],
                        priority=order["priority"],
                        started_at=now,
                        deadline=order["external_deadline"],
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
                    data=decision.data,
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
    ) -> datetime | None:
        """When the SLA stage that `state` runs falls due (None: no stage runs)."""
        stage = _STAGE_OF.get(state)
        if stage is None:
            return None
        policy = self._sla
        if policy is None:
            policy = self._sla = default_policy()
        sla_category = "hotline_12345" if source == "hotline_12345" else category
        try:
            return policy.due(
                stage,
                sla_category,
                started_at,
                priority=_SLA_PRIORITY.get(priority),
                deadline=deadline,
            )
        except (ValueError, KeyError):
            log.warning("work orders: no SLA due time for %s/%s", sla_category, stage)
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
