"""Local actions: critical alarms drive an output on the LOCAL broker (a siren relay), cloud or not.

Each configured action names an actuator topic, the minimum severity and the device kinds it serves.
A FIRING event switches it on, a RESOLVED (or NORMAL) event of the same alarm switches it off once no
other alarm holds it on. Publishes are queued and sent with QoS 1 over a connection of their own
that reconnects with backoff, so a dead uplink never delays a siren.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt

from core.site import DeviceKind
from core.types import AlarmEvent, AlarmState, Severity
from edge_agent.bindings import BindingsHolder
from edge_agent.config import LocalActionConfig, LocalMqttConfig
from edge_agent.mqtt_watch import until_disconnected
from edge_agent.sources.base import Backoff

_LOG = logging.getLogger(__name__)
_ON_STATES = frozenset({AlarmState.FIRING})
_OFF_STATES = frozenset({AlarmState.RESOLVED, AlarmState.NORMAL})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class _ActionState:
    config: LocalActionConfig
    holders: set[str] = field(default_factory=set)


class LocalActions:
    """Turns alarm events into actuator publishes on the local broker."""

    def __init__(
        self,
        actions: Sequence[LocalActionConfig],
        broker: LocalMqttConfig,
        bindings: BindingsHolder,
        *,
        client_id: str = "",
    ) -> None:
        """Prepare the actions; nothing connects until `run()`."""
        self.broker = broker
        self.bindings = bindings
        self.client_id = client_id
        self._actions = [_ActionState(a) for a in actions]
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._pending: tuple[str, bytes] | None = None
        self.published = 0
        self.connections = 0
        """Connections made to the local broker since the start."""

    def replace(self, actions: Sequence[LocalActionConfig]) -> None:
        """Swap in a new action list (alarms holding an old output on are forgotten)."""
        self._actions = [_ActionState(a) for a in actions]

    def unsent(self) -> list[tuple[str, bytes]]:
        """Take the commands not yet published, in order (for the actions that replace these)."""
        out = [] if self._pending is None else [self._pending]
        self._pending = None
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
            self._queue.task_done()
        return out

    def send_first(self, commands: Iterable[tuple[str, bytes]]) -> None:
        """Queue commands left unsent by the actions these replace, ahead of anything new."""
        for command in commands:
            self._queue.put_nowait(command)

    def seed(self, firing: Iterable[tuple[str, str, Severity]]) -> None:
        """Take over alarms that were FIRING before a restart: `(fingerprint, device_id, severity)`.

        Their outputs are switched on again (the command is idempotent) and switched off by their
        RESOLVED events as usual.
        """
        for fingerprint, device_id, severity in firing:
            self.on_alarms(
                [
                    AlarmEvent(
                        fingerprint=fingerprint,
                        seq=0,
                        state=AlarmState.FIRING,
                        severity=severity,
                        starts_at=_EPOCH,
                        at=_EPOCH,
                        rule_id="",
                        device_id=device_id,
                    )
                ]
            )

    def on_alarms(self, events: Sequence[AlarmEvent]) -> None:
        """Queue the publishes these events call for (a pipeline listener; never blocks)."""
        for event in events:
            device = self.bindings.current.devices.get(event.device_id)
            kind = device.kind if device is not None else DeviceKind.OTHER
            for action in self._actions:
                self._apply(action, event, kind)

    def _apply(self, action: _ActionState, event: AlarmEvent, kind: DeviceKind) -> None:
        cfg = action.config
        if event.severity.rank < cfg.min_severity.rank or (cfg.kinds and kind not in cfg.kinds):
            return
        if event.state in _ON_STATES and not event.suppressed:
            was_off = not action.holders
            action.holders.add(event.fingerprint)
            if was_off:
                self._queue.put_nowait((cfg.topic, cfg.on_payload.encode()))
        elif event.state in _OFF_STATES and event.fingerprint in action.holders:
            action.holders.discard(event.fingerprint)
            if not action.holders:
                self._queue.put_nowait((cfg.topic, cfg.off_payload.encode()))

    async def run(self) -> None:
        """Publish queued commands, reconnecting to the local broker as needed, until cancelled."""
        backoff = Backoff(first=0.2, maximum=10.0)
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    identifier=self.client_id or None,
                    keepalive=self.broker.keepalive_s,
                ) as client:
                    backoff.reset()
                    self.connections += 1
                    # A local broker lost between alarms is noticed (and reconnected) at once,
                    # not when the next siren command is due.
                    publishing = asyncio.create_task(self._publish(client))
                    watching = asyncio.create_task(until_disconnected(client))
                    try:
                        done, _ = await asyncio.wait(
                            [publishing, watching], return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        publishing.cancel()
                        watching.cancel()
                        await asyncio.gather(publishing, watching, return_exceptions=True)
                    for task in done:
                        task.result()
            except aiomqtt.MqttError as err:
                _LOG.warning(
                    "local actions: broker %s:%s: %s", self.broker.host, self.broker.port, err
                )
                await asyncio.sleep(backoff.next_delay())

    async def _publish(self, client: aiomqtt.Client) -> None:
        """Send queued commands in order; one that fails stays first in line for the next connection."""
        while True:
            if self._pending is None:
                self._pending = await self._queue.get()
            topic, payload = self._pending
            await client.publish(topic, payload, qos=1, timeout=5)
            self.published += 1
            self._pending = None
            self._queue.task_done()

    async def flush(self, limit_s: float) -> None:
        """Wait up to `limit_s` for queued commands to go out."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit_s):
                await self._queue.join()
