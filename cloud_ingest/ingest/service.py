"""The ingest service: settles a batch of gateway messages in one database transaction.

`IngestService` implements `MessageHandler` (`cloud_ingest/ingest/messages.py`). For a batch it
parses every message first (no I/O), then, in **one transaction** (group commit):

- refuses what may not be stored, each with a reason code kept in `dead_letters`: the envelope's
  own codes (`core.errors.EnvelopeErrorCode`: `bad_json`, `too_large`, `too_deep`, `non_finite`,
  `unsupported_version`, `schema`), `bad_topic`, `identity` (the envelope's or status's
  `gateway_id` is not the topic's), `unknown_gateway` (only with `require_registration`),
  `foreign_device` (a device registered to another gateway), `time_out_of_bounds` (a time
  further in the future or past than the configured bounds, measured from the message's
  reception);
- recognises a batch id already stored as a duplicate and stores nothing of it again (the
  `ingested_batches` row is inserted with `ON CONFLICT DO NOTHING`, so two processes racing on
  one batch id store it once);
- registers unknown gateways (unless `require_registration`) and devices on first sight;
- hands readings to the `TelemetrySink` inside the same transaction (by default the SQL
  `readings` table, `cloud_ingest/telemetry/sink.py`), inserts alarm events with
  `ON CONFLICT (fingerprint, seq) DO NOTHING`, and folds the new events into `alarm_instances`
  with `INSERT ... ON CONFLICT (fingerprint) DO UPDATE ... WHERE excluded.last_seq >
  alarm_instances.last_seq`, so an older event never overwrites a newer state;
- applies `/status` messages (`{"state": "online"|"offline", "gateway_id", "version", "at"}`)
  to the gateway's status, version and last seen time;
- keeps each gateway's latest outage (`cloud_ingest/alarms/outages.py`): an `offline` status
  (its last will included) opens one, raising the gateway's offline alarm and inhibiting its
  open NO_DATA instances; an `online` status ends it and resolves the alarm. A gateway that never
  sent a status (HTTP intake, no last will) is declared offline by the alarm sweep when silent
  (`cloud_ingest/alarms/sweep.py`); its next envelope ends that outage. Each transition is
  decided on the gateway row inside the transaction, so N processes applying the same status
  make one outage;
- folds a NO_DATA event of a gateway whose outage lasts, or whose time falls inside its latest
  outage (up to `inhibit_settle` after it ended: the gateway replays its outbox), with
  `inhibited_by` set to the offline alarm's fingerprint; any other event clears `inhibited_by`
  and `stale`.

Only a storage failure raises; the transaction is then rolled back and nothing of the batch is
kept. The changed alarm instances are marked for the `WorkOrderService` inside the transaction
and handed to it after the commit (`cloud_ingest/alarms/handoff.py`: the most urgent at once, the
rest of a burst by a background worker, never lost), except the inhibited ones, which open no
work.

`settle(batch)` does the same and says what became of each message (an `Outcome`: stored,
duplicate, rejected with its reason, or ignored), for a transport that answers per message (the
HTTP intake); calling the service does exactly this and drops the answer.

`require_registration=False` (the default, for the embedded demo) registers every gateway the
first time it is heard from; production sets it, so only gateways added by the administrator
(`cloud-ingest gateways add`) are stored and any other is dead-lettered as `unknown_gateway`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import chain
from operator import attrgetter
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.alarms.handoff import Handoff, mark_pending
from cloud_ingest.alarms.outages import (
    CHANGE_COLUMNS,
    Outage,
    OutageChanges,
    change_of,
    gateway_offline,
    gateway_online,
    offline_fingerprint,
    outage_open,
)
from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import (
    DEAD_LETTER_PAYLOAD_MAX,
    alarm_events,
    alarm_instances,
    dead_letters,
    devices,
    gateways,
    ingested_batches,
)
from cloud_ingest.ingest.counters import IngestCounters
from cloud_ingest.ingest.messages import Incoming
from cloud_ingest.ingest.work_orders import AlarmInstanceChange, NoWorkOrders, WorkOrderService
from cloud_ingest.stream.alarms import record_alarm_changes
from cloud_ingest.telemetry.sink import SqlTelemetry, TelemetrySink
from core.envelope_json import loads
from core.errors import EnvelopeError, EnvelopeErrorCode
from core.types import ENVELOPE_LIMITS, AlarmEvent, AlarmState, Envelope

log = logging.getLogger(__name__)

TOPIC_PREFIX: Final = ("steward", "v1")
_IN_CHUNK: Final = 500
"""Ids per `IN (...)` query, well under every driver's parameter limit."""
_DETAIL_MAX: Final = 1024
LAST_SEEN_RESOLUTION: Final = timedelta(seconds=30)
"""A device's `last_seen` is moved only when it is older than this: a busy device costs one row
write per 30 s instead of one per batch (on PostgreSQL each is a new row version and WAL)."""
_STATUS_STATES: Final = frozenset({"online", "offline"})
_TS: Final = attrgetter("ts")
_DEVICE_ID: Final = attrgetter("device_id")
_TOUCH_GATEWAY: Final = (
    update(gateways).where(gateways.c.id == bindparam("gw")).values(last_seen=bindparam("at"))
)
"""Moves a gateway's `last_seen`; executed with one parameter set per gateway of a batch."""
_TICK: Final = timedelta(milliseconds=1)
"""Keeps an outage's end after its start when two status messages share a reception time."""


