"""The registry's own checks: every codec module is registered, named after its id, and has vectors."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from vector_cases import CODECS_DIR, load_cases

from firmware_adapters.codec import Codec, DeviceClass
from firmware_adapters.errors import UnknownCodecError
from firmware_adapters.registry import CODECS, get_codec, index_codecs

MODULES = sorted(
    p
    for p in CODECS_DIR.glob("*/*.py")
    if not p.name.startswith("_")  # private helper modules start with "_"
)


def _module_name(path_stem: str, transport: str) -> str:
    return f"firmware_adapters.codecs.{transport}.{path_stem}"


def test_there_are_codecs() -> None:
    assert MODULES, "no codec modules found"
    assert len(CODECS) == len(MODULES)


@pytest.mark.parametrize("path", MODULES, ids=[f"{p.parent.name}/{p.stem}" for p in MODULES])
def test_module_is_registered_under_an_id_that_mirrors_its_path(path: Path) -> None:
    transport = path.parent.name
    module = importlib.import_module(_module_name(path.stem, transport))
    codec = getattr(module, "CODEC", None)
    assert isinstance(codec, Codec), f"{path} has no CODEC (private helpers must start with '_')"
    vendor, model = codec.id.split(".")[1:]
    assert codec.transport == transport
    assert f"{vendor}_{model}" == path.stem
    assert CODECS.get(codec.id) is codec, f"{codec.id} missing from its transport's CODECS tuple"
    assert isinstance(codec.device_class, DeviceClass)
    assert codec.description


@pytest.mark.parametrize("codec_id", sorted(CODECS))
def test_codec_has_enough_vectors_with_an_error_case(codec_id: str) -> None:
    codec = CODECS[codec_id]
    assert codec.vectors.exists(), f"{codec_id}: no vectors file {codec.vectors}"
    cases = load_cases(codec.vectors)
    assert all(c.codec_id == codec_id for c in cases)
    assert len(cases) >= 3, f"{codec_id}: {len(cases)} vectors, need at least 3"
    assert any("error" in c.doc for c in cases), f"{codec_id}: no error vector"


def test_duplicate_and_malformed_ids_are_refused() -> None:
    some = next(iter(CODECS.values()))
    with pytest.raises(ValueError, match="twice"):
        index_codecs([some, some])
    with pytest.raises(ValueError, match=r"<transport>"):
        index_codecs(
            [Codec("bluetooth.x.y", some.device_class, "d", some.decode, some.encode, some.vectors)]
        )


def test_unknown_codec_lists_known_ones() -> None:
    with pytest.raises(UnknownCodecError, match=re.escape("no codec 'lorawan.acme.nothing'")):
        get_codec("lorawan.acme.nothing")
