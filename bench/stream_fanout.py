"""Live-stream fan-out: commit-to-receipt latency with many connected SSE clients.

Starts `cloud-ingest serve` on a free port (SQLite in a temporary folder, or `--db URL`),
connects `clients` streams of one operator, then commits one `alarm` event every 50 ms
(`stream.outbox.record`, one transaction each) for `seconds`. Each client notes when each event
arrives; the latency of an event at a client is its arrival minus the moment its transaction
committed (both in this process, on one monotonic clock). The clients run in this process too,
so the figures include their own parsing under the load of all of them: an upper bound.

Run: `.venv/bin/python bench/stream_fanout.py [seconds] [--clients N] [--db URL | --postgres]`; see
bench/README.md. Prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from cloud_ingest import migrations
from cloud_ingest.auth.service import add_user
from cloud_ingest.infra.db import create_engine
from cloud_ingest.stream.outbox import record
from simulators.services import Postgres, free_port

REPO = Path(__file__).resolve().parents[1]
PERIOD_S = 0.05


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _client(
    http: httpx.AsyncClient,
    url: str,
    token: str,
    arrivals: dict[int, float],
    connected: asyncio.Event,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.stream("GET", url, headers=headers, timeout=None) as response:
        async for line in response.aiter_lines():
            if line.startswith(": connected"):
                connected.set()
            elif line.startswith("id: "):
                arrivals[int(line[4:])] = time.monotonic()


async def _server_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(60):
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the server exited")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{base}/readyz", timeout=2)).status_code == 200:
                    return
            await asyncio.sleep(0.1)


async def _run(seconds: float, clients: int, db: str) -> dict[str, float]:
    engine = create_engine(db)
    await migrations.upgrade(engine)
    token = await add_user(engine, f"bench-{os.getpid()}", role="operator", company="bench")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env.update({"PYTHONPATH": str(REPO), "STEWARD_LOG_LEVEL": "warning"})
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "cloud_ingest.cli", "serve", "--db", db, "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    try:
        await _server_ready(base, proc)
        async with httpx.AsyncClient(limits=limits) as http:
            arrivals = [dict[int, float]() for _ in range(clients)]
            ready = [asyncio.Event() for _ in range(clients)]
            tasks = [
                asyncio.create_task(_client(http, f"{base}/api/v1/stream", token, a, r))
                for a, r in zip(arrivals, ready, strict=True)
            ]
            async with asyncio.timeout(60):
                await asyncio.gather(*(r.wait() for r in ready))
            committed: dict[int, float] = {}
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < seconds:
                async with engine.begin() as conn:
                    event_id = await record(
                        conn,
                        kind="alarm",
                        key=f"bench/{n}",
                        company="bench",
                        location="d1/c1/b1",
                        data={"state": "firing", "severity": "critical", "n": n},
                    )
                committed[event_id] = time.monotonic()
                n += 1
                await asyncio.sleep(PERIOD_S)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    while sum(len(a) for a in arrivals) < clients * len(committed):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
        await engine.dispose()
    latencies = [
        (at - committed[i]) * 1000 for a in arrivals for i, at in a.items() if i in committed
    ]
    expected = clients * len(committed)
    return {
        "clients": float(clients),
        "events": float(len(committed)),
        "deliveries": float(len(latencies)),
        "missing": float(expected - len(latencies)),
        "latency_p50_ms": _percentile(latencies, 0.50),
        "latency_p99_ms": _percentile(latencies, 0.99),
        "latency_max_ms": max(latencies, default=float("nan")),
    }


def run(seconds: float = 5.0, clients: int = 200, db: str | None = None) -> dict[str, float]:
    """Measure for `seconds` with `clients` streams; `db` defaults to a temporary SQLite file."""
    with tempfile.TemporaryDirectory() as folder:
        url = db or f"sqlite+aiosqlite:///{folder}/var/steward.db"
        return asyncio.run(_run(seconds, clients, url))


def main() -> None:
    """Command line: `[seconds] [--clients N] [--db URL | --postgres]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", nargs="?", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--db", default=None, help="database URL (default: temporary SQLite)")
    parser.add_argument(
        "--postgres", action="store_true", help="on a throwaway PostgreSQL cluster instead"
    )
    args = parser.parse_args()
    if args.postgres:
        with Postgres() as server:
            server.create_database("bench")
            url = server.url("bench", driver="postgresql+asyncpg")
            figures = run(args.seconds, args.clients, url)
    else:
        figures = run(args.seconds, args.clients, args.db)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
