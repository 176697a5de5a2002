"""A shipped scenario played through the real edge agent onto a broker, as `scripts/demo.py` plays it.

`propsim run` plays the scenario's devices (ChirpStack and Zigbee2MQTT on the broker, SIA DC-09
to the agent's receiver, serial devices on ptys) on a sped-up clock, and `edge-agent run`, bound to
every device as an installer would (`simulators.install.gateway_config`, the default rule pack),
runs on the same simulated clock (`--clock`) and publishes its envelopes to the same broker's
uplink topic, where a cloud ingest takes them.

The cloud runs on the wall clock and accepts times from a bounded past up to a little future, so
the scenario is `retimed`: its start moves to where its simulated end lies `lag` before the moment
the sped-up play ends. Every time the agent reports is then recent and in the past.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import yaml
from agent_process import AgentProcess

from core.clock import clock_spec
from simulators.install import gateway_config
from simulators.runner import RunOptions
from simulators.scenario import Scenario, load_scenario
from simulators.services import Mosquitto, free_port

BIN: Final = Path(sys.executable).parent
START_MARGIN_S: Final = 8.0
"""Real seconds between launching the processes and the scenario's t = 0 (they start meanwhile,
also on a machine busy with other tests)."""
SETTLE_S: Final = 3.0
"""Real seconds after the scenario's end for the last batches to reach the uplink."""
TAIL_S: Final = 15.0
"""Real seconds the simulated devices play on after the scenario's end (the agent stops first)."""
STOP_S: Final = 30.0
"""How long a stopping process may take (the agent drains its outbox) before it is killed."""
DEFAULT_LAG: Final = timedelta(hours=6)
"""How far before the wall clock a retimed scenario's simulated end lies."""
_START_LINE: Final = re.compile(r"^start:.*$", re.MULTILINE)


def retime(source: Path, start: datetime, target: Path) -> Scenario:
    """Write `source` with its `start` replaced by `start` to `target`; the scenario read back."""
    text = source.read_text(encoding="utf-8")
    retimed, count = _START_LINE.subn(f"start: {start.isoformat()}", text)
    if count == 0:
        retimed = f"start: {start.isoformat()}\n{text}"
    target.write_text(retimed, encoding="utf-8")
    scenario = load_scenario(target)
    assert scenario.start == start, (scenario.start, start)
    return scenario


@dataclass
class ScenarioPlay:
    """One play of a scenario: `propsim run` and `edge-agent run` on one simulated clock."""

    source: Path
    workdir: Path
    broker: Mosquitto
    speed: float
    lag: timedelta = DEFAULT_LAG
    scenario: Scenario = field(init=False)
    origin: float = field(init=False)
    agent: AgentProcess | None = field(init=False, default=None)
    sim: subprocess.Popen[bytes] | None = field(init=False, default=None)

    def start(self) -> ScenarioPlay:
        """Retime the scenario, bind its devices, start the simulator, then the agent."""
        self.origin = time.time() + START_MARGIN_S
        played = load_scenario(self.source)
        zone = played.start.tzinfo
        end = datetime.fromtimestamp(self.origin + played.duration / self.speed, zone)
        start = end - self.lag - timedelta(seconds=played.duration)
        self.scenario = retime(self.source, start, self.workdir / self.source.name)
        ip_devices = any(device.transport == "ip" for device in self.scenario.devices)
        dc09 = ("127.0.0.1", free_port()) if ip_devices else None
        doc = gateway_config(
            self.scenario,
            state_dir=self.workdir / "state",
            local=(self.broker.host, self.broker.port),
            uplink=(self.broker.host, self.broker.port),
            dc09=dc09,
        )
        sources: dict[str, list[dict[str, str]]] = doc["sources"]  # type: ignore[assignment]
        for line in [*sources["serial"], *sources["modbus"]]:  # links in this run's own directory
            port = Path(line["port"])
            if port.parent == RunOptions().serial_dir:
                line["port"] = str(self.workdir / "serial" / port.name)
        config = self.workdir / "edge.yaml"
        config.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        tail = self.scenario.duration + TAIL_S * self.speed
        with (self.workdir / "propsim.log").open("ab") as log:
            self.sim = subprocess.Popen(
                [
                    *(str(BIN / "propsim"), "run", str(self.workdir / self.source.name)),
                    *("--broker", self.broker.url, "--speed", str(self.speed)),
                    *("--duration", str(tail), "--origin", str(self.origin)),
                    *("--serial-dir", str(self.workdir / "serial")),
                    *(("--receiver", f"{dc09[0]}:{dc09[1]}") if dc09 else ()),
                    *("--truth", str(self.workdir / "truth.jsonl")),
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        clock = clock_spec(self.scenario.start, self.origin, self.speed)
        self.agent = AgentProcess(
            config,
            self.workdir / "agent.log",
            self.workdir / "no-notify.sock",
            args=("--clock", clock),
        )
        self.agent.start()
        return self

    def agent_log(self) -> str:
        """The end of what the agent logged."""
        log = self.workdir / "agent.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    @property
    def end(self) -> float:
        """The wall time (Unix seconds) at which the scenario's simulated end is played."""
        return self.origin + self.scenario.duration / self.speed

    def play_out(self) -> None:
        """Wait until the scenario is over and its last batches had time to reach the uplink."""
        while (left := self.end + SETTLE_S - time.time()) > 0:
            assert self.agent is not None
            assert self.agent.alive(), self.agent_log()
            assert self.sim is not None
            assert self.sim.poll() is None, (self.workdir / "propsim.log").read_text()[-3000:]
            time.sleep(min(left, 0.5))

    def stop(self) -> int:
        """Stop the agent (it drains its outbox), then the simulator; the agent's exit status."""
        status = _stop(None if self.agent is None else self.agent.proc)
        _stop(self.sim)
        return status


def _stop(proc: subprocess.Popen[bytes] | None) -> int:
    if proc is None:
        return 0
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
