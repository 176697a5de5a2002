"""The control-room console in a real headless Chromium: alarm latency and the big screen's first render.

Everything is real and on this machine: a Mosquitto broker, `cloud-ingest serve` consuming it into
a SQLite file (with `--postgres`, a PostgreSQL), Debian's Chromium driven by Playwright
(`simulators.cloud_server.CHROMIUM_FLAGS`).
Alarms and readings arrive as a gateway sends them: envelopes published at QoS 1.

- **Alarm on the broker -> visible in the browser.** An operator's `/console/alarms` page is open
  (signed in through the form); a MutationObserver on the table stamps
  `performance.timeOrigin + performance.now()` when each alarm's row first appears. `probes`
  alarms are published one at a time, each stamped with the wall clock just before its publish,
  while another gateway publishes 1,000 readings/s (10 envelopes of 100 readings a second).
  Baseline in the same run, on the same alarms: a plain HTTP client (httpx) streaming
  `GET /api/v1/stream` with the operator's token, stamping each `alarm` event's arrival. The
  difference is the browser's own share: `EventSource`, fetching the row's HTML, placing it.
  The page's own record of when its `EventSource` delivered each alarm (`stewardConsole.heard`,
  `Date.now()`) splits that share into the event's arrival and the row's fetch and placing.
- **Time to first render of the big screen.** `/console/overview` (the operator's whole area)
  loaded `loads` times in a fresh navigation each: first-contentful-paint
  (`performance.getEntriesByType('paint')`), the time until the open-alarms figure is in the
  document (a MutationObserver installed before the page's first byte), and the server's time
  to first byte (Navigation Timing `responseStart`), all from navigation start. Baseline: the
  same page on the same server before anything is imported (no sites, devices or alarms).
  Then `sites` x `devices_per_site` devices are imported through the registry's CSV import
  (`parse_sites`/`import_sites`, `parse_devices`/`import_devices`, as `cloud-ingest sites import`
  does) and alarms are published until `open_alarms` are open.

Browser and publisher share one wall clock (same machine), so latencies compare
`time.time()` with the page's `timeOrigin`-based clock.

Run: `.venv/bin/python bench/console.py [probes] [devices] [open_alarms] [--postgres]` (defaults
100, 5,000, 500, SQLite); see bench/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import Browser, Page, sync_playwright

from cloud_ingest import migrations
from cloud_ingest.auth.service import add_user
from cloud_ingest.auth.sessions import set_password
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.db import create_engine
from cloud_ingest.registry.csv_import import parse_devices, parse_sites
from cloud_ingest.registry.imports import import_devices, import_sites
from core.envelope_json import dumps
from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Envelope, Reading, Severity
from simulators.cloud_server import CHROMIUM, CHROMIUM_FLAGS, IngestServer, Publisher, until
from simulators.services import Mosquitto, Postgres

COMPANY: Final = "A"
OPERATOR: Final = "bench-op"
PASSWORD: Final = "correct-horse-battery"  # noqa: S105 - the bench operator's password
PROBE_GATEWAY: Final = "gw-probe"
LOAD_GATEWAY: Final = "gw-load"
LOAD_DEVICES: Final = 100
READINGS_PER_ENVELOPE: Final = 100
ENVELOPES_PER_S: Final = 10
"""The background load: 10 envelopes of 100 readings a second, 1,000 readings/s."""
DEVICE_GATEWAYS: Final = 10
ALARMS_PER_ENVELOPE: Final = 100
DISTRICT: Final = "d1"
WALL: Final = {"width": 1920, "height": 1080}
OVERVIEW: Final = "/console/overview"
ALARMS: Final = "/console/alarms"
FIGURE: Final = "#kpi-alarms .ov-kpi-value"
"""The big screen's main figure: open alarms."""
WARM_UP: Final = 2
SEVERITY_BUCKETS: Final = ("critical", "warning", "info", "none")
"""The overview's device counts by worst alarm; together every device."""
"""Page loads before the measured ones."""
T = TypeVar("T")

STAMP_ROWS: Final = """
() => {
  window.benchSeen = {};
  const rows = document.getElementById("alarm-rows");
  const stamp = () => performance.timeOrigin + performance.now();
  new MutationObserver((changes) => {
    const at = stamp();
    for (const change of changes) {
      for (const node of change.addedNodes) {
        const key = node.dataset && node.dataset.fingerprint;
        if (key && !(key in window.benchSeen)) window.benchSeen[key] = at;
      }
    }
  }).observe(rows, { childList: true });
}
"""
"""Stamps the first appearance of each alarm row (the page re-places a row when it changes)."""

