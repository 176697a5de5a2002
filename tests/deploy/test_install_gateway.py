"""`deploy/install-gateway.sh`: an install, an upgrade that keeps the configuration and the state,
a refused upgrade that leaves the running release alone, and a rollback.

The script runs for real with files only (`--no-systemd --no-apt --no-user`) into a scratch
prefix: it makes a release venv from the project's wheel (built here, offline), installs the
example configuration once, validates it with the new release's own `edge-agent check`, and
switches the `venv` symlink. pip is kept offline (`PIP_NO_INDEX`, `PIP_NO_DEPS`); the release finds
the dependencies through `PYTHONPATH` (the test environment's site-packages).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "install-gateway.sh"
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    (built,) = out.glob("steward_iot-*.whl")
    return built


@pytest.fixture
def gateway(tmp_path: Path) -> dict[str, Path]:
    return {
        "prefix": tmp_path / "opt",
        "etc": tmp_path / "etc",
        "state": tmp_path / "state",
        "units": tmp_path / "units",
    }


def install(where: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PIP_NO_INDEX": "1",
        "PIP_NO_DEPS": "1",
        "PIP_NO_COMPILE": "1",  # the release's bytecode is not what this test is about
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
    }
    return subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "--no-systemd",
            "--no-apt",
            "--no-user",
            "--python",
            sys.executable,
            "--prefix",
            str(where["prefix"]),
            "--etc",
            str(where["etc"]),
            "--state",
            str(where["state"]),
            "--unit-dir",
            str(where["units"]),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )


def releases(where: dict[str, Path]) -> list[Path]:
    return sorted((where["prefix"] / "releases").iterdir())


def test_install_upgrade_refusal_and_rollback(wheel: Path, gateway: dict[str, Path]) -> None:
    first = install(gateway, "--from", str(wheel))
    assert first.returncode == 0, first.stderr
    config = gateway["etc"] / "edge.yaml"
    assert config.read_text() == (ROOT / "deploy" / "edge.example.yaml").read_text()
    assert (gateway["etc"] / "rules" / "example.rules.yaml").is_file()
    venv = gateway["prefix"] / "venv"
    (release_1,) = releases(gateway)
    assert venv.resolve() == release_1
    unit = (gateway["units"] / "edge-agent.service").read_text()
    assert f"ExecStart={venv}/bin/edge-agent run --config {config}" in unit
    assert "/opt/steward/" not in unit
    assert "installed the example configuration" in first.stdout

    # The gateway runs: its configuration is edited, its outbox holds what the uplink owes.
    config.write_text(config.read_text().replace("gw-xinhua-g03", "gw-edited-07"))
    gateway["state"].mkdir()
    outbox = gateway["state"] / "outbox.sqlite"
    outbox.write_bytes(b"alarms not yet delivered")

    second = install(gateway, "--from", str(wheel))
    assert second.returncode == 0, second.stderr
    release_1_, release_2 = releases(gateway)
    assert (release_1_, venv.resolve()) == (release_1, release_2)
    assert "gw-edited-07" in config.read_text()
    assert outbox.read_bytes() == b"alarms not yet delivered"
    assert "installed the example configuration" not in second.stdout

    # A configuration the new release refuses: the upgrade stops before switching.
    config.write_text(config.read_text() + "colour: green\n")
    refused = install(gateway, "--from", str(wheel))
    assert refused.returncode == 1
    assert "colour: unknown key" in refused.stderr
    assert "the running release is unchanged" in refused.stderr
    assert releases(gateway) == [release_1, release_2]
    assert venv.resolve() == release_2

    config.write_text(config.read_text().replace("colour: green\n", ""))
    back = install(gateway, "--rollback")
    assert back.returncode == 0, back.stderr
    assert venv.resolve() == release_1
    assert outbox.read_bytes() == b"alarms not yet delivered"


def test_a_bad_source_and_bad_options_are_refused(gateway: dict[str, Path], tmp_path: Path) -> None:
    missing = install(gateway, "--from", str(tmp_path / "nothing"))
    assert missing.returncode == 1
    assert "is neither a wheel nor a source directory" in missing.stderr
    assert install(gateway, "--keep", "1").returncode == 1
    unknown = install(gateway, "--colour")
    assert unknown.returncode == 1
    assert "unknown option --colour" in unknown.stderr
    assert install(gateway, "--rollback").returncode == 1
