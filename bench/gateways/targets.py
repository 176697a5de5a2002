"""The gateways under test, each started as its own process on loopback brokers.

- `StewardTarget`: `edge-agent run --config FILE` with a generated config: the Zigbee2MQTT source on
  the local broker, one binding per benchmark device (generic Zigbee2MQTT codec), a smoke rule, the
  SQLite outbox and the uplink to the uplink broker with the shipped batching defaults.
- `ThingsBoardTarget`: ThingsBoard IoT Gateway from its own venv (`bench/.tb-venv`, created with pip
  when missing), its MQTT connector on the local broker and its sqlite storage, connected to the
  uplink broker as if it were ThingsBoard's MQTT endpoint (`v1/gateway/telemetry`).
- `BrokerOnlyTarget`: no gateway; publisher and subscriber meet on one broker: the ceiling.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.gateways.payloads import BASE_TOPIC, DeviceSet

REPO: Final = Path(__file__).resolve().parents[2]
TB_VENV: Final = REPO / "bench" / ".tb-venv"
TB_PACKAGE: Final = "thingsboard-gateway"
STEWARD_GATEWAY_ID: Final = "gw-bench"
TB_TOKEN: Final = "bench-gateway-token"  # noqa: S105 - loopback broker, no auth

Decoder = Literal["steward", "thingsboard", "z2m"]


class Target(Protocol):
    """A gateway (or none) between the local broker and the uplink broker."""

    name: str
    decoder: Decoder
    uplink_topic: str
    """What the receiver subscribes to on the uplink broker."""
    same_broker: bool
    """True when there is no gateway: the load goes straight to the uplink broker."""

    def start(self, local_port: int, uplink_port: int, workdir: Path, devices: DeviceSet) -> None:
        """Start the gateway process (returns before it is ready; the caller probes)."""
        ...

    def pid(self) -> int | None:
        """The gateway's process id, None without a process."""
        ...

    def stop(self) -> None:
        """Stop the gateway (SIGTERM, then SIGKILL after a grace period)."""
        ...


def _stop(proc: subprocess.Popen[bytes] | None, grace_s: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class BrokerOnlyTarget:
    """Publisher → broker → subscriber, no gateway."""

    name: str = "broker only"
    decoder: Decoder = "z2m"
    uplink_topic: str = f"{BASE_TOPIC}/#"
    same_broker: bool = True

    def start(self, local_port: int, uplink_port: int, workdir: Path, devices: DeviceSet) -> None:
        """Nothing to start."""

    def pid(self) -> int | None:
        """No process."""
        return None

    def stop(self) -> None:
        """Nothing to stop."""


SMOKE_RULES: Final = """\
rules:
  - id: smoke-detected
    description: Any smoke detector sees smoke.
    match: {metric: smoke, kinds: [smoke]}
    equals: true
    severity: critical
"""


def steward_config(local_port: int, uplink_port: int, state_dir: Path, devices: DeviceSet) -> str:
    """The edge-agent YAML for a benchmark run (plain text, validated by the agent itself)."""
    lines = [
        "gateway:",
        f"  id: {STEWARD_GATEWAY_ID}",
        f"state_dir: {state_dir}",
        "sources:",
        "  mqtt:",
        "    host: 127.0.0.1",
        f"    port: {local_port}",
        "    client_id: steward-bench-source",
        f"    zigbee2mqtt: {{base_topic: {BASE_TOPIC}}}",
        "devices:",
    ]
    for index in range(devices.count):
        kind = "smoke" if devices.is_smoke(index) else "other"
        lines += [
            f"  - id: {devices.device_id(index)}",
            "    codec: zigbee2mqtt.generic.exposes",
            f"    kind: {kind}",
            f"    friendly_name: {devices.friendly_name(index)}",
        ]
    lines += [
        "rules: [bench.rules.yaml]",
        "uplink:",
        "  host: 127.0.0.1",
        f"  port: {uplink_port}",
        "  client_id: steward-bench-uplink",
        "  tls: false",
        "outbox:",
        "  path: outbox.sqlite3",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class StewardTarget:
    """Steward's edge agent as a subprocess of the project's venv."""

    name: str = "steward"
    decoder: Decoder = "steward"
    uplink_topic: str = f"steward/v1/{STEWARD_GATEWAY_ID}/up"
    same_broker: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, local_port: int, uplink_port: int, workdir: Path, devices: DeviceSet) -> None:
        """Write the config and rules into `workdir` and start `edge-agent run`."""
        state = workdir / "state"
        state.mkdir(parents=True, exist_ok=True)
        config = workdir / "edge.yaml"
        config.write_text(steward_config(local_port, uplink_port, state, devices))
        (workdir / "bench.rules.yaml").write_text(SMOKE_RULES)
        with (workdir / "agent.log").open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own program and arguments
                [
                    sys.executable,
                    "-m",
                    "edge_agent.cli",
                    "run",
                    "--config",
                    str(config),
                    "--log-level",
                    "WARNING",
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
            )

    def pid(self) -> int | None:
        """The agent's pid."""
        return None if self.proc is None else self.proc.pid

    def stop(self) -> None:
        """SIGTERM: the agent drains and exits."""
        _stop(self.proc)
        self.proc = None


def tb_python() -> Path:
    """The ThingsBoard venv's interpreter, creating the venv with pip when it is missing."""
    python = TB_VENV / "bin" / "python"
    marker = TB_VENV / ".installed"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(TB_VENV)], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603 - pip of our own venv, fixed package name
            [str(python), "-m", "pip", "install", "--quiet", TB_PACKAGE], check=True
        )
        marker.write_text(TB_PACKAGE + "\n")
    return python