class RejectReason(StrEnum):
    """Why the service refused a message, besides the envelope's own codes."""

    BAD_TOPIC = "bad_topic"
    """Not `steward/v1/<gateway>/up` or `.../status`."""
    IDENTITY = "identity"
    """The message's `gateway_id` is not the topic's."""
    UNKNOWN_GATEWAY = "unknown_gateway"
    """The gateway is not registered (only when registration is required)."""
    FOREIGN_DEVICE = "foreign_device"
    """A device of the envelope is registered to another gateway."""
    TIME_OUT_OF_BOUNDS = "time_out_of_bounds"
    """A time further in the future or the past than the service accepts."""


class Settled(StrEnum):
    """What became of one message of a settled batch."""

    STORED = "stored"
    """Stored (an envelope's batch, or a gateway status)."""
    DUPLICATE = "duplicate"
    """An envelope whose batch id was stored before (or earlier in the same batch)."""
    REJECTED = "rejected"
    """Refused with a reason code and kept as a dead letter."""
    IGNORED = "ignored"
    """Nothing to store (an empty retained status being cleared)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message, in the order of the batch (committed when returned)."""

    settled: Settled
    batch_id: UUID | None = None
    """The envelope's batch id, when the message was parsed far enough to know it."""
    reason: str | None = None
    """The reason code of a rejected message (`RejectReason` or `EnvelopeErrorCode`)."""
    detail: str | None = None
    """Why a message was rejected, in words."""


@dataclass(frozen=True, slots=True)
class _Up:
    message: Incoming
    envelope: Envelope
    devices: tuple[str, ...]
    """The envelope's device ids, each once, in the order they first appear."""


@dataclass(frozen=True, slots=True)
class _Status:
    message: Incoming
    gateway_id: str
    state: str
    version: str | None
    session: datetime | None = None
    """When the gateway's connection that sent it began (its will shares it); `None` from a
    gateway that does not say."""


@dataclass(frozen=True, slots=True)
class _Rejected:
    message: Incoming
    reason: str
    detail: str
    batch_id: UUID | None = None


