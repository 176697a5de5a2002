"""The SLA breach scheduler: overdue work orders escalate one level, and that level is told.

Every `interval` the scheduler looks for open orders whose running stage is overdue (`due_at` at or
before the clock's now; an order ON_HOLD whose hold is not approved yet still runs its handling
stage, an approved hold has no due time) and takes each, the most overdue first, in a transaction
of its own:

1. it reads the order and works out the step (`escalation.escalate_on_breach`: grid → community →
   street → district; at the district the level stays and the district is told again);
2. it inserts the breach into `work_order_escalations` under its UNIQUE key
   (`escalation.breach_key`: order, stage, level escalated from; a repeat at the district also
   carries the due time it answers, as that key repeats). If the key is taken, another process
   escalated this breach: nothing more is done;
3. it locks the order and checks it has not moved since step 1 (else the transaction is rolled
   back: the next run sees the order as it is now);
4. it raises `escalation_level`, sets the next due time (`escalation.escalation_due`: the stage's
   limit again, from now, on the category's calendar, so an overdue order climbs one level per
   limit), appends the system event `breach` (stage, levels, target area, due times) to the order's
   log and publishes it (`publish.publish`: the live stream, and a `work_order.breach` notification
   located at the target level's site path, so the subscriptions of that area receive it).

So however many server processes run the scheduler, each breach escalates the order once, with one
event and one notification. Time comes from the clock given (tests move a `ManualClock`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.clock import Clock, SystemClock
from cloud_ingest.infra.config import Settings
from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import work_order_escalations, work_orders
from cloud_ingest.tasks import Periodic
from cloud_ingest.work_orders import store
from cloud_ingest.work_orders.escalation import (
    ESCALATION_LEVELS,
    EscalationStep,
    escalate_on_breach,
    escalation_due,
)
from cloud_ingest.work_orders.lifecycle import BREACH_ACTION, OPEN_STATES, State
from cloud_ingest.work_orders.publish import escalation_area, publish
from cloud_ingest.work_orders.sla import SlaPolicy, Stage, default_policy
from cloud_ingest.work_orders.stages import STAGE_OF, sla_category, sla_priority

log = logging.getLogger(__name__)

__all__ = [
    "BreachScheduler",
    "BreachSettings",
    "BreachStats",
    "Escalation",
    "OrderMovedError",
    "escalate_order",
    "overdue_orders",
    "running_stage",
    "start_scheduler",
]

SYSTEM_ROLE: Final = "system"


@dataclass(frozen=True, slots=True)
class BreachSettings:
    """How the scheduler runs (`Settings.sla_breach_interval_s`, `sla_breach_batch`)."""

    interval: timedelta = timedelta(seconds=30)
    """Time between two runs."""
    batch: int = 500
    """At most this many overdue orders per run, the most overdue first (the rest: next run)."""

    @classmethod
    def of(cls, settings: Settings) -> BreachSettings:
        """The scheduler's part of the application's settings."""
        return cls(
            interval=timedelta(seconds=settings.sla_breach_interval_s),
            batch=settings.sla_breach_batch,
        )


@dataclass(slots=True)
class BreachStats:
    """What this process's scheduler did (read by tests and `/metrics`)."""

    runs: int = 0
    escalations: int = 0
    """Breaches this process escalated (one level up)."""
    renotified: int = 0
    """Breaches at the district, which was told again (the level stays)."""
    taken: int = 0
    """Overdue orders another process escalated first (the breach's key was taken, or the order
    was no longer due once read)."""
    moved: int = 0
    """Orders that changed between the search and the escalation (left to the next run)."""
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Escalation:
    """One breach acted on: the order, the step taken, its target and the due times."""

    order_id: int
    step: EscalationStep
    target: str
    due_at: datetime
    """The due time that was breached."""
    next_due_at: datetime | None
    """When the stage next calls for an escalation (None: no limit could be computed)."""
    key: str


class OrderMovedError(Exception):
    """The order changed between reading and locking it: roll back, the next run looks again."""


def running_stage(state: State) -> Stage | None:
    """The SLA stage that runs while an order is in `state` (ON_HOLD: handling, until approved)."""
    if state is State.ON_HOLD:
        return Stage.HANDLING
    return STAGE_OF.get(state)


async def overdue_orders(conn: AsyncConnection, now: datetime, limit: int) -> list[int]:
    """The ids of up to `limit` open orders due at or before `now`, the most overdue first."""
    rows = await conn.execute(
        select(work_orders.c.id)
        .where(
            work_orders.c.state.in_([s.value for s in OPEN_STATES]),
            work_orders.c.due_at.is_not(None),
            work_orders.c.due_at <= now,
        )
        .order_by(work_orders.c.due_at, work_orders.c.id)
        .limit(limit)
    )
    return [int(order_id) for (order_id,) in rows]


def _next_due(
    policy: SlaPolicy, order: Mapping[str, Any], stage: Stage, due: datetime, now: datetime
) -> datetime | None:
    category = sla_category(str(order["source"]), str(order["category"]))
    try:
        # the stage began before it fell due; after an escalation its limit counts from now
        return escalation_due(
            policy,
            stage,
            category,
            due,
            escalated_at=now,
            priority=sla_priority(str(order["priority"])),
        )
    except (ValueError, KeyError):
        log.warning("sla breaches: no next due time for %s/%s", category, stage)
        return None


