"""The pytest plugin as a user meets it: the docs' example passes as written, in seconds.

The example and the pytest configuration are taken from the "pytest plugin" section of
docs/simulators.md, written to a fresh directory and run by pytest in a subprocess of this
environment, where installing Steward registered the plugin (entry point `pytest11`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "simulators.md"
EXAMPLE_TIMEOUT_S = 60.0
"""The example plays 40 simulated seconds at 20x; a minute leaves room for a busy machine."""


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _block(section: str, language: str) -> str:
    found = re.search(rf"^```{language}\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert found, f"no {language} block in the section"
    return found.group(1)


def _env() -> dict[str, str]:
    """This environment, without what would steer the inner pytest (the outer run's options)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def _pytest(cwd: Path, *code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *code],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_S,
        check=False,
    )


def test_the_docs_example_passes_as_written_in_seconds(tmp_path: Path) -> None:
    section = _section(DOC.read_text(encoding="utf-8"), "## pytest plugin")
    (tmp_path / "pyproject.toml").write_text(_block(section, "toml"), encoding="utf-8")
    (tmp_path / "test_example.py").write_text(_block(section, "python"), encoding="utf-8")

    result = _pytest(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider")

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b1 passed\b", result.stdout), result.stdout[-2000:]


def test_the_plugin_loads_without_pytest_asyncio_and_says_what_to_install(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_uses_fixtures.py").write_text(
        "def test_a_service_fixture(mosquitto_factory):\n"
        "    assert callable(mosquitto_factory)\n"
        "\n"
        "def test_a_device_fixture(run_scenario):\n"
        "    pass\n",
        encoding="utf-8",
    )
    # As in an environment with Steward and pytest but without pytest-asyncio: its module cannot
    # be imported and its plugin is not registered (plain asserts: pytest's rewriting import hook
    # would find the module ahead of the blocker).
    code = """
import sys

class NoPytestAsyncio:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pytest_asyncio":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoPytestAsyncio())
import pytest
sys.exit(pytest.main(["-q", "--assert=plain", "-p", "no:asyncio", "-p", "no:cacheprovider"]))
"""

    result = _pytest(tmp_path, "-c", code)

    output = result.stdout + result.stderr
    assert re.search(r"\b1 passed, 1 error\b", output), output[-3000:]
    assert "'run_scenario' needs the module 'pytest_asyncio'" in output, output[-3000:]
    assert "pip install 'steward-iot[sim]'" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
