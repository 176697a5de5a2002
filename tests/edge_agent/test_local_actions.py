from datetime import UTC, datetime

from core.site import DeviceKind
from core.types import AlarmEvent, AlarmState, Severity
from edge_agent.bindings import Bindings, BindingsHolder
from edge_agent.config import DeviceConfig, LocalActionConfig, LocalMqttConfig
from edge_agent.local_actions import LocalActions

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def event(
    fingerprint: str, device: str, state: AlarmState, severity: Severity = Severity.CRITICAL
) -> AlarmEvent:
    return AlarmEvent(fingerprint, 1, state, severity, T0, T0, "r", device)


def make() -> LocalActions:
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
    return LocalActions([action], LocalMqttConfig(), bindings)


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
