"""`GET /api/v1/overview` and `GET /api/v1/plans/{path}.svg` on PostgreSQL at district scale.

A district of 4 streets, 20 communities, 100 grids and 900 compounds (1,025 sites) with one gateway
per compound (a tenth of them offline), 10,000 devices placed on their compounds' plans,
100,000 alarm instances (a tenth open) and 20,000 work orders (a tenth open, some past due or
escalated), three property companies taking turns by compound. Each figure is the median and the
95th percentile of `ROUNDS` requests through the application (permission check, queries, JSON or
SVG), in process over ASGI, after one warm-up request:

- `admin_root`: the whole district from the root, every grid rolled up;
- `street_officer`: one street (every company in it), its communities and grids;
- `company_root`: one company's view of everything it manages (a third of the rows);
- `company_compound`: one compound of that company, its buildings and yard;
- `plan_svg`: the plan of one compound with its devices coloured by worst open alarm.

Run: `.venv/bin/python bench/overview.py` (on a throwaway PostgreSQL cluster).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import httpx
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.service import add_user
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.schema import alarm_instances, devices, gateways, sites, work_orders
from cloud_ingest.main import create_app
from simulators.services import Postgres

STREETS: Final = 4
COMMUNITIES: Final = 5
GRIDS: Final = 5
COMPOUNDS: Final = 9
DEVICES: Final = 10_000
ALARMS: Final = 100_000
ORDERS: Final = 20_000
COMPANIES: Final = ("A", "B", "C")
ROUNDS: Final = 20
NOW: Final = datetime.now(UTC)
KINDS: Final = ("smoke", "manhole", "bin", "perimeter")
ALARM_STATES: Final = ("firing", "fault", "no_data")
SEVERITIES: Final = ("critical", "warning", "info")
OPEN_ORDER_STATES: Final = ("NEW", "ACCEPTED", "DISPATCHED", "IN_PROGRESS")


def tree() -> tuple[list[dict[str, Any]], list[str]]:
    """The site rows and the compound paths."""
    rows: list[dict[str, Any]] = []
    compounds: list[str] = []

    def site(path: str, level: str, company: str = "", plan: Any = None) -> None:  # noqa: ANN401
        parent = path.rpartition("/")[0] or None
        rows.append(
            {
                "path": path,
                "parent": parent,
                "level": level,
                "name": path.rsplit("/", 1)[-1],
                "company": company,
                "plan": plan,
                "updated_at": NOW,
            }
        )

    site("d1", "district")
    for s in range(STREETS):
        street = f"d1/s{s}"
        site(street, "street")
        for c in range(COMMUNITIES):
            community = f"{street}/c{c}"
            site(community, "community")
            for g in range(GRIDS):
                grid = f"{community}/g{g}"
                site(grid, "grid")
                for k in range(COMPOUNDS):
                    compound = f"{grid}/k{k}"
                    owner = COMPANIES[len(compounds) % len(COMPANIES)]
                    site(compound, "compound", owner, {"x": 0, "y": 0, "w": 240, "h": 160})
                    compounds.append(compound)
    return rows, compounds


async def load(engine: AsyncEngine, rng: random.Random) -> list[str]:
    """The district, its devices, alarms and orders; the compound paths."""
    site_rows, compounds = tree()
    owner = {c: COMPANIES[i % len(COMPANIES)] for i, c in enumerate(compounds)}
    gateway_rows = [
        {
            "id": f"gw-{i}",
            "company": owner[c],
            "site": c,
            "status": "offline" if i % 10 == 0 else "online",
            "created_at": NOW,
        }
        for i, c in enumerate(compounds)
    ]
    device_rows: list[dict[str, Any]] = []
    for n in range(DEVICES):
        i = n % len(compounds)
        device_rows.append(
            {
                "id": f"dev-{n}",
                "gateway_id": f"gw-{i}",
                "kind": KINDS[n % len(KINDS)],
                "location": compounds[i],
                "labels": {},
                "first_seen": NOW,
                "last_seen": NOW,
                "plan_x": rng.uniform(0, 240),
                "plan_y": rng.uniform(0, 160),
            }
        )
    alarm_rows: list[dict[str, Any]] = []
    for n in range(ALARMS):
        device = device_rows[n % DEVICES]
        is_open = n % 10 == 0
        start = NOW - timedelta(hours=rng.uniform(0, 72))
        alarm_rows.append(
            {
                "fingerprint": f"{device['location']}/{device['id']}/rule-{n // DEVICES}",
                "gateway_id": device["gateway_id"],
                "device_id": device["id"],
                "rule_id": f"rule-{n // DEVICES}",
                "location": device["location"],
                "description": "",
                "state": rng.choice(ALARM_STATES) if is_open else "normal",
                "severity": rng.choice(SEVERITIES),
                "starts_at": start,
                "first_event_at": start,
                "last_event_at": start,
                "last_seq": 1,
                "updated_at": start,
            }
        )
    order_rows: list[dict[str, Any]] = []
    for n in range(ORDERS):
        compound = compounds[n % len(compounds)]
        created = NOW - timedelta(hours=rng.uniform(0, 72))
        is_open = n % 10 == 0
        order_rows.append(
            {
                "number": f"WO-{n:08d}",
                "source": "alarm",
                "category": "fire",
                "priority": "P2",
                "state": rng.choice(OPEN_ORDER_STATES) if is_open else "CLOSED",
                "company": owner[compound],
                "location": compound,
                "title": "",
                "escalation_level": rng.choice((0, 0, 0, 1)),
                "version": 1,
                "created_at": created,
                "updated_at": created,
                "closed_at": None if is_open else created + timedelta(hours=1),
                "due_at": created + timedelta(hours=rng.uniform(0, 96)) if is_open else None,
            }
        )
    async with engine.begin() as conn:
        for table, rows in [
            (sites, site_rows),
            (gateways, gateway_rows),
            (devices, device_rows),
            (alarm_instances, alarm_rows),
            (work_orders, order_rows),
        ]:
            for first in range(0, len(rows), 5_000):
                await conn.execute(insert(table), rows[first : first + 5_000])
    async with engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text("ANALYZE"))
    return compounds


async def timed(client: httpx.AsyncClient, token: str, path: str, **params: str) -> list[float]:
    """Milliseconds of `ROUNDS` requests of `path` (after one warm-up)."""
    headers = {"Authorization": f"Bearer {token}"}
    times: list[float] = []
    for n in range(ROUNDS + 1):
        started = time.perf_counter()
        response = await client.get(path, params=params, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
        if n:
            times.append(elapsed)
    return times


async def measure(url: str) -> dict[str, float]:
    """Load the district on `url` and time each request."""
    flags = {
        "database_url": url,
        "migrate_on_start": True,
        "alarm_sweep_interval_s": 0,
        "notify_worker": False,
    }
    app = create_app(load_settings(environ={}, flags=flags))
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    out: dict[str, float] = {}
    async with lifespan:
        engine: AsyncEngine = app.state.engine
        started = time.perf_counter()
        compounds = await load(engine, random.Random(7))
        out["load_s"] = time.perf_counter() - started
        admin = await add_user(engine, "admin", role="admin", company=None, area=None)
        officer = await add_user(engine, "officer", role="supervisor", company=None, area="d1/s0")
        company = await add_user(engine, "op-a", role="operator", company="A", area=None)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            api = "/api/v1"
            runs = {
                "admin_root": await timed(client, admin, f"{api}/overview"),
                "street_officer": await timed(client, officer, f"{api}/overview"),
                "company_root": await timed(client, company, f"{api}/overview"),
                "company_compound": await timed(
                    client, company, f"{api}/overview", site=compounds[0]
                ),
                "plan_svg": await timed(client, company, f"{api}/plans/{compounds[0]}.svg"),
            }
    for name, times in runs.items():
        out[f"{name}_p50_ms"] = statistics.median(times)
        out[f"{name}_p95_ms"] = statistics.quantiles(times, n=20)[-1]
    return out


def main() -> None:
    """Command line: no arguments."""
    with Postgres() as server:
        server.create_database("overview")
        figures = asyncio.run(measure(server.url("overview", driver="postgresql+asyncpg")))
    for name, value in figures.items():
        print(f"{name:32} {value:10,.2f}")


if __name__ == "__main__":
    main()