@dataclass(slots=True)
class _Outcome:
    """What one transaction stored, applied to the counters after the commit."""

    envelopes: int = 0
    readings: int = 0
    alarm_events: int = 0
    replayed_events: int = 0
    duplicates: int = 0
    status_updates: int = 0
    outdated_statuses: int = 0
    rejected: list[_Rejected] = field(default_factory=list)
    changes: list[AlarmInstanceChange] = field(default_factory=list)
    stored: set[int] = field(default_factory=set)
    """`id()` of the parsed envelopes and statuses that were stored."""


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class IngestService:
    """Stores batches of gateway messages (a `MessageHandler`); see the module docstring.

    Args:
        engine: the database (migrated to the newest revision).
        work_orders: receives the alarm instances each committed batch changed.
        require_registration: refuse gateways that are not registered (`unknown_gateway`)
            instead of registering them on first sight.
        max_bytes: the largest message accepted (`too_large` above it).
        max_future: how far after its reception a time may lie.
        max_past: how far before its reception a time may lie (the gateway's outbox may hold
            data through a long outage).
        telemetry: where readings go (default: the `readings` table of `engine`). It writes
            inside the batch's open transaction, before the batch is claimed for good, so a
            failed write rolls the batch back and the broker redelivers it.
        inhibit_settle: how long after a gateway's outage ended a NO_DATA event of its devices
            is still inhibited.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        work_orders: WorkOrderService | None = None,
        require_registration: bool = False,
        max_bytes: int = ENVELOPE_LIMITS.max_bytes,
        max_future: timedelta = timedelta(hours=1),
        max_past: timedelta = timedelta(days=30),
        telemetry: TelemetrySink | None = None,
        inhibit_settle: timedelta = timedelta(seconds=120),
    ) -> None:
        self._engine = engine
        self._work_orders: WorkOrderService = work_orders or NoWorkOrders()
        self.handoff = Handoff(engine, self._work_orders)
        """Hands the changed alarm instances on after each commit (`cloud_ingest/alarms/handoff.py`)."""
        self.require_registration = require_registration
        self.max_bytes = max_bytes
        self.max_future = max_future
        self.max_past = max_past
        self.counters = IngestCounters()
        self._dialect = engine.dialect.name
        self._telemetry: TelemetrySink = telemetry or SqlTelemetry(engine)
        self.inhibit_settle = inhibit_settle

    @property
    def work_orders(self) -> WorkOrderService:
        """The service that receives the changed alarm instances."""
        return self._work_orders

    async def __call__(self, batch: Sequence[Incoming]) -> None:
        """Settle every message of `batch` in one transaction, or raise and settle none."""
        await self.settle(batch)

    async def settle(self, batch: Sequence[Incoming]) -> list[Outcome]:
        """Settle `batch` in one transaction and say what became of each message, in order.

        Raises, with nothing of the batch kept, only when the storage failed.
        """
        if not batch:
            return []
        parsed = [self._parse(message) for message in batch]
        started = time.perf_counter()
        try:
            async with self._engine.connect() as connection:
                conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
                async with conn.begin():
                    outcome = await self._store(conn, parsed)
        except Exception:
            self.counters.storage_failures += 1
            raise
        self._count(len(batch), outcome, time.perf_counter() - started)
        await self.handoff.hand_over(outcome.changes)
        return _outcomes(parsed, outcome)

    def _count(self, messages: int, outcome: _Outcome, seconds: float) -> None:
        c = self.counters
        c.messages += messages
        c.batches += 1
        c.envelopes += outcome.envelopes
        c.readings += outcome.readings
        c.alarm_events += outcome.alarm_events
        c.alarm_events_replayed += outcome.replayed_events
        c.alarm_instances_changed += len(outcome.changes)
        c.duplicates += outcome.duplicates
        c.status_updates += outcome.status_updates
        c.outdated_statuses += outcome.outdated_statuses
        c.rejections.update(r.reason for r in outcome.rejected)
        c.write_seconds_total += seconds
        c.write_seconds_last = seconds
        c.write_seconds_max = max(c.write_seconds_max, seconds)

    # --- parsing (no I/O) ---------------------------------------------------------------------

    def _parse(self, message: Incoming) -> _Up | _Status | _Rejected | None:  # noqa: PLR0911
        parts = message.topic.split("/")
        if len(parts) != 4 or tuple(parts[:2]) != TOPIC_PREFIX or not parts[2]:  # noqa: PLR2004
            return _Rejected(message, RejectReason.BAD_TOPIC, f"unexpected topic {message.topic!r}")
        gateway_id, kind = parts[2], parts[3]
        if len(message.payload) > self.max_bytes:
            detail = f"larger than {self.max_bytes} bytes ({len(message.payload)})"
            return _Rejected(message, EnvelopeErrorCode.TOO_LARGE, detail)
        if kind == "status":
            return self._parse_status(message, gateway_id)
        if kind != "up":
            return _Rejected(message, RejectReason.BAD_TOPIC, f"unexpected topic {message.topic!r}")
        try:
            envelope = loads(message.payload)
        except EnvelopeError as err:
            return _Rejected(message, err.code, str(err))
        if envelope.gateway_id != gateway_id:
            detail = f"envelope gateway_id {envelope.gateway_id!r} on the topic of {gateway_id!r}"
            return _Rejected(message, RejectReason.IDENTITY, detail, envelope.batch_id)
        refused = self._out_of_bounds(envelope, message.received_at)
        if refused is not None:
            reason = RejectReason.TIME_OUT_OF_BOUNDS
            return _Rejected(message, reason, refused, envelope.batch_id)
        return _Up(message, envelope, _device_ids(envelope))

    def _out_of_bounds(self, envelope: Envelope, received_at: datetime) -> str | None:
        earliest = received_at - self.max_past
        latest = received_at + self.max_future
        times: list[tuple[str, datetime]] = [("sent_at", envelope.sent_at)]
        if envelope.readings:
            times.append(("readings.ts", min(map(_TS, envelope.readings))))
            times.append(("readings.ts", max(map(_TS, envelope.readings))))
        times.extend(("alarm_events.at", event.at) for event in envelope.alarm_events)
        for name, when in times:
            if not earliest <= when <= latest:
                return f"{name} {when.isoformat()} outside [{earliest.isoformat()}, {latest.isoformat()}]"
        return None

    @staticmethod
    def _parse_status(  # noqa: PLR0911
        message: Incoming, gateway_id: str
    ) -> _Status | _Rejected | None:
        if not message.payload:
            return None  # a retained status being cleared: nothing to store
        try:
            doc = json.loads(message.payload.decode())
        except (UnicodeDecodeError, ValueError) as err:
            return _Rejected(message, EnvelopeErrorCode.BAD_JSON, f"status: {err}")
        schema = EnvelopeErrorCode.SCHEMA
        if not isinstance(doc, dict):
            return _Rejected(message, schema, "status: expected an object")
        state = doc.get("state")
        if state not in _STATUS_STATES:
            return _Rejected(message, schema, f"status: unknown state {state!r}")
        claimed = doc.get("gateway_id", gateway_id)
        if claimed != gateway_id:
            detail = f"status gateway_id {claimed!r} on the topic of {gateway_id!r}"
            return _Rejected(message, RejectReason.IDENTITY, detail)
        version = doc.get("version")
        if version is not None and (not isinstance(version, str) or len(version) > 64):  # noqa: PLR2004
            return _Rejected(
                message, schema, "status: version must be a string of 64 characters at most"
            )
        session = doc.get("session")
        if session is None:
            return _Status(message, gateway_id, str(state), version)
        when = _aware_time(session)
        if when is None:
            return _Rejected(
                message, schema, "status: session must be an ISO 8601 time with offset"
            )
        return _Status(message, gateway_id, str(state), version, when)

    # --- storing (one transaction) ------------------------------------------------------------

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """The dialect's own INSERT, which has ON CONFLICT."""
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        if self._dialect == "sqlite":
            return sqlite.insert(table)
        raise RuntimeError(f"unsupported database dialect {self._dialect!r}")

    async def _store(
        self, conn: AsyncConnection, parsed: Sequence[_Up | _Status | _Rejected | None]
    ) -> _Outcome:
        outcome = _Outcome()
        ups: list[_Up] = []
        statuses: list[_Status] = []
        for item in parsed:
            if isinstance(item, _Up):
                ups.append(item)
            elif isinstance(item, _Status):
                statuses.append(item)
            elif isinstance(item, _Rejected):
                outcome.rejected.append(item)
        ups, statuses = await self._check_gateways(conn, ups, statuses, outcome)
        ups = await self._drop_known_batches(conn, ups, outcome)
        ups = await self._check_devices(conn, ups, outcome)
        ups = await self._claim_batches(conn, ups, outcome)
        await self._store_readings(conn, ups, outcome)
        await self._store_alarm_events(conn, ups, outcome)
        await self._apply_statuses(conn, ups, statuses, outcome)
        await record_alarm_changes(conn, outcome.changes)
        if self.handoff.active and outcome.changes:
            await mark_pending(conn, outcome.changes)
        outcome.stored.update(map(id, ups))
        outcome.stored.update(map(id, statuses))
        position = {id(item.message): i for i, item in enumerate(parsed) if item is not None}
        outcome.rejected.sort(key=lambda r: position[id(r.message)])
        await self._store_dead_letters(conn, outcome.rejected)
        return outcome

    async def _check_gateways(
        self,
        conn: AsyncConnection,
        ups: list[_Up],
        statuses: list[_Status],
        outcome: _Outcome,
    ) -> tuple[list[_Up], list[_Status]]:
        """Register unknown gateways, or refuse their messages when registration is required."""
        heard: dict[str, datetime] = {}
        for up in ups:
            heard.setdefault(up.envelope.gateway_id, up.message.received_at)
        for status in statuses:
            heard.setdefault(status.gateway_id, status.message.received_at)
        if not heard:
            return ups, statuses
        known: set[str] = set()
        for chunk in _chunks(sorted(heard)):
            result = await conn.execute(select(gateways.c.id).where(gateways.c.id.in_(chunk)))
            known.update(result.scalars())
        unknown = heard.keys() - known
        if not unknown:
            return ups, statuses
        if not self.require_registration:
            rows = [{"id": gw, "created_at": heard[gw]} for gw in sorted(unknown)]
            await conn.execute(self._insert(gateways).on_conflict_do_nothing(), rows)
            return ups, statuses
        reason = RejectReason.UNKNOWN_GATEWAY
        refused: list[tuple[Incoming, str, UUID | None]] = [
            (u.message, u.envelope.gateway_id, u.envelope.batch_id)
            for u in ups
            if u.envelope.gateway_id in unknown
        ]
        refused += [(s.message, s.gateway_id, None) for s in statuses if s.gateway_id in unknown]
        for message, gw, batch_id in refused:
            detail = f"gateway {gw!r} is not registered"
            outcome.rejected.append(_Rejected(message, reason, detail, batch_id))
        return (
            [u for u in ups if u.envelope.gateway_id not in unknown],
            [s for s in statuses if s.gateway_id not in unknown],
        )

    async def _drop_known_batches(
        self, conn: AsyncConnection, ups: list[_Up], outcome: _Outcome
    ) -> list[_Up]:
        """Drop envelopes whose batch id is stored already or repeated within this batch."""
        if not ups:
            return ups
        ids = sorted({str(u.envelope.batch_id) for u in ups})
        stored: set[UUID] = set()
        for chunk in _chunks(ids):
            uuids = [UUID(i) for i in chunk]
            query = select(ingested_batches.c.batch_id).where(
                ingested_batches.c.batch_id.in_(uuids)
            )
            stored.update((await conn.execute(query)).scalars())
        kept: list[_Up] = []
        for up in ups:
            if up.envelope.batch_id in stored:
                outcome.duplicates += 1
            else:
                stored.add(up.envelope.batch_id)
                kept.append(up)
        return kept

    async def _check_devices(
        self, conn: AsyncConnection, ups: list[_Up], outcome: _Outcome
    ) -> list[_Up]:
        """Register new devices to their gateway; refuse envelopes naming another's device."""
        claims = _DeviceClaims.of(ups)
        if not claims.gateway:
            return ups
        owners = await self._owners(conn, sorted(claims.gateway))
        new = [d for d in claims.gateway if d not in owners]
        if new:
            owners.update(await self._register_devices(conn, new, claims))
        kept: list[_Up] = []
        for up in ups:
            gw = up.envelope.gateway_id
            foreign = next((d for d in up.devices if owners.get(d) != gw), None)
            if foreign is None:
                kept.append(up)
            else:
                detail = (
                    f"device {foreign!r} belongs to gateway {owners.get(foreign)!r}, not {gw!r}"
                )
                reason = RejectReason.FOREIGN_DEVICE
                outcome.rejected.append(_Rejected(up.message, reason, detail, up.envelope.batch_id))
        seen = sorted(d for d in claims.gateway if d not in new and owners[d] == claims.gateway[d])
        if seen:
            latest = max(claims.seen_at[d] for d in seen)
            stale_before = latest - LAST_SEEN_RESOLUTION
            for chunk in _chunks(seen):
                query = (
                    update(devices)
                    .where(devices.c.id.in_(chunk), devices.c.last_seen < stale_before)
                    .values(last_seen=latest)
                )
                await conn.execute(query)
        return kept

    async def _register_devices(
        self, conn: AsyncConnection, new: Sequence[str], claims: _DeviceClaims
    ) -> dict[str, str]:
        """Insert `new` devices; return the owner of each (another process may have won)."""
        rows = [
            {
                "id": d,
                "gateway_id": claims.gateway[d],
                "location": claims.location.get(d, ""),
                "labels": {},
                "first_seen": claims.seen_at[d],
                "last_seen": claims.seen_at[d],
            }
            for d in new
        ]
        stmt = self._insert(devices).on_conflict_do_nothing().returning(devices.c.id)
        inserted = set((await conn.execute(stmt, rows)).scalars())
        owners = {d: claims.gateway[d] for d in new if d in inserted}
        raced = [d for d in new if d not in inserted]
        if raced:
            owners.update(await self._owners(conn, raced))
        return owners

    @staticmethod
    async def _owners(conn: AsyncConnection, device_ids: Sequence[str]) -> dict[str, str]:
        owners: dict[str, str] = {}
        for chunk in _chunks(device_ids):
            query = select(devices.c.id, devices.c.gateway_id).where(devices.c.id.in_(chunk))
            owners.update({row.id: row.gateway_id for row in await conn.execute(query)})
        return owners

    async def _claim_batches(
        self, conn: AsyncConnection, ups: list[_Up], outcome: _Outcome
    ) -> list[_Up]:
        """Insert the batch ids; one another process stored meanwhile is a duplicate."""
        if not ups:
            return ups
        rows = [
            {
                "batch_id": u.envelope.batch_id,
                "gateway_id": u.envelope.gateway_id,
                "sent_at": u.envelope.sent_at,
                "received_at": u.message.received_at,
                "readings": len(u.envelope.readings),
                "alarm_events": len(u.envelope.alarm_events),
            }
            for u in ups
        ]
        stmt = (
            self._insert(ingested_batches)
            .on_conflict_do_nothing()
            .returning(ingested_batches.c.batch_id)
        )
        claimed = set((await conn.execute(stmt, rows)).scalars())
        kept = [u for u in ups if u.envelope.batch_id in claimed]
        outcome.duplicates += len(ups) - len(kept)
        outcome.envelopes += len(kept)
        return kept

    async def _store_readings(
        self, conn: AsyncConnection, ups: list[_Up], outcome: _Outcome
    ) -> None:
        """Hand the readings of the claimed envelopes to the telemetry sink, in the transaction."""
        if any(up.envelope.readings for up in ups):
            outcome.readings += await self._telemetry.write(conn, [up.envelope for up in ups])

    async def _store_alarm_events(
        self, conn: AsyncConnection, ups: list[_Up], outcome: _Outcome
    ) -> None:
        events: dict[tuple[str, int], tuple[_Up, AlarmEvent]] = {}
        total = 0
        for up in ups:
            for event in up.envelope.alarm_events:
                total += 1
                events.setdefault((event.fingerprint, event.seq), (up, event))
        if not events:
            return
        rows = [_event_row(up, event) for up, event in events.values()]
        stmt = (
            self._insert(alarm_events)
            .on_conflict_do_nothing(index_elements=["fingerprint", "seq"])
            .returning(alarm_events.c.fingerprint, alarm_events.c.seq)
        )
        stored = {(row.fingerprint, row.seq) for row in await conn.execute(stmt, rows)}
        outcome.alarm_events += len(stored)
        outcome.replayed_events += total - len(stored)
        if stored:
            new = [events[key] for key in stored]
            inhibitors = await self._inhibitors(conn, new)
            changes = await self._fold(conn, new, inhibitors)
            outcome.changes.extend(c for c in changes if c.inhibited_by is None)

    async def _inhibitors(
        self, conn: AsyncConnection, new: Sequence[tuple[_Up, AlarmEvent]]
    ) -> dict[tuple[str, int], str]:
        """The NO_DATA events an outage of their gateway inhibits, with the inhibiting alarm."""
        no_data = [(up, e) for up, e in new if e.state is AlarmState.NO_DATA]
        if not no_data:
            return {}
        g = gateways.c
        outages: dict[str, Outage] = {}
        for chunk in _chunks(sorted({up.envelope.gateway_id for up, _ in no_data})):
            query = select(g.id, g.offline_since, g.online_since).where(
                g.id.in_(chunk), g.offline_since.is_not(None)
            )
            for row in await conn.execute(query):
                outages[row.id] = Outage(row.offline_since, row.online_since)
        inhibitors: dict[tuple[str, int], str] = {}
        for up, event in no_data:
            outage = outages.get(up.envelope.gateway_id)
            if outage is not None and outage.inhibits(event.at, self.inhibit_settle):
                inhibitors[event.fingerprint, event.seq] = offline_fingerprint(
                    up.envelope.gateway_id
                )
        return inhibitors

    async def _fold(
        self,
        conn: AsyncConnection,
        new: Sequence[tuple[_Up, AlarmEvent]],
        inhibitors: Mapping[tuple[str, int], str],
    ) -> list[AlarmInstanceChange]:
        """Fold new events into their instances: the highest `seq` wins, never an older one.

        The instance takes `inhibited_by` from its newest event (`None` clears it) and is no
        longer `stale`.
        """
        latest: dict[str, tuple[_Up, AlarmEvent]] = {}
        first_at: dict[str, datetime] = {}
        for up, event in new:
            fp = event.fingerprint
            held = latest.get(fp)
            if held is None or event.seq > held[1].seq:
                latest[fp] = (up, event)
            first_at[fp] = min(first_at.get(fp, event.at), event.at)
        rows = [
            _instance_row(up, event, first_at[fp], inhibitors.get((fp, event.seq)))
            for fp, (up, event) in latest.items()
        ]
        insert = self._insert(alarm_instances)
        excluded = insert.excluded
        keep = {"fingerprint", "first_event_at"}
        stmt = insert.on_conflict_do_update(
            index_elements=["fingerprint"],
            set_={c.name: excluded[c.name] for c in alarm_instances.c if c.name not in keep},
            where=excluded.last_seq > alarm_instances.c.last_seq,
        ).returning(*CHANGE_COLUMNS)
        return [change_of(row) for row in await conn.execute(stmt, rows)]

    async def _apply_statuses(
        self,
        conn: AsyncConnection,
        ups: list[_Up],
        statuses: list[_Status],
        outcome: _Outcome,
    ) -> None:
        for status in statuses:
            if await self._apply_status(conn, status, outcome):
                outcome.status_updates += 1
        heard: dict[str, datetime] = {}
        for up in ups:
            gw, at = up.envelope.gateway_id, up.message.received_at
            heard[gw] = max(heard.get(gw, at), at)
        if heard:
            # One statement for every gateway of the batch (the driver's executemany: one round
            # trip on PostgreSQL, one hop to SQLite's thread), in id order, so two processes
            # updating the same gateways lock their rows in the same order.
            ordered = sorted(heard)
            await conn.execute(_TOUCH_GATEWAY, [{"gw": gw, "at": heard[gw]} for gw in ordered])
            await self._end_silent_outages(conn, ordered, outcome)

    @staticmethod
    async def _apply_status(conn: AsyncConnection, status: _Status, outcome: _Outcome) -> bool:
        """Record the status; open or end the gateway's outage when the state changes it.

        Returns whether it was applied (not: an older session's, or for an unknown gateway).

        The UPDATE locks the gateway row until the commit, so of N processes applying the same
        status only the first opens (or ends) the outage.
        """
        g = gateways.c
        at = status.message.received_at
        values: dict[str, Any] = {"status": status.state, "last_seen": at}
        if status.version is not None:
            values["version"] = status.version
        stmt = update(gateways).where(g.id == status.gateway_id)
        if status.session is not None:
            # Statuses are ordered by (session, online before offline), not by arrival: an
            # ingest process that returns gets the statuses queued for it meanwhile, which
            # other processes applied long ago.
            values["status_session"] = status.session
            newer = or_(g.status_session.is_(None), g.status_session < status.session)
            if status.state == "offline":
                newer = or_(newer, and_(g.status_session == status.session, g.status != "offline"))
            stmt = stmt.where(newer)
        stmt = stmt.values(**values).returning(g.site, g.offline_since, g.online_since)
        row = (await conn.execute(stmt)).one_or_none()
        if row is None:
            outcome.outdated_statuses += status.session is not None
            return False
        outage = Outage(row.offline_since, row.online_since)
        gw = status.gateway_id
        this_gateway = update(gateways).where(g.id == gw)
        if status.state == "offline" and not outage.open:
            since = at if outage.online_since is None else max(at, outage.online_since + _TICK)
            await conn.execute(this_gateway.values(offline_since=since))
            changed = await gateway_offline(conn, gw, site=row.site, since=since, source="status")
            _merge(outcome.changes, changed)
        elif status.state == "online" and outage.open and outage.offline_since is not None:
            began = outage.offline_since
            since = max(at, began + _TICK)
            await conn.execute(this_gateway.values(online_since=since))
            changed = await gateway_online(
                conn, gw, site=row.site, offline_since=began, online_since=since, source="status"
            )
            _merge(outcome.changes, changed)
        return True

    @staticmethod
    async def _end_silent_outages(
        conn: AsyncConnection, heard: Sequence[str], outcome: _Outcome
    ) -> None:
        """End the outages the sweep opened for silent gateways that are heard again.

        Only a gateway that never sent a status (`unknown`: no last will) is ended this way; a
        gateway with a status is online again by its `online` status alone, so an envelope
        settled late cannot end an outage its last will began.
        """
        g = gateways.c
        for chunk in _chunks(heard):
            stmt = (
                update(gateways)
                .where(
                    g.id.in_(chunk),
                    g.status == "unknown",
                    outage_open(),
                    g.last_seen > g.offline_since,
                )
                .values(online_since=g.last_seen)
                .returning(g.id, g.site, g.offline_since, g.online_since)
            )
            for row in (await conn.execute(stmt)).all():
                changed = await gateway_online(
                    conn,
                    row.id,
                    site=row.site,
                    offline_since=row.offline_since,
                    online_since=row.online_since,
                    source="heard",
                )
                _merge(outcome.changes, changed)

    @staticmethod
    async def _store_dead_letters(conn: AsyncConnection, rejected: Iterable[_Rejected]) -> None:
        rows = [
            {
                "received_at": r.message.received_at,
                "topic": r.message.topic[:512],
                "reason": str(r.reason),
                "detail": r.detail[:_DETAIL_MAX],
                "payload": r.message.payload[:DEAD_LETTER_PAYLOAD_MAX],
                "payload_size": len(r.message.payload),
            }
            for r in rejected
        ]
        if rows:
            await conn.execute(dead_letters.insert(), rows)


