"""The MQTT uplink: outbox batches → Envelope → QoS 1 publish → outbox commit after the PUBACK.

One connection at a time, with a persistent session (clean_session=False, a stable client id) and a
retained `status` topic whose last will says "offline". The publish loop takes a batch from the outbox,
publishes it to `steward/v1/{gateway_id}/up` and waits for the PUBACK (aiomqtt 2.x awaits it) at most
`publish_timeout_s`; only then is the batch committed. Any failure (refused connection, lost
connection, a broker frozen with its TCP socket left open) leaves the batch open in the outbox, drops
the connection and reconnects with jittered exponential backoff (aiomqtt docs/reconnection.md). The
retry publishes the same batch under the same batch id, so the cloud can de-duplicate it.

The uplink also subscribes to its retained `config` topic and hands each message to an injected
`on_config` callback; the callback's report is published to `config/report` (retained).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Final

import aiomqtt

from core.clock import Clock, SystemClock
from edge_agent.mqtt_watch import until_disconnected
from edge_agent.outbox.base import Batch, Outbox
from edge_agent.uplink_settings import UplinkSettings, UplinkTlsError

_LOGGER = logging.getLogger(__name__)

ConfigCallback = Callable[[bytes], Awaitable[Mapping[str, object]]]
"""Validates and applies a config pushed by the cloud; returns the report to publish."""

TOPIC_ROOT: Final = "steward/v1"
_STOP_TIMEOUT_S: Final = 2.0


def _version() -> str:
    try:
        return metadata.version("steward-iot")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True, slots=True)
class UplinkTopics:
    """The MQTT topics of one gateway."""

    up: str
    status: str
    config: str
    config_report: str

    @classmethod
    def for_gateway(cls, gateway_id: str) -> UplinkTopics:
        """Topics under `steward/v1/{gateway_id}/`."""
        root = f"{TOPIC_ROOT}/{gateway_id}"
        return cls(f"{root}/up", f"{root}/status", f"{root}/config", f"{root}/config/report")


@dataclass(slots=True)
class UplinkCounters:
    """What the uplink has done since it started."""

    batches_sent: int = 0
    records_sent: int = 0
    bytes_sent: int = 0
    publish_failures: int = 0
    connect_failures: int = 0
    reconnects: int = 0
    config_messages: int = 0
    config_errors: int = 0
    connected: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        """The counters as a plain dict (for self-statistics and logs)."""
        return asdict(self)


class Uplink:
    """Publishes the outbox to the cloud broker; run with `run()`, stop with `drain()` or `stop()`."""

    def __init__(
        self,
        settings: UplinkSettings,
        outbox: Outbox,
        *,
        gateway_id: str,
        on_config: ConfigCallback | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Prepare an uplink for `gateway_id`; nothing connects until `run()`."""
        self.settings = settings
        self.outbox = outbox
        self.gateway_id = gateway_id
        self.topics = UplinkTopics.for_gateway(gateway_id)
        self.client_id = settings.client_id or f"steward-{gateway_id}"
        self.counters = UplinkCounters()
        self._on_config = on_config
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._stopping = asyncio.Event()
        self._flushing = False
        self._idle = asyncio.Event()
        self._connected_once = False
        self._connection_began = self._clock.now()
        """When the current connection attempt began: the `session` of its will and statuses."""

    # --- payloads ------------------------------------------------------------------------------

    def _status(self, state: str) -> bytes:
        """The retained status payload.

        `session` is the same for a connection's `online` status and its last will (written
        before the connection exists, so its `at` is not when it applies): a reader orders
        statuses by (`session`, online before offline), not by arrival.
        """
        doc = {
            "state": state,
            "gateway_id": self.gateway_id,
            "version": _version(),
            "at": self._clock.now().isoformat(),
            "session": self._connection_began.isoformat(),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        self._connection_began = self._clock.now()
        return aiomqtt.Client(
            s.host,
            s.port,
            identifier=self.client_id,
            clean_session=False,
            keepalive=s.keepalive_s,
            timeout=s.connect_timeout_s,
            tls_context=s.ssl_context(),
            username=s.username or (self.gateway_id if s.password_file else None),
            password=s.password(),
            will=aiomqtt.Will(self.topics.status, self._status("offline"), qos=1, retain=True),
        )

    # --- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, publish, and reconnect with backoff until `stop()` or `drain()`."""
        attempt = 0
        while not self._stopping.is_set():
            try:
                await self._connection()
            except (aiomqtt.MqttError, OSError) as err:
                self.counters.connected = False
                if self._stopping.is_set():
                    break
                self.counters.connect_failures += 1
                delay = self.settings.backoff.delay(attempt, self._rng)
                attempt += 1
                what = "cannot connect" if isinstance(err, UplinkTlsError) else "lost"
                _LOGGER.warning("uplink %s (%s); retrying in %.1f s", what, err, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
            else:
                attempt = 0
        self.counters.connected = False

    async def _connection(self) -> None:
        """One connection: connect (abandoned if a stop comes first), then run the session."""
        client = self._client()
        async with contextlib.AsyncExitStack() as stack:
            connect = asyncio.create_task(stack.enter_async_context(client), name="uplink-connect")
            stopping = asyncio.create_task(self._stopping.wait(), name="uplink-stop")
            try:
                await asyncio.wait([connect, stopping], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not connect.done():
                connect.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError, OSError):
                    await connect
                return
            connect.result()
            if self._connected_once:
                self.counters.reconnects += 1
            self._connected_once = True
            self.counters.connected = True
            _LOGGER.info("uplink connected to %s:%d", self.settings.host, self.settings.port)
            await self._session(client)
        self.counters.connected = False

    def stop(self) -> None:
        """Ask `run()` to finish now (an open batch stays in the outbox)."""
        self._stopping.set()

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 - a deadline for a clean exit
        """Flush the outbox while connected for at most `timeout` s, then stop; True if emptied.

        `run()` must be running (in another task) for anything to be flushed.
        """
        self._flushing = True
        emptied = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while (await self.outbox.stats()).depth > 0:
                    self._idle.clear()
                    await self._idle.wait()
                emptied = True
        self.stop()
        return emptied

    # --- one connection ------------------------------------------------------------------------

    async def _session(self, client: aiomqtt.Client) -> None:
        timeout = self.settings.publish_timeout_s
        await client.publish(
            self.topics.status, self._status("online"), qos=1, retain=True, timeout=timeout
        )
        tasks = [asyncio.create_task(self._publish_loop(client), name="uplink-publish")]
        if self._on_config is not None:
            await client.subscribe(self.topics.config, qos=1, timeout=timeout)
            tasks.append(asyncio.create_task(self._config_loop(client), name="uplink-config"))
        else:
            # The config loop notices a lost connection while idle; without it, this does.
            watch = until_disconnected(client)
            tasks.append(asyncio.create_task(watch, name="uplink-watch"))
        stopping = asyncio.create_task(self._stopping.wait(), name="uplink-stop")
        try:
            done, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*tasks, stopping):
                task.cancel()
            await asyncio.gather(*tasks, stopping, return_exceptions=True)
        for task in done:
            if task is not stopping and (error := task.exception()) is not None:
                raise error
        # A clean stop: say so (the will only covers unclean ones), without waiting long.
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(
                self.topics.status,
                self._status("offline"),
                qos=1,
                retain=True,
                timeout=min(timeout, _STOP_TIMEOUT_S),
            )

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        s = self.settings
        batch: Batch | None = None
        while True:
            if batch is None:
                batch = await self._next_batch()
                if batch is None:
                    continue
            payload = batch.envelope(self.gateway_id, self._clock.now())
            try:
                await client.publish(self.topics.up, payload, qos=1, timeout=s.publish_timeout_s)
            except (aiomqtt.MqttError, asyncio.CancelledError):
                # No PUBACK (or the connection was found lost meanwhile): nothing is committed;
                # the batch stays open for the retry.
                self.counters.publish_failures += 1
                raise
            sent = batch
            stats = await self.outbox.stats()
            if stats.depth - len(sent.records) >= s.batch_max:
                # Busy: commit this batch and open a full next one in one transaction.
                batch = await self.outbox.end_and_begin(
                    sent, sent.ids, s.batch_max, s.batch_max_bytes
                )
            else:
                await self.outbox.end(sent, accepted=sent.ids)
                batch = None
            self.counters.batches_sent += 1
            self.counters.records_sent += len(sent.records)
            self.counters.bytes_sent += len(payload)
            self._idle.set()

    async def _next_batch(self) -> Batch | None:
        """Wait for records (a full batch, or `batch_wait_s`; alarms at once) and begin."""
        s = self.settings
        stats = await self.outbox.wait_ready(1, timeout=None if not self._flushing else 0.05)
        if stats.depth == 0:
            self._idle.set()
            return None
        if (
            not self._flushing
            and stats.alarm_depth == 0
            and stats.in_flight == 0
            and stats.depth < s.batch_max
        ):
            await self.outbox.wait_ready(s.batch_max, timeout=s.batch_wait_s)
        return await self.outbox.begin(s.batch_max, s.batch_max_bytes)

    async def _config_loop(self, client: aiomqtt.Client) -> None:
        if self._on_config is None:
            return
        async for message in client.messages:
            if not message.topic.matches(self.topics.config):
                continue
            payload = message.payload
            data = payload if isinstance(payload, bytes) else str(payload or "").encode()
            self.counters.config_messages += 1
            try:
                report = dict(await self._on_config(data))
            except Exception as err:
                # The callback owns validation; a crash in it is reported, never fatal.
                _LOGGER.exception("config callback failed")
                self.counters.config_errors += 1
                report = {"accepted": False, "errors": [f"{type(err).__name__}: {err}"]}
            report.setdefault("at", self._clock.now().isoformat())
            body = json.dumps(report, separators=(",", ":"), default=str).encode()
            await client.publish(
                self.topics.config_report,
                body,
                qos=1,
                retain=True,
                timeout=self.settings.publish_timeout_s,
            )
