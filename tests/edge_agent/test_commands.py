import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.commands.doctor import Status, diagnose
from edge_agent.sd_notify import SdNotifier

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "edge.example.yaml"

BAD_CONFIG = """\
gateway:
  id: gw-1
  timezone: Nowhere/Land
devices:
  - id: d1
    codec: serial.gbt26875.3
    kind: spaceship
rules: [rules.yaml, missing.yaml]
"""

GOOD_CONFIG = """\
gateway: {{id: gw-1}}
state_dir: {state}
sources:
  mqtt: {{host: 127.0.0.1, port: {port}}}
  serial:
    - {{id: panel, port: {tty}, codec: serial.gbt26875.3}}
uplink: {{host: 127.0.0.1, port: {port}}}
rules: [rules.yaml]
devices: [{{id: panel, codec: serial.gbt26875.3, kind: fire_panel}}]
"""

BAD_RULES = """\
rules:
  - id: hot
    match: {metric: temperature_c}
    above: 50
  - id: cold
    match: {metric: temperature_c}
    below: -10
    severity: dire
  - id: nonsense
    match: {metric: no_such}
    above: 1
"""


def test_check_accepts_the_shipped_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(EXAMPLE)]) == 0
    assert "ok (gateway gw-xinhua-g03" in capsys.readouterr().out


def test_check_prints_every_config_error_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(BAD_CONFIG)
    assert main(["check", "--config", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith(f"{path}:3: gateway.timezone:") for line in err), err
    assert any(line.startswith(f"{path}:7: devices.0.kind:") for line in err), err
    assert err[-1] == f"{path}: 2 error(s)"


def test_check_validates_the_rule_files_the_config_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(BAD_CONFIG.replace("Nowhere/Land", "UTC").replace("spaceship", "fire_panel"))
    (tmp_path / "rules.yaml").write_text(BAD_RULES)
    assert main(["check", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    rules = tmp_path / "rules.yaml"
    assert f"{tmp_path / 'missing.yaml'}: cannot read rule file" in err
    assert f"{rules}:8: rules.1.severity:" in err
    assert f"{rules}:10: rules.2.match.metric:" in err
    assert err.splitlines()[-1] == f"{path}: 3 error(s)"


def test_run_refuses_to_start_on_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(BAD_CONFIG)
    assert main(["run", "--config", str(path)]) == 2
    assert "refusing to start" in capsys.readouterr().err


def test_doctor_reports_one_line_per_check_and_fails_on_a_missing_port(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        (tmp_path / "rules.yaml").write_text("rules: []\n")
        path = tmp_path / "edge.yaml"
        tty = tmp_path / "ttyUSB-gone"
        path.write_text(GOOD_CONFIG.format(state=tmp_path / "state", port=port, tty=tty))
        checks = {c.name: c for c in diagnose(path, timeout=1.0)}
        assert checks["config"].status is Status.OK
        assert checks["serial panel"].status is Status.FAIL
        assert checks["local broker"].status is Status.OK
        assert checks["uplink broker"].status is Status.OK
        assert checks["disk"].status in {Status.OK, Status.WARN}
        assert checks["clock"].status in {Status.OK, Status.WARN, Status.UNKNOWN}
        tty.touch()
        assert main(["doctor", "--config", str(path)]) == 0
    assert main(["doctor", "--config", str(path), "--timeout", "0.5"]) == 1  # brokers now gone


def test_sd_notify_speaks_the_datagram_protocol(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        notifier = SdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "3000000"})
        assert notifier.watchdog_interval_s == 1.5
        assert notifier.ready("3 sources")
        assert notifier.watchdog()
        assert notifier.stopping()
        got = [sock.recv(256).decode() for _ in range(3)]
    assert got == ["READY=1\nSTATUS=3 sources", "WATCHDOG=1", "STOPPING=1"]
    silent = SdNotifier({})
    assert not silent.enabled
    assert not silent.ready()
    assert silent.watchdog_interval_s is None


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_passes_verify(tmp_path: Path) -> None:
    unit = (REPO / "deploy" / "edge-agent.service").read_text()
    executable = REPO / ".venv" / "bin" / "edge-agent"
    local = tmp_path / "edge-agent.service"
    local.write_text(unit.replace("/opt/steward/venv/bin/edge-agent", str(executable)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
    assert "Type=notify" in unit
    assert "WatchdogSec=" in unit
    assert "StateDirectory=steward" in unit
    assert "SupplementaryGroups=dialout" in unit
