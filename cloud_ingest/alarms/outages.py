"""Gateway outages: the cloud-side offline alarm, and the NO_DATA alarms an outage inhibits.

A gateway's latest outage is kept on its row: `offline_since` (when it began) and `online_since`
(when it ended; older than `offline_since` or unset while it lasts). Opening an outage raises the
gateway's own alarm instance `gateway/<id>/offline` (rule `gateway_offline`, FIRING), with a
stored event, and inhibits the gateway's open NO_DATA instances; closing it resolves that alarm.
The event `seq` is the time of the change in milliseconds (at least one more than the instance's
last), so it grows across outages.

Everything here runs inside the caller's transaction and decides from the database only, so any
number of ingest processes may call it; the callers make each transition conditional on the
gateway row (an outage is opened or closed once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID, uuid5

from sqlalchemy import ColumnElement, Table, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_ingest.infra.schema import alarm_events, alarm_instances, gateways
from cloud_ingest.ingest.work_orders import AlarmInstanceChange
from core.types import AlarmState, Severity

OFFLINE_RULE: Final = "gateway_offline"
"""The rule id of the cloud-side gateway offline alarm."""
OFFLINE_SEVERITY: Final = Severity.CRITICAL
"""A gateway that is offline hides every alarm of its devices."""
OFFLINE_WORK_ORDER: Final = {"category": "gateway", "priority": "high"}
"""The work-order hint of the offline alarm."""
ACTIVE_STATES: Final = tuple(
    s.value for s in AlarmState if s not in {AlarmState.NORMAL, AlarmState.RESOLVED}
)
"""The states of an instance that still asks for attention."""
_EVENT_NAMESPACE: Final = UUID("0e0c8d5e-7f0b-4c5f-9a53-6d1f4f1c2a90")
"""Cloud-side events have no gateway batch: their `batch_id` is a UUIDv5 of (fingerprint, seq)."""

CHANGE_COLUMNS: Final = tuple(
    alarm_instances.c[name]
    for name in (
        "fingerprint",
        "gateway_id",
        "device_id",
        "rule_id",
        "location",
        "state",
        "severity",
        "last_seq",
        "last_event_at",
        "valid_until",
        "work_order",
        "stale",
        "inhibited_by",
    )
)
"""The columns of `alarm_instances` an `AlarmInstanceChange` carries, in its field order."""


def change_of(row: Sequence[Any]) -> AlarmInstanceChange:
    """The `AlarmInstanceChange` of a row selected or returned as `CHANGE_COLUMNS`."""
    return AlarmInstanceChange(**{c.name: row[i] for i, c in enumerate(CHANGE_COLUMNS)})


def offline_fingerprint(gateway_id: str) -> str:
    """The fingerprint of the gateway's offline alarm."""
    return f"gateway/{gateway_id}/offline"


def outage_open() -> ColumnElement[bool]:
    """SQL: the gateway's latest outage has not ended."""
    g = gateways.c
    return and_(
        g.offline_since.is_not(None),
        or_(g.online_since.is_(None), g.online_since < g.offline_since),
    )


