"""Work-order throughput on PostgreSQL, each figure against a baseline measured in the same run.

- alarms: alarm-instance changes turned into orders (grouping, de-duplication) by
  `WorkOrders.alarm_instances_changed` in batches of `BATCH` (as the handoff's worker hands them
  over), every second batch a redelivery of the one before, against the per-change path the
  service had before its batch path (`PerChangeWorkOrders`, kept here as the baseline: the same
  decisions, each change with its own queries and advisory lock), on the same changes in its own
  fresh database.
- actions: `POST /api/v1/work-orders/{id}/actions` (accept, dispatch, start, submit, verify: the
  permission check, the lifecycle, the locked update, the event and its publication) against a
  real `cloud-ingest serve` on loopback (uvicorn, one process), from `CLIENTS` concurrent httpx
  clients in this process, against `GET /healthz` from the same clients (the HTTP ceiling of this
  client and server).
- stream: `bench/stream_fanout.py` on the same PostgreSQL: 200 consoles on `GET /api/v1/stream`,
  an alarm event committed every 50 ms; latency from the commit to each console's receipt,
  against one console.

Run: `.venv/bin/python bench/work_orders.py [seconds]`; see bench/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench import stream_fanout
from cloud_ingest import migrations
from cloud_ingest.auth.service import add_user
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.db import WRITE_TRANSACTION, create_engine
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
    State,
)
from cloud_ingest.work_orders.publish import publish
from cloud_ingest.work_orders.service import (
    ALARM_ROLE,
    DESCRIPTION_MAX,
    TITLE_MAX,
    WorkOrders,
    WorkOrderStats,
)
from simulators.services import Postgres, free_port

REPO: Final = Path(__file__).resolve().parents[1]
BATCH: Final = 200
"""Changes per call (the handoff worker's batch)."""
LOCATIONS: Final = 200
CLIENTS: Final = 32
"""Concurrent API clients."""
COMPANY: Final = "bench"
GATEWAY: Final = "gw-bench"
T0: Final = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
# (rule, hint, severity, detectors per location)
KINDS: Final = (
    ("smoke_alarm", {"category": "fire", "priority": "urgent"}, "critical", 3),
    ("bin_fill_high", {"category": "sanitation", "priority": "normal"}, "warning", 2),
    ("water_leak", {"category": "water"}, "warning", 1),
)


# --- alarms ------------------------------------------------------------------------------------


def alarm_batches(count: int, seed: int = 1) -> list[list[AlarmInstanceChange]]:
    """`count` batches of `BATCH` changes; every second batch redelivers the one before.

    Alarms of 3 kinds at `LOCATIONS` locations fire and resolve with rising `seq`; about a tenth
    of a fresh batch are earlier changes gone stale. Time moves 20 s per batch,
    so groups are joined within the 30-minute window and new orders open as windows pass.
    """
    rng = random.Random(seed)
    alarms = [
        (f"{GATEWAY}/{rule}-{loc}-{n}/{rule}", f"d1/s1/c{loc // 20}/g{loc % 20}", hint, severity)
        for loc in range(LOCATIONS)
        for rule, hint, severity, detectors in KINDS
        for n in range(detectors)
    ]
    seqs = dict.fromkeys((a[0] for a in alarms), 0)
    batches: list[list[AlarmInstanceChange]] = []
    made: list[AlarmInstanceChange] = []
    for b in range(count):
        if b % 2:
            batches.append(list(batches[-1]))
            continue
        at = T0 + timedelta(seconds=20 * b)
        batch = []
        for _ in range(BATCH):
            if made and rng.random() < 0.1:
                old = rng.choice(made[-2000:])
                batch.append(replace(old, stale=True))  # went stale: evidence on its order
                continue
            fingerprint, location, hint, severity = rng.choice(alarms)
            seqs[fingerprint] += 1
            state = "firing" if rng.random() < 0.7 else "resolved"
            made.append(
                _change(
                    fingerprint,
                    location,
                    hint=hint,
                    severity=severity,
                    seq=seqs[fingerprint],
                    state=state,
                    at=at,
                )
            )
            batch.append(made[-1])
        batches.append(batch)
    return batches


def _change(
    fingerprint: str,
    location: str,
    *,
    hint: Any,  # noqa: ANN401 - a work-order hint
    severity: str,
    seq: int,
    state: str,
    at: datetime,
    stale: bool = False,
) -> AlarmInstanceChange:
    _, device, rule = fingerprint.split("/")
    return AlarmInstanceChange(
        fingerprint=fingerprint,
        gateway_id=GATEWAY,
        device_id=device,
        rule_id=rule,
        location=location,
        state=state,
        severity=severity,
        last_seq=seq,
        last_event_at=at,
        valid_until=None,
        work_order=hint,
        stale=stale,
    )


class PerChangeWorkOrders(WorkOrders):
    """The baseline: the alarm intake as it was before batching (same decisions, per change).

    Each change runs its own queries inside the batch's transaction: the dedupe lookup, the
    attached order, the group's candidate (each locked `FOR UPDATE`), one insert or update per
    row, and the order number drawn alone. Kept for the benchmark and as the reference the batch
    path is tested against (`tests/cloud_ingest/test_work_orders_batch.py`).
    """

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
                gateway_ids = sorted({c.gateway_id for c in changes})
                rows = await conn.execute(
                    select(gateways.c.id, gateways.c.company).where(gateways.c.id.in_(gateway_ids))
                )
                companies = {str(gid): str(company) for gid, company in rows}
                fingerprints = sorted({c.fingerprint for c in changes})
                rows = await conn.execute(
                    select(alarm_instances.c.fingerprint, alarm_instances.c.description).where(
                        alarm_instances.c.fingerprint.in_(fingerprints)
                    )
                )
                descriptions = {str(fp): str(d) for fp, d in rows}
                counts = WorkOrderStats()
                for change in changes:
                    await self._one(conn, change, companies, descriptions, counts)
        for name in ("orders_opened", "alarms_attached", "duplicates", "ignored", "auto_verified"):
            setattr(self.stats, name, getattr(self.stats, name) + getattr(counts, name))

    async def _one(
        self,
        conn: AsyncConnection,
        change: AlarmInstanceChange,
        companies: dict[str, str],
        descriptions: dict[str, str],
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
        query = (
            select(work_orders.c.id)
            .join(work_order_alarms, work_order_alarms.c.order_id == work_orders.c.id)
            .where(work_order_alarms.c.fingerprint == change.fingerprint)
        )
        if acts:
            query = query.where(work_orders.c.state.in_([s.value for s in OPEN_STATES]))
        order_id = (
            await conn.execute(query.order_by(work_orders.c.id.desc()).limit(1))
        ).scalar_one_or_none()
        if order_id is None and acts:
            since = change.last_event_at - self.settings.group_window
            order_id = (
                await conn.execute(
                    select(work_orders.c.id)
                    .where(
                        work_orders.c.location == change.location,
                        work_orders.c.category == triage.category_of(change),
                        work_orders.c.state.in_([s.value for s in OPEN_STATES]),
                        func.coalesce(work_orders.c.last_alarm_at, work_orders.c.created_at)
                        >= since,
                    )
                    .order_by(work_orders.c.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        if order_id is None:
            if not acts:
                counts.ignored += 1
                return
            await self._open(conn, change, companies, descriptions, dedupe)
            counts.orders_opened += 1
            return
        order = await store.lock_order(conn, int(order_id))
        await self._attach_one(conn, order, change, dedupe, counts)

    async def _open(
        self,
        conn: AsyncConnection,
        change: AlarmInstanceChange,
        companies: dict[str, str],
        descriptions: dict[str, str],
        dedupe: str,
    ) -> None:
        now = self._clock.now()
        category, priority = triage.category_of(change), triage.priority_of(change)
        values = {
            "number": await store.next_number(conn, now, self._tz),
            "source": "alarm",
            "category": category,
            "priority": priority,
            "company": companies.get(change.gateway_id, ""),
            "location": change.location,
            "title": f"{change.rule_id} at {change.location}"[:TITLE_MAX],
            "description": descriptions.get(change.fingerprint, "")[:DESCRIPTION_MAX],
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
            evidence={"alarms": [_evidence(change)]},
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

    async def _attach_one(
        self,
        conn: AsyncConnection,
        order: dict[str, Any],
        change: AlarmInstanceChange,
        dedupe: str,
        counts: WorkOrderStats,
    ) -> None:
        now = self._clock.now()
        state = triage.state_of(change)
        table = work_order_alarms
        key = (table.c.order_id == order["id"], table.c.fingerprint == change.fingerprint)
        row = (await conn.execute(select(table.c.last_seq).where(*key))).first()
        link_state = "stale" if change.stale else state
        if row is None:
            await conn.execute(
                table.insert().values(
                    order_id=order["id"],
                    fingerprint=change.fingerprint,
                    first_seq=change.last_seq,
                    last_seq=change.last_seq,
                    state=link_state,
                    updated_at=now,
                )
            )
        elif change.last_seq >= int(row[0]):
            await conn.execute(
                table.update()
                .where(*key)
                .values(last_seq=change.last_seq, state=link_state, updated_at=now)
            )
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
            evidence={"alarms": [_evidence(change)]},
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
        ):
            states = await conn.execute(
                select(table.c.state).where(table.c.order_id == order["id"])
            )
            if not all(s in triage.CLEARED_STATES for (s,) in states):
                return
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
                evidence={"alarms": [_evidence(change)]},
                changes={"verifier": store.SYSTEM_ACTOR, "closed_at": now, "due_at": None},
            )
            counts.auto_verified += 1
            await publish(
                conn, order, action=AUTO_VERIFY_ACTION, from_state=before, actor=store.SYSTEM_ACTOR
            )


def _evidence(change: AlarmInstanceChange) -> dict[str, object]:
    return {
        "fingerprint": change.fingerprint,
        "seq": change.last_seq,
        "state": triage.state_of(change),
        "severity": change.severity,
        "at": change.last_event_at.isoformat(),
        "stale": change.stale,
    }


async def _migrated(url: str) -> AsyncEngine:
    engine = create_engine(url)
    await migrations.upgrade(engine)
    await add_gateway(engine, GATEWAY, company=COMPANY, site="d1")
    return engine


async def intake(
    url: str, batches: Sequence[Sequence[AlarmInstanceChange]], seconds: float, *, per_change: bool
) -> tuple[float, WorkOrderStats]:
    """Changes/s offered (duplicates included) to the service for about `seconds`."""
    engine = await _migrated(url)
    try:
        service = (PerChangeWorkOrders if per_change else WorkOrders)(engine)
        done = 0
        start = time.perf_counter()
        for n, batch in enumerate(batches):
            await service.alarm_instances_changed(batch)
            done += len(batch)
            if n % 2 and time.perf_counter() - start >= seconds:
                break  # after a redelivery, so duplicates keep their share
        elapsed = time.perf_counter() - start
        if service.stats.failures:
            raise RuntimeError(f"{service.stats.failures} changes failed")
        return done / elapsed, service.stats
    finally:
        await engine.dispose()


# --- actions through the API -------------------------------------------------------------------

STEPS: Final[tuple[tuple[str, str, dict[str, str]], ...]] = (
    ("op", "accept", {}),
    ("op", "dispatch", {"assignee": "tech"}),
    ("tech", "start", {}),
    ("tech", "submit", {"result": "fixed"}),
    ("sup", "verify", {}),
)


async def _serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "STEWARD_LOG_LEVEL": "warning",
            "STEWARD_ALARM_SWEEP_INTERVAL_S": "0",
            "STEWARD_NOTIFY_WORKER": "false",
        }
    )
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "cloud_ingest.cli", "serve", "--db", url, "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http, asyncio.timeout(60):
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the server exited")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{base}/readyz", timeout=2)).status_code == 200:
                    return proc, base
            await asyncio.sleep(0.1)


