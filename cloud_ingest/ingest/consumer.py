"""The MQTT consumer: gateways' envelopes and statuses in, batches to a `MessageHandler`, acks after.

Built on paho-mqtt 2.x's public API, MQTT 5:

- **Persistent session.** A fixed client id, `clean_start=False` and a session expiry interval: the
  broker keeps the subscriptions and every unacknowledged QoS 1 message while the process is away,
  and sends them again when the same client id returns. Each ingest process needs its own stable
  client id: what one process held unacknowledged waits for that id (or for its session to expire),
  it does not move to another member of the share group.
- **Manual acknowledgement.** `manual_ack=True`: paho sends no PUBACK by itself. A message is acked
  with `Client.ack(mid, qos)` only after the handler returned for the batch that held it.
- **Subscriptions.** `$share/<group>/steward/v1/+/up` at QoS 1, so N processes split the envelopes.
  `steward/v1/+/status` is *not* shared. A status is a retained message (with a last will), and
  MQTT 5 (§4.8.2) says a broker does not send retained messages to a new shared subscription
  (Mosquitto 2 does; others follow the spec): a fresh deployment on a shared status subscription
  could never learn the gateways that are already online. Shared, each change would also reach only
  one process, so no process could keep gateway state of its own. Every process therefore handles
  every status, which is harmless because recording a status is idempotent. It is subscribed with retain handling
  1 (retained messages only when the subscription is new): a returning session gets the changes it
  missed from its queue, a new one gets the retained state.
- **Group commit.** Messages are collected into a batch of at most `batch_max`, closed `batch_wait_s`
  after its first message, and handed to the handler in arrival order.
- **Bounded intake.** The CONNECT carries MQTT 5 *receive maximum*: the broker never has more than
  that many QoS 1 messages unacknowledged at this client. While a batch is in the handler (or being
  retried after the handler raised) no new batch is taken, so a database outage stops intake at that
  bound and the broker keeps the rest.
- **Handler failure.** Nothing of the batch is acked; the same batch is handed again after a jittered
  exponential backoff, for as long as it takes. The consumer never stops by itself.
- **Reconnect.** paho's own loop reconnects with exponential backoff (`reconnect_min_s` to
  `reconnect_max_s`). A packet id is only meaningful on the connection that delivered it, so every
  delivery carries the number of its connection: messages of a closed connection are never acked (an
  ack could hit another message with a reused id); the broker sends them again on the new connection
  and they reach the handler again (the handler is idempotent).

Threading: paho runs its network loop in its own thread (`loop_start`). That is the simplest correct
choice here: paho then owns connecting, keepalive and reconnecting, which an asyncio-driven loop
(`loop_read`/`loop_write`/`loop_misc` on socket readiness) would have to rebuild, including a blocking
`connect`. Callbacks only hand things to the event loop with `call_soon_threadsafe`. `Client.ack`
is called from the event loop; paho documents its send methods as safe from another thread than the
network loop's (they append to its outgoing queue and wake the loop). A lock held around "is this
connection still current? then ack" and around the connection counter's increments (in the paho
thread, in `on_connect` and `on_disconnect`) keeps a stale packet id from being acked on a newer
connection; an ack queued just before a connection drops is discarded by paho's reconnect.

Garbage collection: a batch holds tens of thousands of parsed readings for a fraction of a second,
enough to survive the collector's young generations; with the default thresholds (700, 10, 10)
every few batches then cost a full collection of the whole heap (the server's imports alone are
about 200,000 objects), which took about a quarter of the event loop at 20-30k readings/s. The
first `start()` of a process therefore moves everything alive after start-up into the collector's
permanent generation (`gc.freeze()`: never traversed again) and raises the first threshold to
`GC_YOUNG_THRESHOLD`; reference counting still frees every batch, the collector only finds cycles.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from cloud_ingest.ingest.messages import Incoming, MessageHandler

_log = logging.getLogger(__name__)

TOPIC_ROOT: Final = "steward/v1"
UP_FILTER: Final = f"{TOPIC_ROOT}/+/up"
STATUS_FILTER: Final = f"{TOPIC_ROOT}/+/status"
_RECEIVE_MAXIMUM_LIMIT: Final = 65_535
GC_YOUNG_THRESHOLD: Final = 50_000
"""Allocations between two collections of the youngest generation (CPython's default is 700)."""
_collector_tuned = False


def _tune_collector() -> None:
    """Freeze the objects of start-up and raise the young threshold, once per process."""
    global _collector_tuned  # noqa: PLW0603 - the collector is per process
    if _collector_tuned:
        return
    _collector_tuned = True
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(max(_young, GC_YOUNG_THRESHOLD), middle, old)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerSettings:
    """Where the consumer connects and how it batches, acknowledges and backs off."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "steward-ingest-1"
    """Fixed per process: the persistent session (and its unacknowledged messages) belongs to it."""
    username: str | None = None
    password: str | None = None
    tls: bool = False
    """TLS with the system's trusted CAs (`mqtts://`)."""
    share_group: str = "ingest"
    """The shared subscription's group: processes in one group split the envelopes."""
    session_expiry_s: int = 86_400
    """How long the broker keeps the session (and its queued messages) after a disconnect."""
    receive_maximum: int = 1_000
    """MQTT 5 receive maximum: at most this many QoS 1 messages unacknowledged at once."""
    batch_max: int = 500
    """At most this many messages per handler call."""
    batch_wait_s: float = 0.005
    """A batch is closed this long after its first message at the latest."""
    keepalive_s: int = 30
    reconnect_min_s: int = 1
    """First reconnect delay (paho takes whole seconds); doubles up to `reconnect_max_s`."""
    reconnect_max_s: int = 30
    retry_initial_s: float = 0.1
    """First delay before a failed batch is handed again; doubles up to `retry_max_s`."""
    retry_max_s: float = 10.0
    retry_jitter: float = 0.5
    """Fraction of a retry delay that is random: delay * (1 - jitter * U[0, 1))."""
    stop_grace_s: float = 5.0
    """On stop, how long a batch already in the handler may take to finish and be acked."""

    def __post_init__(self) -> None:
        """Refuse settings that cannot work, naming the field."""
        problems = [*self._identity_problems(), *self._timing_problems()]
        if problems:
            raise ValueError("; ".join(problems))

    def _identity_problems(self) -> list[str]:
        problems: list[str] = []
        if not self.client_id:
            problems.append("client_id: must not be empty")
        if not self.share_group or any(c in self.share_group for c in "/+#"):
            problems.append("share_group: must be non-empty, without '/', '+' or '#'")
        if not 1 <= self.receive_maximum <= _RECEIVE_MAXIMUM_LIMIT:
            problems.append(f"receive_maximum: must be 1 to {_RECEIVE_MAXIMUM_LIMIT}")
        if not 1 <= self.batch_max <= self.receive_maximum:
            problems.append("batch_max: must be 1 to receive_maximum (a batch could never fill)")
        return problems

    def _timing_problems(self) -> list[str]:
        problems: list[str] = []
        if self.batch_wait_s < 0 or self.retry_initial_s <= 0 or self.stop_grace_s < 0:
            problems.append("batch_wait_s, stop_grace_s: must be >= 0; retry_initial_s: > 0")
        if self.retry_max_s < self.retry_initial_s:
            problems.append("retry_max_s: must be >= retry_initial_s")
        if not 0 <= self.retry_jitter <= 1:
            problems.append("retry_jitter: must be 0 to 1")
        if not 1 <= self.reconnect_min_s <= self.reconnect_max_s:
            problems.append("reconnect_min_s: must be 1 to reconnect_max_s")
        if self.session_expiry_s < 0 or self.keepalive_s < 0:
            problems.append("session_expiry_s, keepalive_s: must be >= 0")
        return problems

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> ConsumerSettings:  # noqa: ANN401 - field values
        """Settings from `mqtt://[user[:password]@]host[:port]` (or `mqtts://`), plus other fields."""
        parts = urlsplit(url)
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
            raise ValueError(f"broker URL {url!r}: expected mqtt://host[:port] or mqtts://")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            **overrides,
        )

    @property
    def up_subscription(self) -> str:
        """`$share/<group>/steward/v1/+/up`."""
        return f"$share/{self.share_group}/{UP_FILTER}"

    def retry_delay(self, attempt: int, rng: random.Random) -> float:
        """The delay before handing a failed batch again, `attempt` counting from 0."""
        base = min(self.retry_initial_s * 2.0**attempt, self.retry_max_s)
        return base * (1 - self.retry_jitter * rng.random())