def tb_package_dir(python: Path) -> Path:
    """Where the thingsboard_gateway package is installed in the venv."""
    out = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [
            str(python),
            "-c",
            "import thingsboard_gateway, os; print(os.path.dirname(thingsboard_gateway.__file__))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def tb_gateway_config(uplink_port: int, data_dir: Path) -> dict[str, object]:
    """tb_gateway.json: the uplink broker as ThingsBoard, sqlite storage, the MQTT connector."""
    return {
        "thingsboard": {
            "host": "127.0.0.1",
            "port": uplink_port,
            "remoteShell": False,
            "remoteConfiguration": False,
            "latencyDebugMode": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False},
            "maxPayloadSizeBytes": 8196,
            "minPackSendDelayMS": 50,
            "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 60,
            "handleDeviceRenaming": False,
            "security": {"type": "accessToken", "accessToken": TB_TOKEN},
            "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
        },
        "storage": {
            "type": "sqlite",
            "data_file_path": f"{data_dir}/",
            "messages_ttl_check_in_hours": 1,
            "messages_ttl_in_days": 7,
        },
        "grpc": {"enabled": False},
        "connectors": [{"type": "mqtt", "name": "Zigbee2MQTT", "configuration": "mqtt.json"}],
    }


def tb_mqtt_connector_config(local_port: int) -> dict[str, object]:
    """mqtt.json: Zigbee2MQTT state topics, device name from the topic, `seq` as a time series."""
    return {
        "broker": {
            "host": "127.0.0.1",
            "port": local_port,
            "clientId": "tb-gateway-bench",
            "version": 5,
            "maxMessageNumberPerWorker": 10,
            "maxNumberOfWorkers": 100,
            "cleanSession": False,
            "cleanStart": False,
            "sessionExpiryInterval": 3600,
            "security": {"type": "anonymous"},
        },
        "mapping": [
            {
                "topicFilter": f"{BASE_TOPIC}/+",
                "subscriptionQos": 1,
                "converter": {
                    "type": "json",
                    "deviceInfo": {
                        "deviceNameExpressionSource": "topic",
                        "deviceNameExpression": f"(?<={BASE_TOPIC}/)(.*)",
                        "deviceProfileExpressionSource": "constant",
                        "deviceProfileExpression": "default",
                    },
                    "sendDataOnlyOnChange": False,
                    "timeout": 60000,
                    "attributes": [],
                    "timeseries": [
                        {"type": "integer", "key": "seq", "value": "${seq}"},
                        {"type": "double", "key": "illuminance", "value": "${illuminance}"},
                    ],
                },
            }
        ],
        "requestsMapping": {},
    }


