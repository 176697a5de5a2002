"""The default rule pack, one file per device class, shipped with the package.

A gateway config names the files it wants as `pack:NAME` (e.g. `rules: [pack:fire, pack:health]`)
or every one of them as `pack:default`; see docs/rules.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

PACKS_DIR: Final = Path(__file__).resolve().parent
"""Where the shipped rule files are."""

DEFAULT_PACKS: Final = ("fire", "manhole", "bin", "perimeter", "water", "health")
"""The files of the default pack, by name."""

PREFIX: Final = "pack:"


def pack_path(name: str) -> Path:
    """The file of a shipped pack (`fire` -> .../rules/packs/fire.yaml); `ValueError` if unknown."""
    if name not in DEFAULT_PACKS:
        msg = f"no rule pack {name!r}; shipped: {', '.join(DEFAULT_PACKS)} (or default for all)"
        raise ValueError(msg)
    return PACKS_DIR / f"{name}.yaml"


def default_pack() -> tuple[Path, ...]:
    """Every file of the default pack."""
    return tuple(pack_path(name) for name in DEFAULT_PACKS)


def resolve(entry: str, base: Path) -> tuple[Path, ...]:
    """The files of one `rules:` entry: `pack:NAME`, `pack:default`, or a path (relative to `base`)."""
    if entry.startswith(PREFIX):
        name = entry.removeprefix(PREFIX)
        return default_pack() if name == "default" else (pack_path(name),)
    path = Path(entry)
    return (path if path.is_absolute() else base / path,)