async def _record(conn: AsyncConnection, values: Mapping[str, object]) -> bool:
    """Insert the breach unless its key is taken; whether it was inserted."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    table = work_order_escalations
    statement = (
        dialect.insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[table.c.key])
        .returning(table.c.id)
    )
    return (await conn.execute(statement)).first() is not None


async def escalate_order(
    conn: AsyncConnection, order_id: int, now: datetime, policy: SlaPolicy
) -> Escalation | None:
    """Escalate the order if its running stage is overdue at `now`, in the caller's transaction.

    Returns None when it is not due (any more), or when another process recorded the breach.
    Raises `OrderMovedError` when the order changed after it was read (the caller rolls back, so
    the breach's row goes too).
    """
    row = (
        (await conn.execute(select(work_orders).where(work_orders.c.id == order_id)))
        .mappings()
        .first()
    )
    if row is None:
        return None
    order = dict(row)
    state, due = State(order["state"]), order["due_at"]
    stage = running_stage(state)
    if state not in OPEN_STATES or stage is None or due is None or due > now:
        return None
    level_index = min(int(order["escalation_level"]), len(ESCALATION_LEVELS) - 1)
    step = escalate_on_breach(ESCALATION_LEVELS[level_index], stage)
    key = step.key(order_id)
    if step.exhausted:
        key += f"@{due.strftime('%Y%m%dT%H%M%S.%fZ')}"
    next_due = _next_due(policy, order, stage, due, now)
    changed = {**order, "escalation_level": ESCALATION_LEVELS.index(step.to_level)}
    _, target = escalation_area(changed)
    recorded = await _record(
        conn,
        {
            "order_id": order_id,
            "key": key,
            "stage": stage.value,
            "from_level": step.from_level,
            "to_level": step.to_level,
            "target": target,
            "due_at": due,
            "next_due_at": next_due,
            "at": now,
        },
    )
    if not recorded:
        return None
    locked = await store.lock_order(conn, order_id)
    if locked["version"] != order["version"]:
        raise OrderMovedError(order_id)
    data: dict[str, object] = {
        "stage": stage.value,
        "from_level": step.from_level,
        "to_level": step.to_level,
        "exhausted": step.exhausted,
        "target": target,
        "due_at": due.isoformat(),
        "next_due_at": None if next_due is None else next_due.isoformat(),
        "key": key,
    }
    after = await store.append_event(
        conn,
        locked,
        action=BREACH_ACTION,
        to_state=state,
        actor=store.SYSTEM_ACTOR,
        role=SYSTEM_ROLE,
        at=now,
        reason=step.reason,
        data=data,
        changes={"escalation_level": changed["escalation_level"], "due_at": next_due},
    )
    await publish(
        conn,
        after,
        action=BREACH_ACTION,
        from_state=state.value,
        actor=store.SYSTEM_ACTOR,
        reason=step.reason,
    )
    return Escalation(order_id, step, target, due, next_due, key)


class BreachScheduler:
    """Runs the breach search every `settings.interval`, each order in its own transaction.

    A failed order is logged and counted (`stats.failures`); the others and the next run go on.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        settings: BreachSettings | None = None,
        *,
        clock: Clock | None = None,
        sla: SlaPolicy | None = None,
    ) -> None:
        """Keep what each run needs; nothing runs before `start`."""
        self._engine = engine
        self.settings = settings or BreachSettings()
        self._clock: Clock = clock or SystemClock()
        self._sla = sla or default_policy()
        self._periodic = Periodic(
            "sla-breaches", self.settings.interval.total_seconds(), self.run_once, self._failed
        )
        self.stats = BreachStats()

    async def run_once(self, now: datetime | None = None) -> list[Escalation]:
        """One run at `now` (default: the clock); the escalations this process made."""
        at = self._clock.now() if now is None else now
        async with self._engine.connect() as conn:
            due = await overdue_orders(conn, at, self.settings.batch)
        done: list[Escalation] = []
        for order_id in due:
            try:
                escalation = await self._escalate(order_id, at)
            except OrderMovedError:
                self.stats.moved += 1
                continue
            except Exception:
                self.stats.failures += 1
                log.exception("sla breaches: escalating work order %s failed", order_id)
                continue
            if escalation is None:
                self.stats.taken += 1
            else:
                done.append(escalation)
                if escalation.step.exhausted:
                    self.stats.renotified += 1
                else:
                    self.stats.escalations += 1
        self.stats.runs += 1
        return done

    async def _escalate(self, order_id: int, now: datetime) -> Escalation | None:
        async with self._engine.connect() as connection:
            conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
            async with conn.begin():
                return await escalate_order(conn, order_id, now, self._sla)

    def start(self) -> None:
        """Start the periodic task (once)."""
        self._periodic.start()

    async def stop(self) -> None:
        """Stop the task; a run in progress is cancelled (its transaction rolls back)."""
        await self._periodic.stop()

    def _failed(self) -> None:
        self.stats.failures += 1


def start_scheduler(settings: Settings, engine: AsyncEngine) -> BreachScheduler | None:
    """The started scheduler, or None when `sla_breach_interval_s` is 0."""
    if settings.sla_breach_interval_s <= 0:
        return None
    scheduler = BreachScheduler(engine, BreachSettings.of(settings))
    scheduler.start()
    return scheduler
