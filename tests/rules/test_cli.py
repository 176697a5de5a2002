import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.cli import main

PACKS = Path(__file__).resolve().parents[2] / "rules" / "packs"


def test_check_accepts_the_default_pack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", *map(str, sorted(PACKS.glob("*.yaml")))]) == 0
    assert "OK: 32 rule(s)" in capsys.readouterr().out


def test_check_lists_every_error_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n  - id: a\n    match: {metric: nonsense}\n    above: 1\n  - id: b\n    match: {metric: smoke}\n"
    )
    assert main(["rules", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: rules.0.match.metric" in err
    assert f"{bad}:5: rules.1: " in err
    assert "FAILED: 2 error(s)" in err


def test_test_command_prints_a_readable_diff_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "t.yaml"
    spec.write_text(
        f"""rule_files: [{PACKS / "fire.yaml"}]
start: "2026-03-02T00:00:00Z"
devices:
  sd-1: {{kind: smoke, location: a/b/c/d/e/f/u1}}
tests:
  - name: wrong time on purpose
    input_series:
      - {{device: sd-1, metric: smoke, interval: 10s, values: "false true"}}
    expected_events:
      - {{at: 20s, rule: smoke_alarm, device: sd-1, state: firing}}
"""
    )
    assert main(["rules", "test", str(spec)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {spec}: wrong time on purpose" in out
    assert "- missing:    +20s smoke_alarm sd-1 firing" in out
    assert "+ unexpected: +10s smoke_alarm sd-1 firing severity=critical" in out
    assert "0 passed, 1 failed" in out


def test_test_command_reports_a_broken_test_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "t.yaml"
    spec.write_text("rule_files: []\nstart: yesterday\ntests: []\n")
    assert main(["rules", "test", str(spec)]) == 1
    out = capsys.readouterr().out
    assert f"{spec}:1: rule_files" in out
    assert f"{spec}:2: start" in out


def test_console_script_runs_the_pack_tests() -> None:
    script = Path(sys.executable).parent / "edge-agent"
    files = sorted(str(p) for p in (PACKS / "tests").glob("*.yaml"))
    result = subprocess.run(
        [str(script), "rules", "test", *files],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout
