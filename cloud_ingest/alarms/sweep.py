"""The alarm sweep: a periodic job that marks what no message will tell the ingest.

Each run, in one transaction, at a time `now` it is given:

1. declares **silent gateways** offline: a gateway that never sent a `/status` (status `unknown`:
   it uses the HTTP intake and has no last will) and was last heard more than `silent_after`
   before `now` gets an outage from `now` and its offline alarm (`cloud_ingest/alarms/outages.py`);
   its next envelope ends the outage. A gateway with a status is left to its status and last will;
2. **releases inhibited NO_DATA instances** of gateways whose outage ended more than `settle`
   ago: what is still NO_DATA once the gateway has replayed its outbox is a real silence, and
   now goes to the work-order service;
3. flags **stale** instances (`cloud_ingest/alarms/stale.py`).

What changed goes to the `WorkOrderService` after the commit (an inhibited instance never). Every
step is an UPDATE whose WHERE excludes what it already did, so N ingest processes may run the
sweep at once: each change is made, and handed on, by one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import literal, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.alarms.handoff import Handoff, mark_pending
from cloud_ingest.alarms.outages import (
    CHANGE_COLUMNS,
    change_of,
    gateway_offline,
    outage_open,
)
from cloud_ingest.alarms.stale import mark_stale
from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import alarm_instances, gateways
from cloud_ingest.ingest.work_orders import AlarmInstanceChange, WorkOrderService
from cloud_ingest.stream.alarms import record_alarm_changes
from cloud_ingest.tasks import Periodic

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepSettings:
    """How the sweep runs (see `cloud_ingest.infra.config.Settings`)."""

    interval: timedelta = timedelta(seconds=30)
    """Time between two runs."""
    stale_grace: timedelta = timedelta(seconds=60)
    """How long after `valid_until` an active instance without a re-send is stale."""
    silent_after: timedelta | None = timedelta(seconds=300)
    """A gateway without a status heard nothing from this long is offline (`None`: never)."""
    inhibit_settle: timedelta = timedelta(seconds=120)
    """How long after an outage ended its inhibited NO_DATA instances are held back."""


async def mark_silent_gateways(
    conn: AsyncConnection, now: datetime, silent_after: timedelta
) -> list[AlarmInstanceChange]:
    """Open an outage for each gateway without a status that was silent for `silent_after`.

    Returns the offline alarms raised (their open NO_DATA instances become inhibited).
    """
    g = gateways.c
    stmt = (
        update(gateways)
        .where(
            g.status == "unknown",
            g.last_seen.is_not(None),
            g.last_seen < now - silent_after,
            not_(outage_open()),
        )
        .values(offline_since=now)
        .returning(g.id, g.site)
    )
    changes: list[AlarmInstanceChange] = []
    for row in (await conn.execute(stmt)).all():
        outage = await gateway_offline(conn, row.id, site=row.site, since=now, source="silence")
        if outage.offline_alarm is not None:
            changes.append(outage.offline_alarm)
    return changes


async def release_inhibited(
    conn: AsyncConnection, now: datetime, settle: timedelta
) -> list[AlarmInstanceChange]:
    """Clear `inhibited_by` of instances whose gateway's outage ended more than `settle` ago."""
    g, t = gateways.c, alarm_instances.c
    settled = select(g.id).where(
        g.online_since.is_not(None),
        or_(g.offline_since.is_(None), g.online_since > g.offline_since),
        g.online_since < now - settle,
    )
    stmt = (
        update(alarm_instances)
        .where(
            t.inhibited_by.is_not(None),
            t.inhibited_by == literal("gateway/") + t.gateway_id + literal("/offline"),
            t.gateway_id.in_(settled),
        )
        .values(inhibited_by=None, updated_at=now)
        .returning(*CHANGE_COLUMNS)
    )
    return [change_of(row) for row in await conn.execute(stmt)]


async def sweep_once(
    conn: AsyncConnection, now: datetime, settings: SweepSettings
) -> list[AlarmInstanceChange]:
    """Run the three steps at `now` in the caller's transaction; the changes to hand on."""
    changes: list[AlarmInstanceChange] = []
    if settings.silent_after is not None:
        changes += await mark_silent_gateways(conn, now, settings.silent_after)
    changes += await release_inhibited(conn, now, settings.inhibit_settle)
    changes += await mark_stale(conn, now, settings.stale_grace)
    handed_on = _handed_on(changes)
    await record_alarm_changes(conn, handed_on)
    return handed_on


def _handed_on(changes: Iterable[AlarmInstanceChange]) -> list[AlarmInstanceChange]:
    """The last change of each fingerprint, without the inhibited ones."""
    latest = {c.fingerprint: c for c in changes}
    return [c for c in latest.values() if c.inhibited_by is None]


class AlarmSweep:
    """Runs `sweep_once` every `settings.interval` in its own transaction, until stopped.

    A failed run is logged and counted (`failures`); the next one runs as planned.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        work_orders: WorkOrderService,
        settings: SweepSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Keep what each run needs; nothing runs before `start`."""
        self._engine = engine
        self._handoff = Handoff(engine, work_orders, inline_max=None)  # off the ingest's path
        self.settings = settings
        self._clock = clock
        self._periodic = Periodic(
            "alarm-sweep", self.settings.interval.total_seconds(), self.run_once, self._failed
        )
        self.runs = 0
        self.failures = 0
        self.changes = 0
        """Instances handed to the work-order service, in total."""

    async def run_once(self, now: datetime | None = None) -> list[AlarmInstanceChange]:
        """One sweep at `now` (default: the clock): commit, then hand the changes on."""
        at = self._clock() if now is None else now
        async with self._engine.connect() as connection:
            conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
            async with conn.begin():
                changes = await sweep_once(conn, at, self.settings)
                if changes and self._handoff.active:
                    await mark_pending(conn, changes)
        self.runs += 1
        if changes:
            self.changes += len(changes)
            await self._handoff.hand_over(changes)
        return changes

    def start(self) -> None:
        """Start the periodic task (once)."""
        self._periodic.start()

    async def stop(self) -> None:
        """Stop the task; a run in progress is cancelled (its transaction rolls back)."""
        await self._periodic.stop()

    def _failed(self) -> None:
        self.failures += 1