WATCH_FIGURE: Final = """
(() => {
  const found = () => {
    const el = document.querySelector(SELECTOR);
    if (el && el.textContent.trim() !== "" && window.benchFigureAt === undefined) {
      window.benchFigureAt = performance.now();
    }
    return window.benchFigureAt !== undefined;
  };
  const observer = new MutationObserver(() => { if (found()) observer.disconnect(); });
  observer.observe(document, { childList: true, subtree: true });
})();
""".replace("SELECTOR", json.dumps(FIGURE))
"""Installed before each document: when the open-alarms figure is first in the page (ms)."""

PAINTED: Final = (
    "() => performance.getEntriesByType('paint')"
    ".some((entry) => entry.name === 'first-contentful-paint')"
)
"""True once the browser has reported the page's first contentful paint."""

TIMINGS: Final = """
() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const paint = performance.getEntriesByType("paint")
    .find((entry) => entry.name === "first-contentful-paint");
  return {
    ttfb: nav.responseStart,
    dom: nav.domContentLoadedEventEnd,
    fcp: paint ? paint.startTime : -1,
    figure: window.benchFigureAt === undefined ? -1 : window.benchFigureAt,
    value: document.querySelector(SELECTOR).dataset.value,
  };
}
""".replace("SELECTOR", json.dumps(FIGURE))