def _merge(changes: list[AlarmInstanceChange], outage: OutageChanges) -> None:
    """Apply an outage's changes to a batch's: drop what it inhibits, keep one per fingerprint."""
    drop = set(outage.inhibited)
    if outage.offline_alarm is not None:
        drop.add(outage.offline_alarm.fingerprint)
    changes[:] = [c for c in changes if c.fingerprint not in drop]
    if outage.offline_alarm is not None:
        changes.append(outage.offline_alarm)


@dataclass(slots=True)
class _DeviceClaims:
    """The devices a batch names: the first gateway naming each, its location, when last seen."""

    gateway: dict[str, str] = field(default_factory=dict)
    location: dict[str, str] = field(default_factory=dict)
    seen_at: dict[str, datetime] = field(default_factory=dict)

    @classmethod
    def of(cls, ups: Iterable[_Up]) -> _DeviceClaims:
        claims = cls()
        for up in ups:
            gw, at = up.envelope.gateway_id, up.message.received_at
            for device_id in up.devices:
                claims.gateway.setdefault(device_id, gw)
                claims.seen_at[device_id] = max(claims.seen_at.get(device_id, at), at)
            for event in up.envelope.alarm_events:
                if event.location:
                    claims.location.setdefault(event.device_id, event.location)
        return claims


