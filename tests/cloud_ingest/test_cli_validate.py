from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud_ingest.cli import main
from core.envelope_json import dumps
from core.metrics import Metric
from core.types import (
    ENVELOPE_LIMITS,
    AlarmEvent,
    AlarmState,
    Envelope,
    Priority,
    Reading,
    Severity,
    WorkOrderHint,
)

T0 = datetime(2026, 11, 22, tzinfo=UTC)


def _envelope_file(tmp_path: Path) -> Path:
    envelope = Envelope(
        "gw-1", uuid.uuid4(), T0, (Reading("bin-1", Metric.FILL_PCT, 42.0, T0, codec_id="x.y.z"),)
    )
    path = tmp_path / "good.json"
    path.write_bytes(dumps(envelope))
    return path


def test_valid_and_invalid_envelopes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _envelope_file(tmp_path)
    bad = tmp_path / "bad.json"
    doc = json.loads(good.read_text())
    doc["readings"][0]["ts"] = "yesterday"
    bad.write_text(json.dumps(doc))
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad), str(tmp_path / "missing.json")]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["ok"] is True
    assert lines[0]["readings"] == 1
    assert lines[2]["ok"] is True
    assert lines[3] == {
        "source": str(bad),
        "ok": False,
        "error": {
            "field": "readings[0].ts",
            "reason": "not an ISO 8601 time: 'yesterday'",
            "code": "schema",
        },
    }
    assert lines[1]["ok"] is False
    assert lines[1]["source"].endswith("missing.json")
    assert lines[1]["error"]["code"] == "unreadable"


def test_console_script_reads_stdin(tmp_path: Path) -> None:
    good = _envelope_file(tmp_path).read_text()
    script = Path(sys.executable).parent / "cloud-ingest"
    result = subprocess.run(
        [script, "validate", "-"],
        input=good + "\n{}\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["ok"] is True
    assert second["error"]["field"] == "schema_version"


def _alarm_envelope_file(tmp_path: Path) -> Path:
    event = AlarmEvent(
        "c1/smoke-01/smoke_alarm",
        1,
        AlarmState.FIRING,
        Severity.CRITICAL,
        T0,
        T0,
        "smoke_alarm",
        "smoke-01",
        description="A smoke detector reports smoke.",
        work_order=WorkOrderHint("fire", Priority.URGENT),
    )
    path = tmp_path / "alarm.json"
    path.write_bytes(dumps(Envelope("gw-1", uuid.uuid4(), T0, alarm_events=(event,))))
    return path


@pytest.mark.parametrize(
    ("key", "value", "field", "reason"),
    [
        (
            "work_order",
            {"category": "fire", "priority": "P1"},
            "alarm_events[0].work_order.priority",
            "unknown priority 'P1'; expected one of low, normal, high, urgent",
        ),
        (
            "severity",
            "P1",
            "alarm_events[0].severity",
            "unknown severity 'P1'; expected one of info, warning, critical",
        ),
    ],
)
def test_unknown_priority_or_severity_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    key: str,
    value: object,
    field: str,
    reason: str,
) -> None:
    good = _alarm_envelope_file(tmp_path)
    assert main(["validate", str(good)]) == 0
    doc = json.loads(good.read_text())
    doc["alarm_events"][0][key] = value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["validate", str(bad)]) == 1
    ok_line, bad_line = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert ok_line["ok"] is True
    assert ok_line["alarm_events"] == 1
    assert bad_line == {
        "source": str(bad),
        "ok": False,
        "error": {"field": field, "reason": reason, "code": "schema"},
    }


def test_no_command_is_a_usage_error() -> None:
    assert main([]) == 2


def _hostile_files(tmp_path: Path) -> dict[str, Path]:
    good = _envelope_file(tmp_path).read_bytes()
    cases = {
        "non_finite": good.replace(b'"value":42.0', b'"value":NaN'),
        "too_deep": b"[" * 5_000 + b"]" * 5_000,
        "too_large": good.replace(b'"gw-1"', b'"' + b"g" * (ENVELOPE_LIMITS.max_bytes) + b'"'),
        "bad_json": b"\xff\xfe" + good,
        "unsupported_version": good.replace(b'"schema_version":1', b'"schema_version":2'),
    }
    paths = {}
    for code, data in cases.items():
        paths[code] = tmp_path / f"{code}.json"
        paths[code].write_bytes(data)
    return paths


def test_hostile_files_are_refused_with_a_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _hostile_files(tmp_path)
    assert main(["validate", *map(str, paths.values())]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["error"]["code"] for line in lines] == list(paths)
    assert lines[0]["error"]["field"] == "readings[0].value"


def test_stdin_with_invalid_utf8_is_reported_not_fatal(tmp_path: Path) -> None:
    good = _envelope_file(tmp_path).read_bytes()
    script = Path(sys.executable).parent / "cloud-ingest"
    result = subprocess.run(
        [script, "validate", "-"],
        input=b"\xc3\x28" + good + b"\n" + good + b"\n",
        capture_output=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["error"]["code"] == "bad_json"
    assert second["ok"] is True
