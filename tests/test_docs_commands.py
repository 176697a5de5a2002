"""The commands the README and the guides show run as written.

Every fenced block whose info string is `sh test` in README.md, CONTRIBUTING.md and docs/*.md
(the convention is in CONTRIBUTING.md) is run with bash `-e` from a scratch directory that
mirrors the clone's root (its entries linked, `.venv` being the environment running these tests),
so relative paths work as in the clone and whatever a command writes lands in the scratch
directory. Long-running commands stay in plain `sh` blocks, which are not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?P<info>[^`\n]*)\n(?P<body>.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
BLOCK_TIMEOUT_S = 60.0
LONG_RUNNING = ("make ", "pip install", "propsim run", "edge-agent run", "scripts/demo.py", "sudo ")
"""What a tested block must not run: installs, services and scenarios played in real time."""


@dataclass(frozen=True)
class Block:
    """A fenced block of a Markdown file."""

    path: Path
    line: int
    info: tuple[str, ...]
    body: str

    @property
    def tested(self) -> bool:
        """Marked to run: info string `sh test`."""
        return self.info == ("sh", "test")

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, with the line its fence opens on."""
    text = path.read_text(encoding="utf-8")
    return [
        Block(path, text.count("\n", 0, m.start()) + 1, tuple(m["info"].split()), m["body"])
        for m in FENCE.finditer(text)
    ]


TESTED = [block for path in DOCS for block in blocks(path) if block.tested]


def _scratch(tmp_path: Path) -> Path:
    """A directory that looks like the clone's root; `.venv` is the environment running pytest."""
    for entry in ROOT.iterdir():
        if entry.name not in {".venv", ".git"}:
            (tmp_path / entry.name).symlink_to(entry)
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    return tmp_path


def test_the_readme_and_the_guides_have_tested_blocks() -> None:
    where = {block.path.name for block in TESTED}
    assert "README.md" in where
    assert {"edge-agent.md", "rules.md", "simulators.md"} <= where


@pytest.mark.parametrize("block", TESTED, ids=str)
def test_a_tested_block_runs_nothing_long(block: Block) -> None:
    commands = [line for line in block.body.splitlines() if not line.lstrip().startswith("#")]
    for command in commands:
        assert not any(long in command for long in LONG_RUNNING), f"{block}: {command}"


@pytest.mark.parametrize("block", TESTED, ids=str)
def test_a_tested_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        ["bash", "-e", "-c", block.body],
        cwd=_scratch(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, (
        f"{block} failed with {result.returncode}:\n{block.body}\n"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )
    assert "Traceback" not in result.stderr, f"{block}:\n{result.stderr[-3000:]}"
