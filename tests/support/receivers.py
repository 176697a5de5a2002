"""Real receivers of notifications on 127.0.0.1, checking what they get as real ones would.

`Receiver` is a webhook and robot receiver (aiohttp) that checks the HMAC signatures: webhooks on
`/hook` and `/hook/<name>` (one receiver, several channels), DingTalk-style robots on
`/robot/send`, WeCom-style ones on `/wecom/send`. `Inbox` is an SMTP server (aiosmtpd) keeping
every mail. `serve_receiver()` and `serve_inbox()` run them on the caller's event loop (async
tests); `OnThread` runs either on an event loop of its own thread, for synchronous tests whose
notifications come from another process.
"""

from __future__ import annotations

import asyncio
import base64
import email
import hashlib
import hmac
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from email.message import Message
from types import TracebackType
from typing import Any, Final, Generic, TypeVar

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

T = TypeVar("T")

SECRET: Final = "s3cret-for-hmac"  # noqa: S105 - a test key
ROBOT_SECRET: Final = "SEC0123456789abcdef"  # noqa: S105 - a test key
FRESH_S: Final = 300
"""A signed timestamp older or newer than this is refused."""


@dataclass
class Receiver:
    """What the receiver was sent, and how it answers."""

    base: str = ""
    secret: str = SECRET
    robot_secret: str = ROBOT_SECRET
    fail_next: int = 0
    """Answer this many (correctly signed) requests with 500 before accepting."""
    hooks: list[dict[str, Any]] = field(default_factory=list)
    """Every webhook request: its path, delivery id, whether the signature held, the JSON body."""
    robots: list[dict[str, Any]] = field(default_factory=list)

    async def hook(self, request: web.Request) -> web.Response:
        """A webhook: the HMAC of `<timestamp>.<body>` and a fresh timestamp, else 401."""
        body = await request.read()
        timestamp = request.headers.get("X-Steward-Timestamp", "")
        signature = request.headers.get("X-Steward-Signature", "")
        mac = hmac.new(self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
        valid = hmac.compare_digest(signature, "sha256=" + mac.hexdigest())
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < FRESH_S
        self.hooks.append(
            {
                "path": request.path,
                "delivery": request.headers.get("X-Steward-Delivery"),
                "valid": valid and fresh,
                "json": await request.json(),
            }
        )
        if not (valid and fresh):
            return web.Response(status=401, text="bad signature")
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500, text="receiver busy")
        return web.json_response({"ok": True})

    async def robot(self, request: web.Request) -> web.Response:
        """A DingTalk-style robot: the `sign` of the query, else its error document."""
        timestamp = request.query.get("timestamp", "")
        sign = request.query.get("sign", "")
        mac = hmac.new(
            self.robot_secret.encode(), f"{timestamp}\n{self.robot_secret}".encode(), hashlib.sha256
        )
        valid = sign == base64.b64encode(mac.digest()).decode()
        self.robots.append({"valid": valid, "json": await request.json()})
        if not valid:
            return web.json_response({"errcode": 310000, "errmsg": "sign not match"})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def wecom(self, request: web.Request) -> web.Response:
        """A WeCom-style robot: takes everything."""
        self.robots.append({"valid": True, "json": await request.json()})
        return web.json_response({"errcode": 0, "errmsg": "ok"})


@asynccontextmanager
async def serve_receiver() -> AsyncIterator[Receiver]:
    """A `Receiver` listening on a free 127.0.0.1 port (`base`) on the running loop."""
    state = Receiver()
    app = web.Application()
    app.router.add_post("/hook", state.hook)
    app.router.add_post("/hook/{name}", state.hook)
    app.router.add_post("/robot/send", state.robot)
    app.router.add_post("/wecom/send", state.wecom)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.base = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


@dataclass
class Inbox:
    """An aiosmtpd handler keeping every mail: (recipients, message)."""

    mails: list[tuple[list[str], Message]] = field(default_factory=list)
    port: int = 0

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        """Keep the mail; accept it."""
        content = envelope.original_content or b""
        self.mails.append((list(envelope.rcpt_tos), email.message_from_bytes(content)))
        return "250 OK"


@asynccontextmanager
async def serve_inbox() -> AsyncIterator[Inbox]:
    """An SMTP server on a free 127.0.0.1 port (`port`) on the running loop."""
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox, hostname="mail.test"), "127.0.0.1", 0)
    inbox.port = server.sockets[0].getsockname()[1]
    try:
        yield inbox
    finally:
        server.close()
        await server.wait_closed()


class OnThread(Generic[T]):
    """An async context manager entered on an event loop of its own thread.

    `with OnThread(serve_receiver()) as receiver: ...` serves while the test blocks.
    """

    def __init__(self, manager: AbstractAsyncContextManager[T]) -> None:
        """Prepare; `manager` is entered on `__enter__`."""
        self._manager = manager
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> T:
        """Start the thread and enter the manager there; what it gives."""
        self._thread.start()
        entered = asyncio.run_coroutine_threadsafe(self._manager.__aenter__(), self._loop)
        return entered.result(10)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Exit the manager, then stop the loop and the thread."""
        exited = asyncio.run_coroutine_threadsafe(
            self._manager.__aexit__(kind, error, trace), self._loop
        )
        exited.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
