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


@pytest.fixture(scope="module")
def realtime_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Future[tuple[subprocess.CompletedProcess[str], Path]]]:
    """The real-speed run, started with the module: it spends a minute mostly waiting on the
    wall clock, so it plays beside the sped-up runs instead of after them."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(_play, REALTIME, ["--speed", "1"], tmp_path_factory.mktemp("realtime"))


@pytest.mark.parametrize(("scenario", "speed"), RUNS)
def test_every_incident_is_detected_on_time_once_and_nothing_else(
    scenario: Path,
    speed: list[str],
    tmp_path: Path,
    realtime_run: Future[tuple[subprocess.CompletedProcess[str], Path]],
) -> None:
    if speed == ["--speed", "1"]:
        result, score_file = realtime_run.result()
    else:
        result, score_file = _play(scenario, speed, tmp_path)
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
