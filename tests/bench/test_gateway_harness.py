"""The pure parts of the gateway benchmark: payloads, schedules, decoders and delivery statistics."""

from __future__ import annotations

import json
import socket
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is not an installed package

from bench.gateways.broker_counters import SYS_INTERVAL_CONFIG, broker_dropped
from bench.gateways.load import LoadPlan, connect_raw, publish_packet, schedule, send
from bench.gateways.payloads import BASE_TOPIC, DeviceSet, payload
from bench.gateways.receiver import decode_steward, decode_thingsboard, decode_z2m
from bench.gateways.stats import Received, Sent, alarm_latencies, analyse, count_reordered
from core.envelope_json import dumps
from core.metrics import Metric
from core.types import AlarmEvent, AlarmState, Envelope, RawFrame, Reading, Severity
from firmware_adapters.registry import CODECS
from simulators.services import Mosquitto


def _arr(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _sent(devices: list[int], seqs: list[int], times: list[int]) -> Sent:
    return Sent(_arr(devices), _arr(seqs), _arr(times))


def _received(devices: list[int], seqs: list[int], times: list[int]) -> Received:
    return Received(_arr(devices), _arr(seqs), _arr(times))


def test_payloads_are_zigbee2mqtt_state_json_the_generic_codec_decodes() -> None:
    devices = DeviceSet(sensors=3, smoke=2)
    codec = CODECS["zigbee2mqtt.generic.exposes"]
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(devices.count):
        body = payload(devices, index, 7, 1_700_000_000_123)
        doc = json.loads(body)
        assert isinstance(doc, dict)
        assert doc["seq"] == 7
        assert doc["last_seen"] == 1_700_000_000_123
        assert all(isinstance(v, int | float | bool) for v in doc.values())
        frame = RawFrame("z2m", codec.id, body, at, {"device_id": devices.device_id(index)})
        metrics = {r.metric: r.value for r in codec.decode(frame).readings}
        if devices.is_smoke(index):
            assert metrics[Metric.SMOKE] is True  # odd sequence numbers alarm
        else:
            assert metrics[Metric.ILLUMINANCE_LUX] == 7


def test_device_names_round_trip_and_foreign_names_are_refused() -> None:
    devices = DeviceSet(sensors=10, smoke=4)
    for index in range(devices.count):
        assert devices.index_of(devices.friendly_name(index)) == index
        assert devices.index_of(devices.device_id(index)) == index
        assert devices.topic(index).endswith(devices.friendly_name(index))
    assert devices.index_of("bench_0010") is None
    assert devices.index_of("smoke_0004") is None
    assert devices.index_of("gw-bench") is None


def test_schedule_is_round_robin_and_pairs_share_a_device() -> None:
    devices = DeviceSet(sensors=3)
    dev, seq = schedule(LoadPlan(1, devices, rate=6, seconds=1))
    assert dev.tolist() == [0, 1, 2, 0, 1, 2]
    assert seq.tolist() == [0, 0, 0, 1, 1, 1]
    dev, seq = schedule(LoadPlan(1, devices, rate=8, seconds=1, pairs=True))
    assert dev.tolist() == [0, 0, 1, 1, 2, 2, 0, 0]
    assert seq.tolist() == [0, 1, 0, 1, 0, 1, 2, 3]


def test_analyse_counts_loss_duplicates_unknown_and_latency() -> None:
    sent = _sent([0, 0, 1, 1], [0, 1, 0, 1], [0, 1_000_000, 2_000_000, 3_000_000])
    received = _received(
        [0, 0, 1, 1, 5], [0, 0, 1, 9, 0], [10_000_000, 11_000_000, 14_000_000, 14_000_000, 1]
    )
    d = analyse(sent, received, late_after_ns=10_500_000)
    assert (d.sent, d.delivered, d.lost, d.duplicates, d.unknown) == (4, 2, 2, 1, 2)
    assert d.loss_ratio == 0.5
    assert d.late == 1  # (1, 1) took 11 ms
    assert d.latency_p50_ms == 10.5  # latencies 10 ms and 11 ms
    assert d.latency_max_ms == 11.0


def test_reordering_is_per_device() -> None:
    # Device 0 arrives 0, 2, 1 (one reordered); device 1 interleaved but in order.
    assert count_reordered(_arr([0, 1, 0, 1, 0]), _arr([0, 5, 2, 6, 1])) == 1
    assert count_reordered(_arr([0, 1, 0, 1]), _arr([0, 9, 1, 10])) == 0
    assert count_reordered(_arr([]), _arr([])) == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=60),
    st.randoms(use_true_random=False),
    st.floats(0, 1),
)
def test_a_shuffled_subset_is_measured_exactly(
    device_list: list[int], rnd: object, keep: float
) -> None:
    counters: dict[int, int] = {}
    seqs = []
    for device in device_list:
        seqs.append(counters.get(device, 0))
        counters[device] = counters.get(device, 0) + 1
    n = len(device_list)
    sent = _sent(device_list, seqs, list(range(n)))
    kept = [i for i in range(n) if (i * 7919 % 100) / 100 < keep]
    order = list(kept)
    rnd.shuffle(order)  # type: ignore[attr-defined]
    received = _received(
        [device_list[i] for i in order], [seqs[i] for i in order], [i + 1000 for i in order]
    )
    d = analyse(sent, received)
    assert d.delivered == len(kept)
    assert d.lost == n - len(kept)
    assert d.duplicates == 0
    assert d.unknown == 0
    if kept:
        assert d.latency_max_ms == 1000 / 1e6
    expected_reordered = 0
    seen: dict[int, int] = {}
    for i in order:
        device, seq = device_list[i], seqs[i]
        if seq < seen.get(device, -1):
            expected_reordered += 1
        seen[device] = max(seen.get(device, -1), seq)
    assert d.reordered == expected_reordered