async def actions(url: str, seconds: float, orders: int) -> dict[str, float]:
    """Actions/s through the API against `GET /healthz`/s, `CLIENTS` clients each."""
    engine = await _migrated(url)
    tokens = {
        "op": await add_user(engine, "op", role="operator", company=COMPANY),
        "sup": await add_user(engine, "sup", role="supervisor", company=COMPANY),
        "tech": await add_user(engine, "tech", role="technician", company=COMPANY),
    }
    service = WorkOrders(engine)
    changes = [
        _change(
            f"{GATEWAY}/smoke-{n}/smoke_alarm",
            f"d1/s1/c{n}",
            hint=KINDS[0][1],
            severity="critical",
            seq=1,
            state="firing",
            at=datetime.now(UTC),
        )
        for n in range(orders)
    ]
    for start in range(0, len(changes), BATCH):
        await service.alarm_instances_changed(changes[start : start + BATCH])
    async with engine.connect() as conn:
        ids = list(
            (await conn.execute(select(work_orders.c.id).order_by(work_orders.c.id))).scalars()
        )
    await engine.dispose()
    proc, base = await _serve(url)
    headers = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    try:
        async with httpx.AsyncClient(base_url=base, limits=limits) as http:
            queue = list(reversed(ids))
            done = [0]
            failed = [0]

            async def walk(until: float) -> None:
                while queue and time.perf_counter() < until:
                    order_id = queue.pop()
                    for user, action, fields in STEPS:
                        response = await http.post(
                            f"/api/v1/work-orders/{order_id}/actions",
                            json={"action": action, **fields},
                            headers=headers[user],
                        )
                        if response.status_code != 200:
                            failed[0] += 1
                            break
                        done[0] += 1

            async def ping(until: float, counter: list[int]) -> None:
                while time.perf_counter() < until:
                    await http.get("/healthz")
                    counter[0] += 1

            half = seconds / 2
            pings = [0]
            cpu, began = _cpu_s(proc.pid), time.perf_counter()
            await asyncio.gather(*(ping(began + half, pings) for _ in range(CLIENTS)))
            ping_rate = pings[0] / (time.perf_counter() - began)
            ping_cpu = max(_cpu_s(proc.pid) - cpu, 1 / _TICKS) / max(1, pings[0])
            cpu, began = _cpu_s(proc.pid), time.perf_counter()
            await asyncio.gather(*(walk(began + half) for _ in range(CLIENTS)))
            action_rate = done[0] / (time.perf_counter() - began)
            action_cpu = max(_cpu_s(proc.pid) - cpu, 1 / _TICKS) / max(1, done[0])
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
    if failed[0]:
        raise RuntimeError(f"{failed[0]} actions failed")
    return {
        "actions_per_s": action_rate,
        "actions_server_cpu_ms": action_cpu * 1000,
        "actions_per_server_cpu_s": 1 / action_cpu,
        "baseline_healthz_per_s": ping_rate,
        "baseline_healthz_server_cpu_ms": ping_cpu * 1000,
        "actions_ratio_healthz": action_rate / ping_rate,
        "actions_cpu_ratio_healthz": ping_cpu / action_cpu,
    }