def in_thread(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run(work())` on a thread of its own (Playwright's sync API holds this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` percentile (0 < q <= 1) of `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- the world ----------------------------------------------------------------------------------


@dataclass
class World:
    """The broker, the server on its SQLite file, and the operator's token."""

    broker: Mosquitto
    server: IngestServer
    token: str
    db_url: str


def _prepare(db_url: str) -> str:
    async def work() -> str:
        engine = create_engine(db_url)
        try:
            await migrations.upgrade(engine)
            for gateway in [PROBE_GATEWAY, LOAD_GATEWAY, *_device_gateways()]:
                await add_gateway(engine, gateway, company=COMPANY, site=DISTRICT)
            token = await add_user(engine, OPERATOR, role="operator", company=COMPANY)
            await set_password(engine, OPERATOR, PASSWORD)
            return token
        finally:
            await engine.dispose()

    return in_thread(work)


@contextlib.contextmanager
def world(*, postgres: bool = False) -> Iterator[World]:
    """A fresh broker and `cloud-ingest serve` on a fresh database, company A's operator.

    The database is a SQLite file, as in the console's tests, or with `postgres` a throwaway
    PostgreSQL (`simulators.services.Postgres`), where the stream's hub is woken by `NOTIFY`.
    """
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-console-")))
        if postgres:
            pg = stack.enter_context(Postgres())
            pg.create_database("console")
            db_url = pg.url("console", driver="postgresql+asyncpg")
        else:
            db_url = f"sqlite+aiosqlite:///{workdir}/steward.db"
        token = _prepare(db_url)
        broker = Mosquitto().start()
        server = IngestServer(
            workdir, db_url=db_url, mqtt_url=broker.url, client_id="bench-console"
        )
        try:
            server.start()
            yield World(broker, server, token, db_url)
        finally:
            server.stop()
            broker.close()


def _device_gateways() -> list[str]:
    return [f"gw-dev-{k}" for k in range(DEVICE_GATEWAYS)]


def _client(broker: Mosquitto, name: str) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(100)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def alarm_event(device: str, location: str, now: datetime) -> AlarmEvent:
    """A new FIRING critical smoke alarm of `device` at `location`."""
    return AlarmEvent(
        fingerprint=f"{location}/{device}/smoke",
        seq=1,
        state=AlarmState.FIRING,
        severity=Severity.CRITICAL,
        starts_at=now,
        at=now,
        rule_id="smoke",
        device_id=device,
        location=location,
        description="smoke",
        valid_until=now + timedelta(hours=1),
    )


# --- the background load ------------------------------------------------------------------------


class Background(threading.Thread):
    """`LOAD_GATEWAY` publishing 1,000 readings/s at QoS 1 until stopped."""

    def __init__(self, broker: Mosquitto) -> None:
        """Prepare the load on `broker`."""
        super().__init__(daemon=True, name="bench-background")
        self.broker = broker
        self.stopping = threading.Event()
        self.readings = 0
        self.seconds = 0.0

    def run(self) -> None:
        """Publish paced envelopes until `stop()`."""
        client = _client(self.broker, "bench-load")
        started = time.monotonic()
        try:
            n = 0
            while not self.stopping.is_set():
                ahead = started + n / ENVELOPES_PER_S - time.monotonic()
                if ahead > 0:
                    self.stopping.wait(ahead)
                    continue
                now = datetime.now(UTC)
                readings = tuple(
                    Reading(
                        f"{LOAD_GATEWAY}-dev-{(n * READINGS_PER_ENVELOPE + i) % LOAD_DEVICES}",
                        Metric.TEMPERATURE_C,
                        20.0 + i / 100,
                        now - timedelta(milliseconds=READINGS_PER_ENVELOPE - i),
                    )
                    for i in range(READINGS_PER_ENVELOPE)
                )
                envelope = Envelope(LOAD_GATEWAY, uuid4(), now, readings=readings)
                client.publish(f"steward/v1/{LOAD_GATEWAY}/up", dumps(envelope), qos=1)
                self.readings += READINGS_PER_ENVELOPE
                n += 1
        finally:
            self.seconds = time.monotonic() - started
            client.disconnect()
            client.loop_stop()

    def stop(self) -> float:
        """Stop; the readings/s offered."""
        self.stopping.set()
        self.join(10)
        return self.readings / self.seconds if self.seconds else 0.0


# --- alarm latency ------------------------------------------------------------------------------


class StreamReader(threading.Thread):
    """The baseline client: `GET /api/v1/stream` with httpx, stamping each alarm's first event."""

    def __init__(self, url: str, token: str) -> None:
        """Prepare a reader of `url`'s stream signed in with `token`."""
        super().__init__(daemon=True, name="bench-sse")
        self.url = url
        self.token = token
        self.seen: dict[str, float] = {}
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        """Read the stream until `stopping` (checked at each line; pings arrive regularly)."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5, read=None)) as client,
                client.stream("GET", f"{self.url}/api/v1/stream", headers=headers) as response,
            ):
                response.raise_for_status()
                self.connected.set()
                event = ""
                for line in response.iter_lines():
                    if self.stopping.is_set():
                        return
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event == "alarm":
                        at = time.time()
                        key = json.loads(line[5:])["key"]
                        self.seen.setdefault(key, at)
                    elif not line:
                        event = ""
        except BaseException as err:  # noqa: BLE001 - reported by the caller
            self.error = err
            self.connected.set()


def sign_in(page: Page, url: str) -> None:
    """Sign the bench operator in through the console's form."""
    page.goto(f"{url}{ALARMS}")
    page.fill("#name", OPERATOR)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#alarm-rows", state="attached")


@dataclass
class Latencies:
    """Per probe alarm, ms from its publish: row shown, page's `EventSource` event, httpx event."""

    browser: list[float]
    event_source: list[float]
    stream: list[float]
    readings_per_s: float
    """The background load offered meanwhile."""


def alarm_latencies(the_world: World, page: Page, probes: int, interval_s: float) -> Latencies:
    """The latencies of `probes` alarms published one by one under the background load."""
    page.goto(f"{the_world.server.url}{ALARMS}")
    page.wait_for_selector("#stream-status[data-state=live]")
    page.evaluate(STAMP_ROWS)
    reader = StreamReader(the_world.server.url, the_world.token)
    reader.start()
    reader.connected.wait(10)
    if reader.error is not None:
        raise reader.error
    background = Background(the_world.broker)
    background.start()
    client = _client(the_world.broker, "bench-probe")
    published: dict[str, float] = {}
    try:
        time.sleep(1.0)  # the load is running before the first probe
        for n in range(probes):
            now = datetime.now(UTC)
            event = alarm_event(f"probe-{n}", f"{DISTRICT}/probe/b{n}", now)
            envelope = Envelope(PROBE_GATEWAY, uuid4(), now, alarm_events=(event,))
            payload = dumps(envelope)
            published[event.fingerprint] = time.time()
            client.publish(f"steward/v1/{PROBE_GATEWAY}/up", payload, qos=1)
            time.sleep(interval_s)

        def all_seen() -> bool:
            shown = page.evaluate("() => Object.keys(window.benchSeen).length")
            return len(reader.seen) >= probes and int(shown) >= probes

        until(all_seen, 60, "every probe alarm in the browser and on the stream")
        shown: dict[str, float] = page.evaluate("() => window.benchSeen")
        heard: dict[str, float] = page.evaluate("() => window.stewardConsole.heard")
    finally:
        client.disconnect()
        client.loop_stop()
        rate = background.stop()
        reader.stopping.set()
    return Latencies(
        browser=[shown[key] - at * 1000 for key, at in published.items()],
        event_source=[heard[key] - at * 1000 for key, at in published.items()],
        stream=[(reader.seen[key] - at) * 1000 for key, at in published.items()],
        readings_per_s=rate,
    )


# --- the big screen -----------------------------------------------------------------------------


def _site_paths(compounds: int) -> tuple[list[str], list[str]]:
    """CSV lines of a tree with `compounds` compounds under `DISTRICT`, and the compound paths."""
    lines = [f"{DISTRICT},district,District 1,{COMPANY}"]
    leaves: list[str] = []
    streets = max(1, math.ceil(compounds / 40))
    for s in range(streets):
        street = f"{DISTRICT}/s{s}"
        lines.append(f"{street},street,Street {s},")
        for c in range(4):
            community = f"{street}/c{c}"
            lines.append(f"{community},community,Community {s}.{c},")
            for g in range(2):
                grid = f"{community}/g{g}"
                lines.append(f"{grid},grid,Grid {s}.{c}.{g},")
                for k in range(5):
                    if len(leaves) < compounds:
                        compound = f"{grid}/k{k}"
                        lines.append(f"{compound},compound,Compound {s}.{c}.{g}.{k},")
                        leaves.append(compound)
    return lines, leaves


def populate(the_world: World, devices: int, alarms: int) -> None:
    """Import sites and `devices` devices by CSV, then publish `alarms` new alarms of them."""
    compounds = max(1, devices // 25)
    site_lines, leaves = _site_paths(compounds)
    gateways = _device_gateways()
    device_rows = [
        (f"dev-{n}", gateways[n % len(gateways)], leaves[n % len(leaves)]) for n in range(devices)
    ]
    sites_csv = "\n".join(["path,level,name,company", *site_lines]) + "\n"
    devices_csv = "\n".join(
        ["id,gateway,kind,location", *(f"{d},{g},smoke,{loc}" for d, g, loc in device_rows)]
    )

    async def work() -> None:
        engine = create_engine(the_world.db_url)
        try:
            await import_sites(engine, parse_sites(sites_csv))
            await import_devices(engine, parse_devices(devices_csv + "\n"))
        finally:
            await engine.dispose()

    in_thread(work)
    now = datetime.now(UTC)
    messages: list[tuple[str, bytes]] = []
    for start in range(0, alarms, ALARMS_PER_ENVELOPE):
        chosen = device_rows[start : min(alarms, start + ALARMS_PER_ENVELOPE)]
        by_gateway: dict[str, list[AlarmEvent]] = {}
        for device, gateway, location in chosen:
            by_gateway.setdefault(gateway, []).append(alarm_event(device, location, now))
        for gateway, events in by_gateway.items():
            envelope = Envelope(gateway, uuid4(), now, alarm_events=tuple(events))
            messages.append((f"steward/v1/{gateway}/up", dumps(envelope)))
    publisher = Publisher(the_world.broker, messages)
    publisher.start()
    publisher.finish(60)


def counted(the_world: World) -> tuple[int, int]:
    """The open alarms and the devices the overview API counts for the operator."""
    body = the_world.server.get_json("/api/v1/overview", the_world.token)
    assert isinstance(body, dict)
    figures = body["node"]["figures"]
    devices = figures["devices"]
    return int(figures["alarms"]["total"]), sum(int(devices[k]) for k in SEVERITY_BUCKETS)


def open_alarms(the_world: World) -> int:
    """The open alarms the overview API counts for the operator."""
    return counted(the_world)[0]


def first_render(page: Page, url: str, loads: int, expected: int) -> dict[str, float]:
    """Medians and worst over `loads` fresh navigations to the big screen (after warm-ups), ms."""
    samples: dict[str, list[float]] = {"ttfb": [], "fcp": [], "figure": []}
    for n in range(WARM_UP + loads):
        page.goto(f"{url}{OVERVIEW}", wait_until="load")
        page.wait_for_function("() => window.benchFigureAt !== undefined")
        page.wait_for_function(PAINTED)  # the paint entry is reported after the load, at times
        timings: dict[str, Any] = page.evaluate(TIMINGS)
        if int(timings["value"]) != expected:
            raise AssertionError(f"the page shows {timings['value']} open alarms, not {expected}")
        if n < WARM_UP:
            continue  # the server's first renders and queries, the browser's cache
        for name, values in samples.items():
            values.append(float(timings[name]))
    out: dict[str, float] = {}
    for name, values in samples.items():
        out[f"{name}_ms"] = statistics.median(values)
        out[f"{name}_max_ms"] = max(values)
    return out


# --- the run ------------------------------------------------------------------------------------


def _latency_figures(out: dict[str, float], prefix: str, values: Sequence[float]) -> None:
    out[f"{prefix}_p50_ms"] = percentile(values, 0.5)
    out[f"{prefix}_p99_ms"] = percentile(values, 0.99)
    out[f"{prefix}_max_ms"] = max(values)


def measure(
    browser: Browser,
    the_world: World,
    probes: int,
    devices: int,
    alarms: int,
    *,
    loads: int,
    interval_s: float,
) -> dict[str, float]:
    """Every figure on one world and one browser."""
    out: dict[str, float] = {}
    context = browser.new_context(viewport=WALL)  # type: ignore[arg-type]
    context.add_init_script(WATCH_FIGURE)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        url = the_world.server.url
        sign_in(page, url)
        empty = first_render(page, url, loads, 0)
        for name, value in empty.items():
            out[f"overview_empty_{name}"] = value

        found = alarm_latencies(the_world, page, probes, interval_s)
        _latency_figures(out, "alarm_browser", found.browser)
        _latency_figures(out, "alarm_event_source", found.event_source)
        _latency_figures(out, "alarm_stream", found.stream)
        pairs = zip(found.browser, found.event_source, strict=True)
        out["alarm_row_after_event_p50_ms"] = percentile([b - e for b, e in pairs], 0.5)
        pairs = zip(found.browser, found.stream, strict=True)
        out["alarm_browser_share_p50_ms"] = percentile([b - s for b, s in pairs], 0.5)
        out["background_readings_per_s"] = found.readings_per_s

        populate(the_world, devices, max(0, alarms - probes))
        until(lambda: open_alarms(the_world) >= max(alarms, probes), 60, "the open alarms counted")
        shown, registered = counted(the_world)
        out["overview_open_alarms"] = shown
        out["overview_devices"] = registered
        full = first_render(page, url, loads, shown)
        for name, value in full.items():
            out[f"overview_{name}"] = value
    finally:
        context.close()
    if errors:
        raise AssertionError(f"the pages failed: {errors}")
    out["alarm_ratio_p50_stream"] = out["alarm_browser_p50_ms"] / out["alarm_stream_p50_ms"]
    out["alarm_ratio_p99_stream"] = out["alarm_browser_p99_ms"] / out["alarm_stream_p99_ms"]
    out["overview_ratio_fcp_empty"] = out["overview_fcp_ms"] / out["overview_empty_fcp_ms"]
    out["overview_ratio_figure_empty"] = out["overview_figure_ms"] / out["overview_empty_figure_ms"]
    return out


def run(
    probes: int = 100,
    devices: int = 5_000,
    alarms: int = 500,
    *,
    loads: int = 10,
    interval_s: float = 0.2,
    postgres: bool = False,
) -> dict[str, float]:
    """Every figure: `probes` latency alarms, `devices` devices and `alarms` open alarms."""
    with world(postgres=postgres) as the_world, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            return measure(
                browser, the_world, probes, devices, alarms, loads=loads, interval_s=interval_s
            )
        finally:
            browser.close()


def main() -> None:
    """Print every figure of one run."""
    args = [int(a) for a in sys.argv[1:] if a != "--postgres"]
    figures = run(*args[:3], postgres="--postgres" in sys.argv[1:])
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:12.2f}")


if __name__ == "__main__":
    main()
