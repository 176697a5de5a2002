from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators.services import Mosquitto
from simulators.truth import read_truth

pytestmark = pytest.mark.integration
PROPSIM = [sys.executable, "-c", "import sys; from simulators.cli import main; sys.exit(main())"]
SCENARIOS = Path("simulators/scenarios")


def propsim(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROPSIM, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_check_accepts_the_examples_and_reports_file_and_line(tmp_path: Path) -> None:
    ok = propsim("check", *map(str, sorted(SCENARIOS.glob("*.yaml"))))
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text((SCENARIOS / "fire.yaml").read_text().replace("interval: 1m", "interval: often"))
    result = propsim("check", str(bad))
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr
    assert "interval" in result.stderr


def test_generate_weeks_offline_is_deterministic(tmp_path: Path) -> None:
    outs = []
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        out, truth = tmp_path / f"{name}.jsonl", tmp_path / f"{name}-truth.jsonl"
        result = propsim(
            "generate",
            str(SCENARIOS / "bin_overflow.yaml"),
            "--days",
            "14",
            "--out",
            str(out),
            "--truth",
            str(truth),
            "--seed",
            seed,
        )
        assert result.returncode == 0, result.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]
    lines = [json.loads(line) for line in outs[0].splitlines()]
    assert len(lines) > 4 * 14 * 80  # four bins, every 15 minutes, two weeks
    assert lines[-1]["t"] > 13 * 86_400
    incidents = [r.incident for r in read_truth(tmp_path / "a-truth.jsonl")]
    assert incidents == ["overflow"]  # the overflowing bin's full is that incident, not another


def test_run_a_scenario_onto_a_broker_with_truth(tmp_path: Path, mosquitto: Mosquitto) -> None:
    truth = tmp_path / "truth.jsonl"
    result = propsim(
        "run",
        str(SCENARIOS / "uplink_outage.yaml"),
        "--broker",
        mosquitto.url,
        "--speed",
        "1200",
        "--truth",
        str(truth),
        "--serial-dir",
        str(tmp_path / "tty"),
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["emitted"] > 20
    assert {(r.device, r.incident) for r in read_truth(truth)} >= {
        ("smoke-u1", "fire"),
        ("panel-b1", "fire"),
    }


def test_serial_contact_id_creates_the_link(tmp_path: Path) -> None:
    link = tmp_path / "ttyPANEL"
    proc = subprocess.Popen(
        [
            *PROPSIM,
            "serial",
            "contact-id",
            "--link",
            str(link),
            "--duration",
            "2",
            "--interval",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not link.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert link.is_symlink()
        assert str(link.readlink()).startswith("/dev/pts/")
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert not link.exists()  # unplugged on exit


def test_mqtt_chirpstack_and_fleet(mosquitto: Mosquitto) -> None:
    result = propsim(
        "mqtt",
        "chirpstack",
        "--broker",
        mosquitto.url,
        "--devices",
        "2",
        "--interval",
        "1",
        "--duration",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["emitted"] >= 4
    fleet = propsim(
        "fleet",
        "--gateways",
        "4",
        "--devices",
        "10",
        "--rate",
        "2000",
        "--broker",
        mosquitto.url,
        "--duration",
        "1",
        "--processes",
        "2",
    )
    assert fleet.returncode == 0, fleet.stderr
    sent = json.loads(fleet.stdout)["sent"]
    assert 1000 <= sent <= 2200


def test_run_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    no_broker = propsim("run", str(SCENARIOS / "fire.yaml"), "--serial-dir", str(tmp_path / "tty"))
    assert no_broker.returncode == 2
    assert "give a broker URL" in no_broker.stderr
    assert "Traceback" not in no_broker.stderr
    assert not (tmp_path / "tty").exists()  # refused before it made any pty
    refused = propsim("mqtt", "chirpstack", "--broker", "mqtt://127.0.0.1:9", "--duration", "1")
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