def _outcomes(
    parsed: Sequence[_Up | _Status | _Rejected | None], outcome: _Outcome
) -> list[Outcome]:
    """What became of each parsed message, once `outcome` committed."""
    refused = {id(r.message): r for r in outcome.rejected}
    answers: list[Outcome] = []
    for item in parsed:
        if item is None:
            answers.append(Outcome(Settled.IGNORED))
            continue
        if isinstance(item, _Rejected):
            answers.append(Outcome(Settled.REJECTED, item.batch_id, str(item.reason), item.detail))
            continue
        batch_id = item.envelope.batch_id if isinstance(item, _Up) else None
        rejected = refused.get(id(item.message))
        if id(item) in outcome.stored:
            answers.append(Outcome(Settled.STORED, batch_id))
        elif rejected is not None:
            reason, detail = str(rejected.reason), rejected.detail
            answers.append(Outcome(Settled.REJECTED, batch_id, reason, detail))
        else:
            answers.append(Outcome(Settled.DUPLICATE, batch_id))
    return answers


def _device_ids(envelope: Envelope) -> tuple[str, ...]:
    """The envelope's device ids (readings, then alarm events), each once, first seen first."""
    found = chain(map(_DEVICE_ID, envelope.readings), map(_DEVICE_ID, envelope.alarm_events))
    return tuple(dict.fromkeys(found))


