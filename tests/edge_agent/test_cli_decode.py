from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.cli import main
from firmware_adapters.chirpstack import UpEventEncoder
from firmware_adapters.registry import CODECS
from firmware_adapters.zigbee2mqtt_exposes import encode_bridge_devices

EDGE_AGENT = Path(sys.executable).with_name("edge-agent")
EM310 = "lorawan.milesight.em310_udl"


def run_script(*args: str, stdin: str = "") -> tuple[int, list[dict[str, object]], str]:
    proc = subprocess.run(
        [str(EDGE_AGENT), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def run_main(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, list[dict[str, object]], str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_console_script_decodes_hex_arguments() -> None:
    code, rows, _ = run_script("decode", "--codec", EM310, "--fport", "85", "01755c03824408040001")
    assert code == 0
    assert rows == [
        {
            "codec": EM310,
            "ok": True,
            "readings": [
                {"metric": "battery_pct", "value": 92, "device": "dev"},
                {"metric": "distance_mm", "value": 2116, "device": "dev"},
                {"metric": "tilt_alarm", "value": True, "device": "dev"},
            ],
            "attributes": {"position": "tilt"},
        }
    ]


def test_console_script_reads_stdin_and_exits_1_when_one_fails() -> None:
    code, rows, _ = run_script("decode", "--codec", EM310, "-", stdin="017564\n\n7701\n")
    assert code == 1
    assert [r["ok"] for r in rows] == [True, False]
    assert rows[1]["error"] == {
        "reason": "unknown_type",
        "detail": "unknown channel 77 01 at byte 0",
    }


def test_console_script_usage_errors_exit_2() -> None:
    code, rows, err = run_script("decode", "--codec", "lorawan.acme.nothing", "00")
    assert (code, rows) == (2, [])
    assert "no codec 'lorawan.acme.nothing'" in err
    code, rows, err = run_script("decode", "--codec", EM310, "017564", "0g")
    assert (code, rows) == (2, [])
    assert "not hex" in err


def test_bad_hex_on_stdin_is_a_usage_error_after_the_good_lines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("017564\nxyz\n"))
    code, rows, err = run_main(capsys, "decode", "--codec", EM310, "-")
    assert code == 2
    assert len(rows) == 1
    assert "not hex: 'xyz'" in err


def test_wrong_fport_is_a_decode_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, rows, _ = run_main(capsys, "decode", "--codec", EM310, "--fport", "2", "017564")
    assert code == 1
    assert rows[0]["error"] == {"reason": "unknown_port", "detail": "fport 2 not in [85]"}


def test_quality_and_warnings_show_when_not_plain(capsys: pytest.CaptureFixture[str]) -> None:
    code, rows, _ = run_main(
        capsys, "decode", "--codec", "lorawan.dragino.ldds75", "0cf600000000fa01"
    )
    assert code == 0
    readings = rows[0]["readings"]
    assert isinstance(readings, list)
    assert {"metric": "distance_mm", "value": 0, "device": "dev", "quality": "suspect"} in readings
    assert rows[0]["warnings"] == ["distance 0: no ultrasonic probe detected"]


def test_chirpstack_events_are_decoded_with_the_given_codec(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    encoder = UpEventEncoder("24e124136b502217")
    events = [
        encoder.encode(
            bytes.fromhex("01755c03824408040001"), 85, datetime(2026, 1, 1, tzinfo=UTC)
        ).decode(),
        "{broken",
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(events) + "\n"))
    code, rows, _ = run_main(capsys, "decode", "--codec", EM310, "--chirpstack", "-")
    assert code == 1
    readings = rows[0]["readings"]
    assert isinstance(readings, list)
    assert {r["metric"] for r in readings} == {
        "battery_pct",
        "distance_mm",
        "tilt_alarm",
        "rssi_dbm",
        "snr_db",
    }
    assert {r["device"] for r in readings} == {"24e124136b502217"}
    assert rows[1]["ok"] is False
    error = rows[1]["error"]
    assert isinstance(error, dict)
    assert error["reason"] == "malformed"


def test_zigbee2mqtt_state_lines_with_model_and_saved_bridge_devices(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    exposes: list[dict[str, object]] = [
        {"type": "binary", "property": "contact", "value_on": False, "value_off": True}
    ]
    devices = tmp_path / "devices.json"
    devices.write_bytes(encode_bridge_devices([("gate", "0x01", "TS0203", "Tuya", exposes)]))
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"contact":false,"linkquality":9}\n'))
    code, rows, _ = run_main(
        capsys,
        "decode",
        "--codec",
        "zigbee2mqtt.generic.exposes",
        "--model",
        "TS0203",
        "--devices",
        str(devices),
        "-",
    )
    assert code == 0
    assert rows[0]["readings"] == [{"metric": "contact_open", "value": True, "device": "dev"}]
    assert rows[0]["attributes"] == {"linkquality": 9, "model": "TS0203"}
    code, _, err = run_main(
        capsys,
        "decode",
        "--codec",
        "zigbee2mqtt.generic.exposes",
        "--model",
        "X",
        "--devices",
        str(devices),
        "{}",
    )
    assert code == 2
    assert "no device of model 'X'" in err


def test_zigbee2mqtt_availability(capsys: pytest.CaptureFixture[str]) -> None:
    code, rows, _ = run_main(
        capsys,
        "decode",
        "--codec",
        "zigbee2mqtt.generic.exposes",
        "--availability",
        "--device",
        "gate",
        "online",
    )
    assert code == 0
    assert rows[0]["readings"] == [{"metric": "online", "value": True, "device": "gate"}]


def test_codecs_lists_every_codec(capsys: pytest.CaptureFixture[str]) -> None:
    code, rows, _ = run_main(capsys, "codecs", "--json")
    assert code == 0
    assert [r["codec"] for r in rows] == sorted(CODECS)
    em310 = next(r for r in rows if r["codec"] == EM310)
    assert (em310["transport"], em310["device_class"]) == ("lorawan", "bin")
    assert main(["codecs"]) == 0
    assert EM310 in capsys.readouterr().out