def test_alarm_latency_matches_firings_to_alarming_messages_in_order() -> None:
    sent = _sent([3, 3, 3, 3, 4], [0, 1, 2, 3, 1], [0, 10, 20, 30, 40])
    alarming = sent.seq % 2 == 1
    alarms = _received([3, 4, 3], [-1, -1, -1], [15, 47, 38])
    assert sorted(alarm_latencies(sent, alarms, alarming).tolist()) == [5, 7, 8]


def test_decoders_read_each_gateways_format() -> None:
    devices = DeviceSet(sensors=2, smoke=1)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    envelope = Envelope(
        "gw",
        uuid.uuid4(),
        at,
        readings=(
            Reading("bench-0001", Metric.ILLUMINANCE_LUX, 42, at),
            Reading("bench-0001", Metric.BATTERY_PCT, 97, at),
            Reading("gw", Metric.ILLUMINANCE_LUX, 5, at),
        ),
        alarm_events=(
            AlarmEvent(
                "s/smoke-0000/r", 1, AlarmState.FIRING, Severity.CRITICAL, at, at, "r", "smoke-0000"
            ),
            AlarmEvent(
                "s/smoke-0000/r",
                2,
                AlarmState.RESOLVED,
                Severity.CRITICAL,
                at,
                at,
                "r",
                "smoke-0000",
            ),
        ),
    )
    steward = decode_steward(dumps(envelope), devices)
    assert steward.messages == [(1, 42)]
    assert steward.alarms == [2]
    assert decode_steward(b"{not json", devices).errors == 1

    tb = json.dumps(
        {"bench_0000": [{"ts": 1, "values": {"seq": 3, "illuminance": 3.0}}, {"seq": 4}], "x": []}
    ).encode()
    assert decode_thingsboard(tb, devices).messages == [(0, 3), (0, 4)]
    assert decode_thingsboard(b"[]", devices).errors == 1

    raw = payload(devices, 1, 9, 0)
    assert decode_z2m("zigbee2mqtt/bench_0001", raw, devices).messages == [(1, 9)]
    assert decode_z2m("zigbee2mqtt/other", raw, devices).errors == 1


def test_payloads_are_the_compact_json_of_their_values() -> None:
    devices = DeviceSet(sensors=1, smoke=1)
    for index in range(devices.count):
        for seq in (0, 1, 12345):
            body = payload(devices, index, seq, 1_700_000_000_123)
            assert body == json.dumps(json.loads(body), separators=(",", ":")).encode()


@pytest.mark.integration
def test_the_generator_speaks_mqtt_a_broker_understands(mosquitto: Mosquitto) -> None:
    devices = DeviceSet(sensors=3)
    plan = LoadPlan(mosquitto.port, devices, rate=2000.0, seconds=0.5)
    got: list[tuple[str, bytes]] = []
    subscriber = paho.Client(CallbackAPIVersion.VERSION2, client_id="harness-sub")
    subscriber.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload)))
    subscriber.connect("127.0.0.1", mosquitto.port)
    subscriber.subscribe(f"{BASE_TOPIC}/#")
    subscriber.loop_start()
    try:
        time.sleep(0.3)
        sock = connect_raw(plan, "harness-load")
        try:
            sent = send(plan, sock)
        finally:
            sock.close()
        deadline = time.monotonic() + 10
        while len(got) < plan.count and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    assert len(got) == plan.count == len(sent.seq)
    decoded = [decode_z2m(topic, body, devices).messages[0] for topic, body in got]
    assert decoded == list(zip(sent.device.tolist(), sent.seq.tolist(), strict=True))


@pytest.mark.integration
def test_messages_a_broker_drops_for_a_stalled_subscriber_are_counted() -> None:
    broker = Mosquitto([SYS_INTERVAL_CONFIG, "max_queued_messages 10"]).start()
    try:
        assert broker_dropped(broker.port) == 0
        # A subscriber that stops reading: once the socket buffers between them are full (a few
        # MB on loopback), the broker queues 10 messages for it and drops the rest.
        stalled = socket.create_connection(("127.0.0.1", broker.port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        variable = b"\x00\x04MQTT\x04\x02\x00\x3c" + b"\x00\x07stalled"
        stalled.sendall(b"\x10" + bytes([len(variable)]) + variable)
        assert stalled.recv(4) == b"\x20\x02\x00\x00"
        stalled.sendall(b"\x82\x06\x00\x01\x00\x01t\x00")  # SUBSCRIBE "t", QoS 0
        time.sleep(0.3)
        body = b"x" * 1000
        plan = LoadPlan(broker.port, DeviceSet(sensors=1), rate=1.0, seconds=1.0)
        sock = connect_raw(plan, "harness-flood")
        try:
            for _ in range(4):
                sock.sendall(publish_packet(b"\x00\x01t", body) * 5000)
        finally:
            sock.close()
        time.sleep(2.5)  # two `sys_interval`s
        dropped = broker_dropped(broker.port)
        assert dropped is not None
        assert 10_000 < dropped <= 20_000 - 10
        stalled.close()
    finally:
        broker.close()