def dialect_insert(conn: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The connection dialect's own INSERT, which has ON CONFLICT."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {name!r}")


@dataclass(frozen=True, slots=True)
class Outage:
    """A gateway's latest outage as its row holds it."""

    offline_since: datetime | None
    online_since: datetime | None

    @property
    def open(self) -> bool:
        """Whether the outage has not ended."""
        return self.offline_since is not None and (
            self.online_since is None or self.online_since < self.offline_since
        )

    def inhibits(self, at: datetime, settle: timedelta) -> bool:
        """Whether a NO_DATA event at `at` is inhibited: the outage lasts, or `at` falls in it.

        "In it" runs from `offline_since` to `settle` after `online_since` (the gateway replays
        its outbox after reconnecting and its rules may raise NO_DATA while devices re-report).
        """
        if self.offline_since is None:
            return False
        if self.open:
            return True
        assert self.online_since is not None  # noqa: S101 - closed means both are set
        return self.offline_since <= at <= self.online_since + settle


@dataclass(frozen=True, slots=True)
class OutageChanges:
    """What opening or closing an outage changed."""

    offline_alarm: AlarmInstanceChange | None
    """The offline alarm instance as it now is (`None`: a newer event was stored already)."""
    inhibited: frozenset[str] = frozenset()
    """Fingerprints of open NO_DATA instances the outage now inhibits."""


async def gateway_offline(
    conn: AsyncConnection, gateway_id: str, *, site: str, since: datetime, source: str
) -> OutageChanges:
    """Record that the gateway's outage began at `since` (its row says so already).

    Raises the offline alarm (FIRING) and inhibits the gateway's open NO_DATA instances that
    are not inhibited yet (their work, if any, stays as it is; they are not handed on again).
    `source` says how the outage was noticed (`status` or `silence`), kept in the evidence.
    """
    fingerprint = offline_fingerprint(gateway_id)
    change = await _offline_event(
        conn,
        gateway_id,
        site,
        state=AlarmState.FIRING,
        starts_at=since,
        at=since,
        evidence={"source": source},
    )
    t = alarm_instances.c
    inhibit = (
        update(alarm_instances)
        .where(
            t.gateway_id == gateway_id,
            t.state == AlarmState.NO_DATA.value,
            t.inhibited_by.is_(None),
        )
        .values(inhibited_by=fingerprint, updated_at=since)
        .returning(t.fingerprint)
    )
    inhibited = frozenset((await conn.execute(inhibit)).scalars())
    return OutageChanges(change, inhibited)


async def gateway_online(
    conn: AsyncConnection,
    gateway_id: str,
    *,
    site: str,
    offline_since: datetime,
    online_since: datetime,
    source: str,
) -> OutageChanges:
    """Record that the outage begun at `offline_since` ended at `online_since`: RESOLVE it."""
    change = await _offline_event(
        conn,
        gateway_id,
        site,
        state=AlarmState.RESOLVED,
        starts_at=offline_since,
        at=online_since,
        evidence={"source": source},
    )
    return OutageChanges(change)


async def _offline_event(
    conn: AsyncConnection,
    gateway_id: str,
    site: str,
    *,
    state: AlarmState,
    starts_at: datetime,
    at: datetime,
    evidence: dict[str, str],
) -> AlarmInstanceChange | None:
    """Store one event of the gateway's offline alarm and fold it into its instance."""
    fingerprint = offline_fingerprint(gateway_id)
    t = alarm_instances.c
    held = await conn.execute(select(t.last_seq).where(t.fingerprint == fingerprint))
    last_seq = held.scalar_one_or_none()
    seq = int(at.timestamp() * 1000)
    if last_seq is not None:
        seq = max(seq, last_seq + 1)
    description = (
        f"gateway {gateway_id} is offline"
        if state is AlarmState.FIRING
        else f"gateway {gateway_id} is back online"
    )
    common: dict[str, Any] = {
        "fingerprint": fingerprint,
        "gateway_id": gateway_id,
        "device_id": gateway_id,
        "rule_id": OFFLINE_RULE,
        "location": site,
        "description": description,
        "state": state.value,
        "severity": OFFLINE_SEVERITY.value,
        "starts_at": starts_at,
        "valid_until": None,
        "work_order": OFFLINE_WORK_ORDER,
    }
    event = {
        **common,
        "seq": seq,
        "batch_id": uuid5(_EVENT_NAMESPACE, f"{fingerprint}/{seq}"),
        "at": at,
        "value": None,
        "value_bool": None,
        "evidence": evidence,
        "suppressed": [],
        "rule_version": "",
        "received_at": at,
    }
    await conn.execute(
        dialect_insert(conn, alarm_events).on_conflict_do_nothing(
            index_elements=["fingerprint", "seq"]
        ),
        event,
    )
    instance = {
        **common,
        "first_event_at": at,
        "last_event_at": at,
        "last_seq": seq,
        "stale": False,
        "inhibited_by": None,
        "updated_at": at,
    }
    insert = dialect_insert(conn, alarm_instances)
    keep = {"fingerprint", "first_event_at"}
    stmt = insert.on_conflict_do_update(
        index_elements=["fingerprint"],
        set_={c.name: insert.excluded[c.name] for c in alarm_instances.c if c.name not in keep},
        where=insert.excluded.last_seq > t.last_seq,
    ).returning(*CHANGE_COLUMNS)
    row = (await conn.execute(stmt, instance)).one_or_none()
    return None if row is None else change_of(row)
