"""Loading and checking `*.vectors.yaml` files (the format is documented in docs/adding-a-codec.md)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

import firmware_adapters
from core.types import RawFrame, Reading

CODECS_DIR = Path(firmware_adapters.__file__).parent / "codecs"
RECEIVED_AT = datetime(2026, 1, 1, tzinfo=UTC)
DEVICE = "dev"


@dataclass(frozen=True)
class VectorCase:
    """One case of a vectors file."""

    path: Path
    codec_id: str
    name: str
    doc: Mapping[str, Any]

    @property
    def test_id(self) -> str:
        """A readable pytest id."""
        return f"{self.codec_id}: {self.name}"

    def frame(self) -> RawFrame:
        """The frame this case feeds to the codec."""
        data = self.doc["input"]
        payload = bytes.fromhex(data["hex"]) if "hex" in data else str(data["text"]).encode()
        meta = {"device_id": DEVICE} | {k: str(v) for k, v in (data.get("meta") or {}).items()}
        return RawFrame("vectors", self.codec_id, payload, RECEIVED_AT, meta)


def vector_files() -> list[Path]:
    """Every vectors file under firmware_adapters/codecs/."""
    return sorted(CODECS_DIR.glob("*/*.vectors.yaml"))


def load_cases(path: Path) -> list[VectorCase]:
    """Parse one vectors file."""
    doc = yaml.safe_load(path.read_text())
    return [VectorCase(path, doc["codec"], case["name"], case) for case in doc["cases"]]


def all_cases() -> Iterator[VectorCase]:
    """Every case of every vectors file."""
    for path in vector_files():
        yield from load_cases(path)


def reading_key(reading: Reading) -> tuple[str, str, str]:
    """Sort key of a decoded reading."""
    return (reading.device_id, reading.metric.value, repr(reading.value))


def expected_key(expected: Mapping[str, Any]) -> tuple[str, str, str]:
    """Sort key of an expected reading."""
    return (expected.get("device", DEVICE), expected["metric"], repr(expected["value"]))


def same_value(actual: float | bool, expected: object) -> bool:
    """Booleans compare exactly; numbers within 1e-6."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    assert isinstance(expected, int | float), expected
    return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-6)
