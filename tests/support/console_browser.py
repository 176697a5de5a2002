"""The console's browser tests: one served world and one headless Chromium per module.

The world is real: a Mosquitto broker, `cloud-ingest serve` consuming it into SQLite, a gateway of
company A and people of each role with console passwords. Alarms come from a simulated gateway:
an envelope published at QoS 1 to the broker, as the edge agent's uplink sends it. The browser is
Debian's Chromium (`/usr/bin/chromium`) driven by Playwright; no browser is downloaded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from uuid import uuid4

import pytest
from ingest_server import IngestServer, Publisher, upgrade_database
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from cloud_ingest.auth.service import add_user
from cloud_ingest.auth.sessions import set_password
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.db import create_engine
from core.envelope_json import dumps
from core.types import AlarmEvent, AlarmState, Envelope, Severity
from simulators.cloud_server import CHROMIUM, CHROMIUM_FLAGS
from simulators.services import Mosquitto

GATEWAY: Final = "gw-a"
COMPANY: Final = "A"
SITE: Final = "d1/s1"
PASSWORD: Final = "correct-horse-battery"  # noqa: S105 - the test people's password
PEOPLE: Final = {  # name: (role, area)
    "op": ("operator", None),
    "tech": ("technician", None),
    "wall": ("operator", "d1/s1/c9"),
}
"""`wall` watches one compound only: the screenshot shows just the alarms raised for it."""
WALL: Final = {"width": 1920, "height": 1080}
REPO: Final = Path(__file__).resolve().parents[2]
SCREENSHOTS: Final = Path(os.environ.get("STEWARD_SCREENSHOTS", REPO / "build" / "screenshots"))
"""Where the browser tests put their screenshots of every page (git-ignored; `docs/images/` holds
the ones the docs show: copy them over when a page changes)."""


@dataclass
class World:
    """The served console: its server, broker and a way to raise alarms through the broker."""

    server: IngestServer
    broker: Mosquitto
    counter: int = 0
    published: dict[str, float] = field(default_factory=dict)
    """Fingerprint: wall-clock time (s) just before its envelope was published."""

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.server.url

    def alarm(
        self,
        device: str,
        rule: str,
        *,
        severity: Severity = Severity.CRITICAL,
        location: str | None = None,
        description: str = "",
        age_s: float = 0.0,
    ) -> str:
        """Publish one FIRING alarm of `device` (a fresh device name each call); its fingerprint.

        Without a `location`, each alarm is in a building of its own, so it opens its own work
        order (alarms of one place and category join one order).
        """
        self.counter += 1
        device = f"{device}-{self.counter}"
        location = location or f"d1/s1/c1/g1/b{self.counter}"
        fingerprint = f"{location}/{device}/{rule}"
        now = datetime.now(UTC)
        starts = now - timedelta(seconds=age_s)
        event = AlarmEvent(
            fingerprint=fingerprint,
            seq=1,
            state=AlarmState.FIRING,
            severity=severity,
            starts_at=starts,
            at=now,
            rule_id=rule,
            device_id=device,
            location=location,
            description=description,
            valid_until=now + timedelta(hours=1),
        )
        envelope = Envelope(GATEWAY, uuid4(), now, alarm_events=(event,))
        self.published[fingerprint] = time.time()
        publisher = Publisher(self.broker, [(f"steward/v1/{GATEWAY}/up", dumps(envelope))])
        publisher.start()
        publisher.finish(10)
        return fingerprint


def _prepare(url: str) -> None:
    async def run() -> None:
        engine = create_engine(url)
        try:
            await add_gateway(engine, GATEWAY, company=COMPANY, site=SITE)
            for name, (role, area) in PEOPLE.items():
                await add_user(engine, name, role=role, company=COMPANY, area=area)
                await set_password(engine, name, PASSWORD)
        finally:
            await engine.dispose()

    upgrade_database(url)
    asyncio.run(run())


def _in_thread(url: str) -> None:
    """`_prepare` in a thread of its own (Playwright's sync API holds this thread's event loop)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(_prepare, url).result()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A broker and `cloud-ingest serve` on it, with company A's gateway and people."""
    if shutil.which("mosquitto") is None or not Path(CHROMIUM).exists():
        pytest.fail("the console tests need mosquitto and chromium: run `make system-deps`")
    workdir = tmp_path_factory.mktemp("console")
    url = f"sqlite+aiosqlite:///{workdir}/steward.db"
    _in_thread(url)
    broker = Mosquitto().start()
    server = IngestServer(workdir, db_url=url, mqtt_url=broker.url, client_id="console-ingest")
    try:
        server.start()
        yield World(server, broker)
    finally:
        server.stop()
        broker.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Debian Chromium for the module."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Session:
    """A browser context of one person, and the errors its pages logged."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)

    def watch(self, message: ConsoleMessage) -> None:
        """Keep console errors."""
        if message.type == "error":
            self.errors.append(message.text)


def open_session(browser: Browser, **options: Any) -> Session:
    """A fresh context (no cookies) at the wall screen's size, its page watched for errors."""
    context = browser.new_context(viewport=WALL, **options)  # type: ignore[arg-type]
    page = context.new_page()
    session = Session(context, page)
    page.on("console", session.watch)
    page.on("pageerror", lambda error: session.errors.append(str(error)))
    return session


def sign_in(session: Session, world: World, name: str, password: str = PASSWORD) -> Page:
    """Sign `name` in through the form; the page after it."""
    page = session.page
    page.goto(f"{world.url}/console/alarms")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("button[type=submit]")
    return page
