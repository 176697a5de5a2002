"""The console's texts in Chinese (the default) and English, from `messages/<language>/*.yaml`.

A catalog maps a dotted key (`alarms.title`) to its text. Each language's catalog is every file
of its folder (one per part of the console: `core.yaml`, `orders.yaml`, ...), and a key may be in
one file only; both catalogs have the same keys (a test checks). The language of a request is its `steward_lang` cookie if that names a known
language, else Chinese. A key missing from a catalog shows as itself, so a slip is visible on
the page instead of failing it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Final

import yaml

from cloud_ingest.auth.sessions import LANGUAGES

DEFAULT_LANGUAGE: Final = LANGUAGES[0]
"""Chinese."""
LANGUAGE_COOKIE: Final = "steward_lang"
"""The cookie holding the console language of this browser."""
_MESSAGES: Final = Path(__file__).with_name("messages")

Translate = Callable[[str], str]
"""`t(key)`: the text of `key` in one language."""


@cache
def catalog(language: str) -> Mapping[str, str]:
    """The texts of `language` (one of `LANGUAGES`)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    texts: dict[str, str] = {}
    for path in sorted((_MESSAGES / language).glob("*.yaml")):
        where = f"messages/{language}/{path.name}"
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            raise ValueError(f"{where} must map keys to texts")
        twice = sorted(set(loaded) & set(texts))
        if twice:
            raise ValueError(f"{where} repeats keys of another file: {', '.join(twice)}")
        texts |= loaded
    return texts


def language_of(cookie: str | None) -> str:
    """The language a `steward_lang` cookie value names, else the default."""
    return cookie if cookie in LANGUAGES else DEFAULT_LANGUAGE


def translator(language: str) -> Translate:
    """`t(key)` for `language`; an unknown key gives the key itself."""
    texts = catalog(language)

    def t(key: str) -> str:
        return texts.get(key, key)

    return t


def browser_texts(language: str, prefixes: tuple[str, ...]) -> dict[str, str]:
    """The texts whose keys start with one of `prefixes`, for the page's script."""
    return {k: v for k, v in catalog(language).items() if k.startswith(prefixes)}