TB_SESSION_LIMITS: Final = {
    "rateLimits": {},
    "gatewayRateLimits": {},
    "maxInflightMessages": 100,
    "maxPayloadSize": 65536,
}
"""The answer to the gateway's `getSessionLimits` RPC: no rate limits (as on a self-hosted server
with rate limits off, the most favourable setting for the gateway)."""


class SessionLimitsResponder:
    """Answers `getSessionLimits` on the uplink broker, as ThingsBoard's MQTT transport does.

    ThingsBoard IoT Gateway sends nothing until its session limits are known; a plain broker never
    answers the RPC, so the benchmark plays that one part of the server.
    """

    def __init__(self, port: int) -> None:
        """Connect to the uplink broker and answer until `close()`."""
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-tb-server")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, _r: object, _p: object
    ) -> None:
        client.subscribe("v1/devices/me/rpc/request/+", qos=1)

    def _on_message(self, client: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        try:
            method = json.loads(message.payload).get("method")
        except (ValueError, AttributeError):
            return
        if method == "getSessionLimits":
            request_id = message.topic.rsplit("/", 1)[-1]
            reply = json.dumps(TB_SESSION_LIMITS)
            client.publish(f"v1/devices/me/rpc/response/{request_id}", reply, qos=1)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class ThingsBoardTarget:
    """ThingsBoard IoT Gateway with its MQTT connector and sqlite storage."""

    name: str = "thingsboard"
    decoder: Decoder = "thingsboard"
    uplink_topic: str = "v1/gateway/telemetry"
    same_broker: bool = False
    log_level: str = "ERROR"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    responder: SessionLimitsResponder | None = field(default=None, repr=False)

    def start(self, local_port: int, uplink_port: int, workdir: Path, devices: DeviceSet) -> None:
        """Generate its config directory in `workdir` and start the gateway."""
        del devices  # the connector names devices after their topic
        python = tb_python()
        config_dir = workdir / "config"
        data_dir = workdir / "data"
        for path in (config_dir, data_dir, workdir / "logs"):
            path.mkdir(parents=True, exist_ok=True)
        write = json.dumps
        (config_dir / "tb_gateway.json").write_text(write(tb_gateway_config(uplink_port, data_dir)))
        (config_dir / "mqtt.json").write_text(write(tb_mqtt_connector_config(local_port)))
        logs = json.loads((tb_package_dir(python) / "config" / "logs.json").read_text())
        for logger in logs["loggers"].values():
            logger["level"] = self.log_level
        (config_dir / "logs.json").write_text(write(logs))
        self.responder = SessionLimitsResponder(uplink_port)
        env = {**os.environ, "TB_GW_CONFIG_DIR": str(config_dir) + "/"}
        with (workdir / "gateway.out").open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - the gateway's own entry point
                [str(python), "-c", "from thingsboard_gateway.tb_gateway import main; main()"],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                env=env,
            )

    def pid(self) -> int | None:
        """The gateway's pid."""
        return None if self.proc is None else self.proc.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""
        _stop(self.proc, grace_s=15.0)
        self.proc = None
        if self.responder is not None:
            self.responder.close()
            self.responder = None


def all_targets() -> list[Target]:
    """The three targets in table order."""
    return [BrokerOnlyTarget(), StewardTarget(), ThingsBoardTarget()]


def remove_tree(path: Path) -> None:
    """Remove a run's working directory."""
    shutil.rmtree(path, ignore_errors=True)