def _hint(event: AlarmEvent) -> Mapping[str, str] | None:
    hint = event.work_order
    return None if hint is None else {"category": hint.category, "priority": hint.priority.value}


def _event_row(up: _Up, event: AlarmEvent) -> dict[str, Any]:
    value = event.value
    is_bool = value is True or value is False
    return {
        "fingerprint": event.fingerprint,
        "seq": event.seq,
        "gateway_id": up.envelope.gateway_id,
        "batch_id": up.envelope.batch_id,
        "state": event.state.value,
        "severity": event.severity.value,
        "starts_at": event.starts_at,
        "at": event.at,
        "rule_id": event.rule_id,
        "device_id": event.device_id,
        "location": event.location,
        "description": event.description,
        "valid_until": event.valid_until,
        "value": None if value is None else float(value),
        "value_bool": value if is_bool else None,
        "evidence": dict(event.evidence),
        "suppressed": list(event.suppressed),
        "work_order": _hint(event),
        "rule_version": event.rule_version,
        "received_at": up.message.received_at,
    }


def _instance_row(
    up: _Up, event: AlarmEvent, first_at: datetime, inhibited_by: str | None = None
) -> dict[str, Any]:
    return {
        "fingerprint": event.fingerprint,
        "gateway_id": up.envelope.gateway_id,
        "device_id": event.device_id,
        "rule_id": event.rule_id,
        "location": event.location,
        "description": event.description,
        "state": event.state.value,
        "severity": event.severity.value,
        "starts_at": event.starts_at,
        "first_event_at": first_at,
        "last_event_at": event.at,
        "last_seq": event.seq,
        "valid_until": event.valid_until,
        "stale": False,
        "inhibited_by": inhibited_by,
        "work_order": _hint(event),
        "updated_at": up.message.received_at,
    }


def _aware_time(value: object) -> datetime | None:
    """An ISO 8601 time with an offset, or `None` for anything else."""
    if not isinstance(value, str) or len(value) > ENVELOPE_LIMITS.name_chars:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None
