"""Every shipped scenario, played through the real agent by the demo, raises every incident's alarm.

Each run is `scripts/demo.py --scenario FILE` as a user runs it: two Mosquitto brokers, the devices
bound as an installer would, `edge-agent check --strict`, `edge-agent run` with the default rule
pack, `propsim run`, and a score of the alarms the control room is shown against the ground truth.
Every injected incident must be detected within its `detect_within`, once, and nothing else raised.
Sped-up runs put the agent on the scenario's clock; `realtime.yaml` is also played at its real speed,
with the agent on its system clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from simulators.scenario import load_scenario
from simulators.timeline import generate

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "simulators" / "scenarios").glob("*.yaml"))
DEMO = ROOT / "scripts" / "demo.py"
WALL_S = 12.0
"""Real seconds a sped-up scenario takes to play, unless that needs more than `MAX_SPEED`."""
MAX_SPEED = 4000.0
"""At most this fast: a rule tick (20 ms of real time) is then 80 simulated seconds, and a stall of
a tenth of a second on a busy machine less than 7 simulated minutes."""


def _fast(path: Path) -> list[str]:
    speed = min(max(1.0, load_scenario(path).duration / WALL_S), MAX_SPEED)
    return ["--speed", f"{speed:g}"]


REALTIME = ROOT / "simulators" / "scenarios" / "realtime.yaml"
RUNS = [pytest.param(path, _fast(path), id=f"{path.stem}-fast") for path in SCENARIOS]
RUNS.append(pytest.param(REALTIME, ["--speed", "1"], id="realtime-1x"))


def _play(
    scenario: Path, speed: list[str], workdir: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the demo on `scenario`; the completed process and its score file."""
    score_file = workdir / "score.json"
    result = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            "--scenario",
            str(scenario),
            *speed,
            "--score-json",
            str(score_file),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return result, score_file


PARALLEL_RUNS = 3
"""Demos played at once: each spends most of its wall time waiting on the scenario's clock (about
15 % of one core), so three side by side keep their timing and take a third of the time."""

Runs = dict[str, Future[tuple[subprocess.CompletedProcess[str], Path]]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Every run, started with the module, `PARALLEL_RUNS` at a time; the real-speed one first,
    as it spends a minute mostly waiting on the wall clock."""
    ordered = sorted(RUNS, key=lambda p: p.values[1] != ["--speed", "1"])
    with ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
        started: Runs = {}
        for param in ordered:
            scenario, speed = param.values
            assert isinstance(scenario, Path)
            assert isinstance(speed, list)
            workdir = tmp_path_factory.mktemp(str(param.id))
            started[str(param.id)] = pool.submit(_play, scenario, speed, workdir)
        yield started
        for future in started.values():
            future.cancel()


@pytest.mark.parametrize(("scenario", "speed"), RUNS)
def test_every_incident_is_detected_on_time_once_and_nothing_else(
    scenario: Path,
    speed: list[str],
    runs: Runs,
    request: pytest.FixtureRequest,
) -> None:
    result, score_file = runs[request.node.callspec.id].result()
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert score_file.exists(), report
    score = json.loads(score_file.read_text())
    incidents = generate(load_scenario(scenario)).truth
    assert incidents, "a scenario without incidents proves nothing"
    assert {k: score[k] for k in ("late", "missed", "false", "duplicate")} == {
        "late": 0,
        "missed": 0,
        "false": 0,
        "duplicate": 0,
    }, report
    assert score["detected"] == len(incidents), report
    assert score["agent_exit"] == 0, report
    assert score["envelopes_rejected"] == 0, report
    assert result.returncode == 0, report
