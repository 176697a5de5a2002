"""What the command-line tools print when things go wrong or are cut short: one line, no traceback.

The console scripts of this environment (`edge-agent`, `propsim`, `cloud-ingest`) and
`scripts/demo.py` run as a user runs them, in subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from simulators.services import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIRE = ROOT / "simulators" / "scenarios" / "fire.yaml"
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143


def _run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


def _one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _closed_stdout(argv: Sequence[str], stdin: str = "") -> tuple[int, str]:
    """Run with a stdout pipe whose reader has gone before anything is written (`| head -0`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]],
            stdout=write_end,
            stderr=subprocess.PIPE,
            input=stdin,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
    finally:
        os.close(write_end)
    return result.returncode, result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ("edge-agent", "codecs"),
        ("edge-agent", "codecs", "--json"),
        ("edge-agent", "doctor", "--config", "/nonexistent/edge.yaml", "--timeout", "0.5"),
        ("edge-agent", "rules", "test", "rules/packs/tests/bin.yaml"),
        ("propsim", "scenarios"),
        ("propsim", "check", "simulators/scenarios/fire.yaml"),
        ("cloud-ingest", "validate", "-"),
    ],
    ids=" ".join,
)
def test_a_reader_that_went_away_ends_the_command_quietly(argv: Sequence[str]) -> None:
    code, stderr = _closed_stdout(argv, stdin='{"not": "an envelope"}\n')

    assert code == EXIT_BROKEN_PIPE, stderr
    assert stderr == ""


def test_a_broker_that_is_not_there_is_one_line_naming_the_way_out() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"

    result = _run("propsim", "run", str(FIRE), "--broker", url, "--speed", "600")

    assert result.returncode == 1
    line = _one_clear_line(result)
    assert f"no MQTT broker answers at {url}" in line
    assert "--broker auto" in line


def test_a_scenario_with_mqtt_devices_and_no_broker_says_how_to_get_one() -> None:
    result = _run("propsim", "run", str(FIRE), "--speed", "600")

    assert result.returncode == 2
    assert "--broker auto" in _one_clear_line(result)


@pytest.mark.parametrize(
    ("kind", "codec", "says"),
    [
        ("zigbee2mqtt", "zigbee2mqtt.foo", "no such codec"),
        ("chirpstack", "lorawan.milesight.em310", "no such codec"),
        ("chirpstack", "serial.gbt26875.3", "not a lorawan codec"),
    ],
)
def test_a_codec_typo_is_one_line_before_any_work(kind: str, codec: str, says: str) -> None:
    unreachable = f"mqtt://127.0.0.1:{free_port()}"

    result = _run("propsim", "mqtt", kind, "--broker", unreachable, "--codec", codec, timeout=20)

    assert result.returncode == 2
    line = _one_clear_line(result)
    assert line.startswith(f"propsim: --codec {codec}: {says}")


@pytest.mark.parametrize(
    ("option", "says"),
    [(("--devices", "0"), "devices: "), (("--interval", "0"), "interval must be positive")],
)
def test_options_that_make_no_valid_scenario_are_one_line(
    option: tuple[str, str], says: str
) -> None:
    result = _run("propsim", "mqtt", "zigbee2mqtt", "--broker", "mqtt://127.0.0.1:1", *option)

    assert result.returncode == 2
    assert says in _one_clear_line(result)


@pytest.mark.parametrize(
    "argv",
    [
        ("propsim", "fleet", "--broker", "mqtt://no-such-host.invalid:1883", "--duration", "1"),
        ("propsim", "run", "/nonexistent/scenario.yaml"),
        ("propsim", "clock", str(FIRE), "--origin", "nan"),
        ("propsim", "serial", "modbus", "--link", "/nonexistent/tty", "--slave-id", "999"),
        ("edge-agent", "decode", "--codec", "no.such.codec", "00"),
        ("edge-agent", "decode", "--codec", "lorawan.milesight.em310_udl", "zz"),
        ("edge-agent", "check", "--config", "/nonexistent/edge.yaml"),
        ("cloud-ingest", "validate", "/nonexistent/envelope.json"),
    ],
    ids=" ".join,
)
def test_user_mistakes_never_print_a_traceback(argv: Sequence[str]) -> None:
    result = _run(*argv)

    assert result.returncode in {1, 2}, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.integration
def test_the_truth_count_is_the_incidents_played_without_a_truth_file(tmp_path: Path) -> None:
    result = _run(
        "propsim", "serial", "contact-id", "--link", str(tmp_path / "tty"), "--interval", "1",
        "--alarm-at", "1", "--alarm-for", "1", "--duration", "3", "--speed", "10",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["truth"] == 1


@pytest.mark.integration
def test_broker_auto_starts_a_mosquitto_for_the_run_and_stops_it() -> None:
    result = _run(
        "propsim", "mqtt", "zigbee2mqtt", "--broker", "auto", "--devices", "1",
        "--interval", "1", "--duration", "3", "--speed", "10", "--alarm-at", "1",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    started = re.search(r"started Mosquitto at mqtt://127\.0\.0\.1:(\d+)", result.stderr)
    assert started, result.stderr
    stats = json.loads(result.stdout)
    assert stats["emitted"] > 0
    assert stats["lost"] == 0
    assert stats["truth"] == 1
    assert _nothing_listens(int(started[1]))


@pytest.mark.integration
def test_sigterm_stops_a_run_and_removes_its_ptys(tmp_path: Path) -> None:
    link = tmp_path / "tty"
    proc = subprocess.Popen(
        [BIN / "propsim", "serial", "contact-id", "--link", str(link), "--duration", "3600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not link.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert link.exists()

    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)

    assert proc.returncode == EXIT_TERMINATED
    assert "Traceback" not in stderr
    assert not link.exists()


def _nothing_listens(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


def _demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--scenario", str(FIRE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.integration
def test_ctrl_c_stops_the_demo_and_everything_it_started_at_once() -> None:
    demo = _demo("--wall", "60")
    assert demo.stdout is not None
    seen: list[str] = []
    config = ""
    for line in demo.stdout:
        seen.append(line)
        if found := re.search(r"config (\S+edge\.yaml)", line):
            config = found[1]
        if "alarm events at the uplink" in line:  # playing: brokers, agent and devices all up
            break
    assert config, "".join(seen)
    assert _processes_mentioning(config), "the agent should be running"
    ports = [int(p) for p in re.findall(r"broker mqtt://127\.0\.0\.1:(\d+)", "".join(seen))]

    interrupted = time.monotonic()
    demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=30)
    stopped_after = time.monotonic() - interrupted

    assert demo.returncode == EXIT_INTERRUPTED, rest
    assert "Traceback" not in rest
    assert stopped_after < 10, rest
    assert _processes_mentioning(config) == []
    assert ports
    assert all(_nothing_listens(port) for port in ports)


@pytest.mark.integration
def test_a_demo_run_stops_the_agent_before_its_devices_and_prints_a_score_table() -> None:
    demo = _demo("--wall", "6")
    output, _ = demo.communicate(timeout=180)

    assert demo.returncode == 0, output
    after_the_end = output.split("the scenario is over", 1)[1]
    assert " lost /" not in output, output  # no serial link seen to vanish
    late_events = re.compile(r"^\s+\S+ \d\d:\d\d:\d\d (FAULT|NO_DATA) ", re.MULTILINE)
    assert not late_events.search(after_the_end), output
    header = re.compile(
        r"^\s+incident\s+device\s+at\s+alarm shown\s+after\s+allowed\s+result$", re.MULTILINE
    )
    assert header.search(output), output
    assert "{'detected'" not in output
