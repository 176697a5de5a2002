"""The agent as a subprocess, and collecting what reaches a broker, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aiomqtt
import pytest

from simulators.services import Mosquitto


async def collect(
    broker: Mosquitto, topic: str, client_id: str, sink: Callable[[str, bytes], None]
) -> None:
    while True:
        try:
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, identifier=client_id, clean_session=False, keepalive=5
            ) as client:
                await client.subscribe(topic, qos=1)
                async for message in client.messages:
                    payload = message.payload
                    sink(str(message.topic), payload if isinstance(payload, bytes) else b"")
        except aiomqtt.MqttError:
            await asyncio.sleep(0.3)


class AgentProcess:
    def __init__(self, config: Path, log: Path, notify: Path, *, args: Sequence[str] = ()) -> None:
        self.config = config
        self.log = log
        self.notify = notify
        self.args = tuple(args)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify), WATCHDOG_USEC="1000000")
        env.pop("WATCHDOG_PID", None)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "edge_agent.cli", "run", "--config", str(self.config)),
                    *("--log-level", os.environ.get("STEWARD_E2E_LOG_LEVEL", "INFO")),
                    *self.args,
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    def kill(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, limit: float) -> int:
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, limit)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
async def notify_socket(tmp_path: Path) -> AsyncIterator[tuple[Path, list[str]]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)  # noqa: FBT003
    messages: list[str] = []
    loop = asyncio.get_running_loop()
    loop.add_reader(sock.fileno(), lambda: messages.append(sock.recv(4096).decode()))
    yield path, messages
    loop.remove_reader(sock.fileno())
    sock.close()
