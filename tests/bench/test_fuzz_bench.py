"""`bench/fuzz.py` at a tiny size: its table and JSON have one row per family and add up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is not an installed package

from bench import fuzz
from bench.fuzz_targets import FRAMERS, YAML_LOADERS, families
from firmware_adapters.registry import CODECS

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("crashes", "hangs", "nonfinite", "bad_errors", "frames_lost", "chunking_dependent")


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
        check=False,
    )


def test_every_codec_framer_parser_and_loader_is_a_family() -> None:
    names = families()
    assert set(CODECS) <= set(names)
    assert (
        set(FRAMERS) == {"framing.sia_dc09", "framing.contact_id", "framing.gbt26875"} <= set(names)
    )
    assert {"envelope", *YAML_LOADERS} <= set(names)
    assert len(names) == len(set(names))


def test_json_output_has_every_family_and_the_exit_status_follows_the_columns() -> None:
    result = run_bench("--cases", "12", "--seed", "3", "--json", "--workers", "2")
    assert result.returncode in {0, 1}, result.stderr
    doc = json.loads(result.stdout)
    assert doc["seed"] == 3
    assert doc["cases_per_family"] == 12
    assert doc["seconds"] > 0
    assert list(doc["families"]) == families()
    for row in doc["families"].values():
        assert row["cases"] == 12
        assert all(isinstance(row[c], int) and row[c] >= 0 for c in COLUMNS)
        assert row["cases_per_s"] > 0
    failing = any(row[c] for row in doc["families"].values() for c in COLUMNS)
    assert result.returncode == (1 if failing else 0)
    for finding in doc["findings"]:
        assert finding["family"] in doc["families"]
        assert finding["signature"]
        assert finding["reproducer"]


def test_same_seed_gives_the_same_counts() -> None:
    args = (
        "--cases",
        "40",
        "--seed",
        "5",
        "--json",
        "--family",
        "envelope",
        "--family",
        "lorawan.milesight.*",
    )
    first, second = (json.loads(run_bench(*args).stdout) for _ in range(2))
    strip = {"cpu_s", "cases_per_s"}
    assert {
        f: {k: v for k, v in row.items() if k not in strip} for f, row in first["families"].items()
    } == {
        f: {k: v for k, v in row.items() if k not in strip} for f, row in second["families"].items()
    }
    assert [f["reproducer"] for f in first["findings"]] == [
        f["reproducer"] for f in second["findings"]
    ]


def test_table_has_a_row_per_selected_family() -> None:
    result = run_bench("--cases", "5", "--family", "framing.*")
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["family", "cases", "crashes"]
    rows = {line.split()[0]: line.split() for line in lines[2:5]}
    assert set(rows) == set(FRAMERS)
    assert all(row[1] == "5" for row in rows.values())


def test_run_gives_rates_and_totals() -> None:
    figures = fuzz.run(len(families()) * 0.02)
    assert all(isinstance(v, float) for v in figures.values())
    assert {f"{f}.cases_per_s" for f in families()} <= set(figures)
    assert {"cases", *COLUMNS} <= set(figures)
    assert figures["cases"] >= len(families())