def _cpu_s(pid: int) -> float:
    """CPU seconds (user and system) the process `pid` used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


_TICKS: Final = os.sysconf("SC_CLK_TCK")


# --- the run -----------------------------------------------------------------------------------


def run(seconds: float = 12.0, *, consoles: int = 200) -> dict[str, float]:
    """Every figure (about `seconds` plus PostgreSQL and server start-ups)."""
    share = max(seconds, 0.3) / 6
    out: dict[str, float] = {}
    # Enough batches that the batch path does not run out on a fast machine.
    batches = alarm_batches(max(4, int(share * 3_000 / BATCH) * 2 + 2))
    driver = "postgresql+asyncpg"
    with Postgres() as server:
        for name in ("batched", "per_change", "actions", "stream", "stream_one"):
            server.create_database(name)
        rate, stats = asyncio.run(
            intake(server.url("batched", driver=driver), batches, share, per_change=False)
        )
        out["alarm_changes_per_s"] = rate
        out["alarm_duplicate_share"] = stats.duplicates / max(
            1, sum((stats.duplicates, stats.ignored, stats.orders_opened, stats.alarms_attached))
        )
        base, _ = asyncio.run(
            intake(
                server.url("per_change", driver=driver),
                batches,
                share,
                per_change=True,
            )
        )
        out["alarm_baseline_per_change_per_s"] = base
        out["alarm_ratio_per_change"] = rate / base
        orders = max(CLIENTS, int(share * 3_000 / len(STEPS)))
        out.update(asyncio.run(actions(server.url("actions", driver=driver), 2 * share, orders)))
        fanout = stream_fanout.run(share, consoles, server.url("stream", driver=driver))
        alone = stream_fanout.run(share, 1, server.url("stream_one", driver=driver))
        out["stream_consoles"] = float(consoles)
        out["stream_p50_ms"] = fanout["latency_p50_ms"]
        out["stream_p99_ms"] = fanout["latency_p99_ms"]
        out["stream_missing"] = fanout["missing"]
        out["stream_baseline_one_console_p99_ms"] = alone["latency_p99_ms"]
        out["stream_ratio_one_console"] = fanout["latency_p99_ms"] / alone["latency_p99_ms"]
    return out


def main() -> None:
    """Command line: `[seconds]`."""
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 12.0
    for name, value in run(seconds).items():
        print(f"{name:40} {value:14,.2f}")


if __name__ == "__main__":
    main()
