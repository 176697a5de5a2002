import asyncio
from datetime import UTC, datetime

import aiomqtt
import pytest

from core.site import DeviceKind
from core.types import AlarmEvent, AlarmState, Severity
from edge_agent.bindings import Bindings, BindingsHolder
from edge_agent.config import DeviceConfig, LocalActionConfig, LocalMqttConfig
from edge_agent.local_actions import LocalActions
from simulators.services import Mosquitto

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def event(
    fingerprint: str, device: str, state: AlarmState, severity: Severity = Severity.CRITICAL
) -> AlarmEvent:
    return AlarmEvent(fingerprint, 1, state, severity, T0, T0, "r", device)


def make(broker: LocalMqttConfig | None = None) -> LocalActions:
    bindings = BindingsHolder(
        Bindings.build(
            [
                DeviceConfig(
                    id="smoke-1", codec="zigbee2mqtt.generic.exposes", kind=DeviceKind.SMOKE
                ),
                DeviceConfig(
                    id="smoke-2", codec="zigbee2mqtt.generic.exposes", kind=DeviceKind.SMOKE
                ),
                DeviceConfig(id="bin-1", codec="lorawan.milesight.em310_udl", kind=DeviceKind.BIN),
            ]
        )
    )
    action = LocalActionConfig(topic="relay/siren/set", kinds=(DeviceKind.SMOKE,))
    return LocalActions([action], broker or LocalMqttConfig(), bindings)


def queued(actions: LocalActions) -> list[bytes]:
    out = []
    while not actions._queue.empty():
        out.append(actions._queue.get_nowait()[1])
    return out


def test_siren_goes_on_with_the_first_alarm_and_off_with_the_last() -> None:
    actions = make()
    actions.on_alarms([event("s/smoke-1/r", "smoke-1", AlarmState.FIRING)])
    actions.on_alarms([event("s/smoke-2/r", "smoke-2", AlarmState.FIRING)])
    actions.on_alarms([event("s/bin-1/r", "bin-1", AlarmState.FIRING)])  # not a kind it serves
    actions.on_alarms([event("s/smoke-2/r", "smoke-2", AlarmState.FIRING, Severity.WARNING)])
    actions.on_alarms([event("s/smoke-1/r", "smoke-1", AlarmState.RESOLVED)])
    assert queued(actions) == [b'{"state": "ON"}']
    actions.on_alarms([event("s/smoke-2/r", "smoke-2", AlarmState.RESOLVED)])
    assert queued(actions) == [b'{"state": "OFF"}']


def test_alarms_firing_before_a_restart_are_taken_over() -> None:
    actions = make()
    actions.seed(
        [("s/smoke-1/r", "smoke-1", Severity.CRITICAL), ("s/bin-1/r", "bin-1", Severity.CRITICAL)]
    )
    assert queued(actions) == [b'{"state": "ON"}']
    actions.on_alarms([event("s/smoke-1/r", "smoke-1", AlarmState.RESOLVED)])
    assert queued(actions) == [b'{"state": "OFF"}']


async def _until(predicate: object, limit: float = 20.0) -> None:
    assert callable(predicate)
    for _ in range(int(limit / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {limit} s")


@pytest.mark.integration
async def test_a_local_broker_lost_between_alarms_is_reconnected_before_the_next_one(
    mosquitto: Mosquitto,
) -> None:
    actions = make(LocalMqttConfig(host=mosquitto.host, port=mosquitto.port, keepalive_s=5))
    got: list[bytes] = []

    async def siren() -> None:
        while True:
            try:
                async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
                    await client.subscribe("relay/siren/set", qos=1)
                    async for message in client.messages:
                        got.append(bytes(message.payload))  # noqa: PERF401
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    listener = asyncio.create_task(siren())
    running = asyncio.create_task(actions.run())
    try:
        await _until(lambda: actions.connections == 1)
        mosquitto.restart()
        # No command is due: the lost connection is noticed and made again all the same.
        await _until(lambda: actions.connections == 2)
        await asyncio.sleep(0.5)  # the listener reconnects too
        actions.on_alarms([event("s/smoke-1/r", "smoke-1", AlarmState.FIRING)])
        await _until(lambda: got == [b'{"state": "ON"}'])
        assert actions.published == 1
    finally:
        running.cancel()
        listener.cancel()
        await asyncio.gather(running, listener, return_exceptions=True)


def test_commands_not_yet_sent_go_first_on_the_actions_that_replace_them() -> None:
    old = make()
    old.on_alarms([event("s/smoke-1/r", "smoke-1", AlarmState.FIRING)])
    old.on_alarms([event("s/smoke-1/r", "smoke-1", AlarmState.RESOLVED)])
    unsent = old.unsent()
    assert [payload for _, payload in unsent] == [b'{"state": "ON"}', b'{"state": "OFF"}']
    assert old.unsent() == []
    new = make()
    new.send_first(unsent)
    new.seed([("s/smoke-2/r", "smoke-2", Severity.CRITICAL)])
    assert queued(new) == [b'{"state": "ON"}', b'{"state": "OFF"}', b'{"state": "ON"}']