@dataclass(frozen=True, slots=True)
class ConsumerStats:
    """A snapshot of the consumer's counters, for metrics (`dataclasses.asdict` gives a dict)."""

    messages_received: int
    """Messages delivered by the broker, redeliveries included."""
    batches: int
    """Batches the handler settled."""
    handler_failures: int
    """Handler calls that raised."""
    acks: int
    """Messages acknowledged."""
    abandoned: int
    """Messages not acked because their connection closed first (the broker sends them again)."""
    reconnects: int
    """Successful connections after the first."""
    connected: bool
    unacked: int
    """QoS 1 messages of the current connection received and not yet acknowledged."""
    lag_s: float
    """Now minus the receive time of the oldest unacknowledged message (0 when none)."""


@dataclass(slots=True)
class _Delivery:
    incoming: Incoming
    mid: int
    qos: int
    connection: int


@dataclass(slots=True)
class _Counters:
    messages_received: int = 0
    batches: int = 0
    handler_failures: int = 0
    acks: int = 0
    abandoned: int = 0
    connections: int = 0
    outstanding: dict[tuple[int, int], datetime] = field(default_factory=dict)
    """(connection, mid) -> received_at of each QoS 1 message not yet acked, in arrival order."""


class MqttConsumer:
    """Takes gateways' messages from the broker, hands them to `handler` in batches, acks after.

    Use `await start()` inside a running event loop and `await stop()` to finish; `ready` is set
    once the subscriptions of the current connection are granted.
    """

    def __init__(
        self,
        settings: ConsumerSettings,
        handler: MessageHandler,
        *,
        now: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._handler = handler
        self._now = now
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._lock = threading.Lock()
        self._connection = 0
        """Number of the current connection; bumped (under `_lock`) on connect and disconnect."""
        self._connected = False
        self._pending: deque[_Delivery] = deque()
        self._arrived = asyncio.Event()
        self._stopping = False
        self._counters = _Counters()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    # --- public ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (in the background, retrying until the broker answers) and start consuming."""
        if self._client is not None:
            raise RuntimeError("consumer already started")
        _tune_collector()
        self._loop = asyncio.get_running_loop()
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.reconnect_delay_set(s.reconnect_min_s, s.reconnect_max_s)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set()
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = s.session_expiry_s
        properties.ReceiveMaximum = s.receive_maximum
        client.connect_async(
            s.host, s.port, s.keepalive_s, clean_start=False, properties=properties
        )
        self._client = client
        client.loop_start()
        self._task = asyncio.create_task(self._run(), name=f"mqtt-consumer-{s.client_id}")

    async def stop(self) -> None:
        """Stop taking messages, let a batch in the handler finish (or abandon it), disconnect.

        A batch still in the handler after `stop_grace_s`, or being retried, is abandoned: it is not
        acked, so the broker sends it again to this client id's next session.
        """
        self._stopping = True
        self._arrived.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=self.settings.stop_grace_s)
            if not done:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()  # queued after any PUBACK already queued
            await asyncio.to_thread(client.loop_stop)
        self._connected = False
        self.ready.clear()

    @property
    def connected(self) -> bool:
        """Whether the broker accepted the current connection (for readiness)."""
        return self._connected

    def stats(self) -> ConsumerStats:
        """The counters now."""
        c = self._counters
        current = self._connection
        received = [t for (conn, _), t in c.outstanding.items() if conn == current]
        lag = (self._now() - received[0]).total_seconds() if received else 0.0
        return ConsumerStats(
            messages_received=c.messages_received,
            batches=c.batches,
            handler_failures=c.handler_failures,
            acks=c.acks,
            abandoned=c.abandoned,
            reconnects=max(c.connections - 1, 0),
            connected=self._connected,
            unacked=len(received),
            lag_s=max(lag, 0.0),
        )

    # --- paho thread -------------------------------------------------------------------------

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while paho was stopping
                loop.call_soon_threadsafe(callback, *args)

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            _log.warning("broker refused the connection: %s", reason_code)
            return
        with self._lock:
            self._connection += 1
        _log.info("connected to the broker (session present: %s)", flags.session_present)
        client.subscribe(
            [
                (self.settings.up_subscription, SubscribeOptions(qos=1)),
                (STATUS_FILTER, SubscribeOptions(qos=1, retainHandling=1)),
            ]
        )
        self._post(self._connection_opened)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        with self._lock:
            self._connection += 1
        if not self._stopping:
            _log.warning("lost the broker (%s); reconnecting", reason_code)
        self._post(self._connection_closed)

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _mid: int,
        reason_codes: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            _log.error("broker refused a subscription: %s", ", ".join(refused))
            return
        self._post(self.ready.set)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        incoming = Incoming(topic=msg.topic, payload=bytes(msg.payload), received_at=self._now())
        self._post(self._enqueue, _Delivery(incoming, msg.mid, msg.qos, self._connection))

    # --- event loop --------------------------------------------------------------------------

    def _connection_opened(self) -> None:
        self._connected = True
        self._counters.connections += 1
        self._forget_closed_connections()

    def _connection_closed(self) -> None:
        self._connected = False
        self.ready.clear()
        self._forget_closed_connections()

    def _forget_closed_connections(self) -> None:
        current = self._connection
        outstanding = self._counters.outstanding
        for key in [key for key in outstanding if key[0] != current]:
            del outstanding[key]

    def _enqueue(self, delivery: _Delivery) -> None:
        self._counters.messages_received += 1
        if delivery.qos > 0:
            key = (delivery.connection, delivery.mid)
            self._counters.outstanding[key] = delivery.incoming.received_at
        self._pending.append(delivery)
        self._arrived.set()

    def _is_live(self, delivery: _Delivery) -> bool:
        """QoS 0 messages are always worth handing on; QoS 1 only while their connection lasts."""
        return delivery.qos == 0 or delivery.connection == self._connection

    async def _run(self) -> None:
        while not self._stopping:
            batch = await self._collect()
            if batch and not self._stopping:
                await self._settle(batch)

    async def _collect(self) -> list[_Delivery]:
        """Wait for a first message, then for more until the batch is full or its time is up."""
        s = self.settings
        while not self._pending and not self._stopping:
            self._arrived.clear()
            await self._arrived.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.batch_wait_s
        while len(self._pending) < s.batch_max and not self._stopping:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        batch: list[_Delivery] = []
        while self._pending and len(batch) < s.batch_max:
            delivery = self._pending.popleft()
            if self._is_live(delivery):
                batch.append(delivery)
            else:
                self._counters.abandoned += 1
        return batch

    async def _settle(self, batch: list[_Delivery]) -> None:
        """Hand `batch` to the handler until it returns, then ack; abandon what went stale."""
        attempt = 0
        while not self._stopping:
            live = [d for d in batch if self._is_live(d)]
            self._counters.abandoned += len(batch) - len(live)
            if not live:
                return
            batch = live
            try:
                await self._handler([d.incoming for d in batch])
            except Exception:  # noqa: BLE001 - any storage failure: retry, never stop
                self._counters.handler_failures += 1
                delay = self.settings.retry_delay(attempt, self._rng)
                _log.exception(
                    "handler failed on a batch of %d; nothing acked, retrying in %.2f s",
                    len(batch),
                    delay,
                )
                attempt += 1
                await self._sleep_unless_stopping(delay)
                continue
            self._counters.batches += 1
            self._ack(batch)
            return

    async def _sleep_unless_stopping(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        while not self._stopping and (remaining := deadline - loop.time()) > 0:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    def _ack(self, batch: list[_Delivery]) -> None:
        client = self._client
        outstanding = self._counters.outstanding
        for delivery in batch:
            if delivery.qos == 0:
                continue
            outstanding.pop((delivery.connection, delivery.mid), None)
            with self._lock:
                current = client is not None and delivery.connection == self._connection
                if current and client is not None:
                    client.ack(delivery.mid, delivery.qos)
            if current:
                self._counters.acks += 1
            else:
                self._counters.abandoned += 1
