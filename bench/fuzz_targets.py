"""What the fuzz harness feeds, to what, and what counts as a correct answer.

The contract: bad input raises the family's declared error (with a reason), nothing else escapes,
no returned value holds NaN or infinity, nothing takes longer than `SLOW_S` of CPU, and a stream
framer recovers every intact frame of a stream however its bytes are chunked.

`ACCEPTED` below is the one place that says which exceptions each family may raise and how its
target is called; change it when a loader's error type or entry point changes. Seeds come from
the committed corpora under `tests/fuzz/corpus/` (rebuilt by `bench/fuzz.py --write-corpus`).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import random
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import yaml
from pydantic import BaseModel

from bench import fuzz_mutations as mut
from core.envelope_json import dumps as envelope_dumps
from core.envelope_json import loads as envelope_loads
from core.envelope_json import reference_loads as envelope_reference_loads
from core.metrics import Metric, Quality
from core.types import (
    AlarmEvent,
    AlarmState,
    Envelope,
    Priority,
    RawFrame,
    Reading,
    Severity,
    WorkOrderHint,
)
from firmware_adapters.framing.base import Framer, StreamBuffer
from firmware_adapters.framing.contact_id import ContactIdFramer
from firmware_adapters.framing.gbt26875 import Gbt26875Framer
from firmware_adapters.framing.sia_dc09 import SiaDc09Framer, build_message
from firmware_adapters.gbt26875.builder import encode_values
from firmware_adapters.panel_events import checksum_digit
from firmware_adapters.registry import CODECS

ROOT: Final = Path(__file__).resolve().parents[1]
CORPUS: Final = ROOT / "tests" / "fuzz" / "corpus"


# The accepted errors of every family, and how its target is called. ------------------------------
# Names are "module:attribute", imported on first use, so a loader that moves or is mid-edit breaks
# only its own family (reported as a crash at import).
ACCEPTED: Final[Mapping[str, tuple[str, ...]]] = {
    "codec": ("firmware_adapters.errors:DecodeError",),
    "framer": (),  # framers never raise: garbage is consumed and counted
    "envelope": ("core.errors:EnvelopeError",),
    "yaml.config": ("edge_agent.config_errors:ConfigError",),
    "yaml.rules": ("rules.errors:RuleFileError",),
    "yaml.scenario": ("simulators.scenario:ScenarioError",),
}
YAML_LOADERS: Final[Mapping[str, tuple[str, str, str]]] = {
    "yaml.config": ("edge_agent.config:load_config", "path", "edge.yaml"),
    "yaml.rules": ("rules.spec:load_rule_files", "paths", "site.rules.yaml"),
    "yaml.scenario": ("simulators.scenario:load_scenario", "path", "case.scenario.yaml"),
}
"""Loader, whether it takes one path or a list of paths, and the file name a case is written as."""
FRAMERS: Final[Mapping[str, Callable[[], Framer]]] = {
    "framing.sia_dc09": SiaDc09Framer,
    "framing.contact_id": ContactIdFramer,
    "framing.gbt26875": Gbt26875Framer,
}
# -------------------------------------------------------------------------------------------------


def resolve(name: str) -> Any:  # noqa: ANN401 - whatever the table names
    """Import `module:attribute`."""
    module, _, attribute = name.partition(":")
    return getattr(importlib.import_module(module), attribute)


@cache
def accepted(kind: str) -> tuple[type[BaseException], ...]:
    """The exception types family kind `kind` may raise (see `ACCEPTED`)."""
    return tuple(resolve(name) for name in ACCEPTED[kind])


SLOW_S: Final = 0.1
"""A case that takes more CPU time than this is reported as a hang."""
AT: Final = datetime(2026, 1, 1, tzinfo=UTC)
PROJECT_DIRS: Final = (
    "core",
    "firmware_adapters",
    "rules",
    "edge_agent",
    "simulators",
    "cloud_ingest",
)


class CaseTimeout(BaseException):
    """Raised into a case that ran past the watchdog; a BaseException so targets cannot swallow it."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one case did.

    `kind` is `ok`, `expected` (an accepted error with a reason), `crash` (anything else escaped),
    `bad_error` (an accepted type without a reason or location), `nonfinite` (NaN/inf in the
    result), `lost` (a framer lost intact frames or depended on chunking) or `differs` (a fast
    path answered otherwise than its reference).
    """

    kind: str
    signature: str = ""
    where: str = ""
    detail: str = ""
    frames_lost: int = 0
    chunking_dependent: bool = False

    @property
    def failed(self) -> bool:
        """Whether the case broke the contract."""
        return self.kind not in {"ok", "expected"}


# Cases ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodecCase:
    """A payload and frame metadata for one codec."""

    payload: bytes
    meta: Mapping[str, str]

    def literal(self) -> str:
        """The case as a Python literal."""
        return f"({mut.bytes_literal(self.payload)}, {dict(self.meta)!r})"


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of a stream: an intact frame (with what the framer must return) or anything else."""

    kind: str
    wire: bytes
    frame: bytes = b""


@dataclass(frozen=True, slots=True)
class StreamCase:
    """Stream segments and the read sizes it is fed in (beyond the one read of everything)."""

    segments: tuple[Segment, ...]
    chunkings: tuple[tuple[int, ...], ...]

    @property
    def stream(self) -> bytes:
        """All segments' bytes, in order."""
        return b"".join(s.wire for s in self.segments)

    @property
    def expected(self) -> list[bytes]:
        """What the framer must return for the intact frames, in order."""
        return [s.frame for s in self.segments if s.kind == "frame"]

    def literal(self) -> str:
        """The stream, its intact frames and one chunking that shows the failure, as literals."""
        return (
            f"stream={self.stream!r}, intact={self.expected!r}, chunkings={list(self.chunkings)!r}"
        )


@dataclass(frozen=True, slots=True)
class BytesCase:
    """Bytes for a parser: envelope text or a YAML file."""

    data: bytes

    def literal(self) -> str:
        """The bytes as a Python literal."""
        return mut.bytes_literal(self.data)


Case = CodecCase | StreamCase | BytesCase


# Checks -----------------------------------------------------------------------------------------


def find_nonfinite(value: object, path: str = "", seen: set[int] | None = None) -> str | None:
    """Return the path of the first NaN or infinity in `value` (dataclasses, models, containers)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path or "<value>"
    if value is None or isinstance(value, str | bytes | int | datetime | UUID | Path):
        return None
    seen = set() if seen is None else seen
    if id(value) in seen:
        return None
    seen.add(id(value))
    children: Iterator[tuple[str, object]]
    if isinstance(value, Mapping):
        children = ((f"{path}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, list | tuple | set | frozenset):
        children = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, BaseModel):
        children = ((f"{path}.{k}", v) for k, v in value.__dict__.items())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = ((f"{path}.{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value))
    else:
        return None
    for child_path, child in children:
        found = find_nonfinite(child, child_path, seen)
        if found is not None:
            return found
    return None


def crash_site(err: BaseException) -> str:
    """`file:line` of the deepest project frame the exception passed through (else the deepest)."""
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        try:
            rel = Path(frame.filename).resolve().relative_to(ROOT)
        except ValueError:
            continue
        if rel.parts and rel.parts[0] in PROJECT_DIRS:
            return f"{rel}:{frame.lineno}"
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def _crash(err: Exception) -> Outcome:
    where = crash_site(err)
    detail = f"{type(err).__name__}: {str(err)[:200]}"
    return Outcome("crash", f"{type(err).__name__} at {where}", where, detail)


def _has_reason(err: BaseException, family: str, filename: str) -> bool:
    text = str(err).strip()
    if not text:
        return False
    if family == "codec":
        return bool(str(getattr(err, "detail", "")).strip())
    if family == "envelope":
        return bool(str(getattr(err, "reason", "")).strip())
    if family.startswith("yaml."):
        return all(line.startswith(filename) for line in text.splitlines() if line.strip())
    return True


def _expected(err: BaseException, family: str, filename: str = "") -> Outcome:
    if _has_reason(err, family, filename):
        return Outcome("expected")
    where = crash_site(err)
    detail = f"{type(err).__name__} without a located reason: {str(err)[:200]!r}"
    return Outcome("bad_error", f"{type(err).__name__} without reason at {where}", where, detail)


def _result(value: object) -> Outcome:
    found = find_nonfinite(value)
    if found is None:
        return Outcome("ok")
    return Outcome("nonfinite", f"non-finite {found}", detail=found)


def check_codec(codec_id: str, case: CodecCase) -> Outcome:
    """Decode one frame; only `DecodeError` may escape and readings/attributes must be finite."""
    codec = CODECS[codec_id]
    frame = RawFrame("fuzz", codec_id, case.payload, AT, {"device_id": "dev", **case.meta})
    try:
        result = codec.decode(frame)
    except accepted("codec") as err:
        return _expected(err, "codec")
    except Exception as err:  # noqa: BLE001 - anything else is the finding
        return _crash(err)
    return _result(result)


def check_envelope(case: BytesCase) -> Outcome:
    """Parse an envelope; only `EnvelopeError` may escape and every value must be finite.

    `loads` (orjson and the fast reading path) must also agree with `reference_loads` (the
    standard library's parser and the field readers): the same envelope, or the same error.
    """
    try:
        envelope = envelope_loads(case.data)
    except accepted("envelope") as err:
        differs = _differs_from_reference(case.data, err)
        return differs or _expected(err, "envelope")
    except Exception as err:  # noqa: BLE001
        return _crash(err)
    return _differs_from_reference(case.data, envelope) or _result(envelope)


def _differs_from_reference(data: bytes, got: object) -> Outcome | None:
    """A `differs` outcome when the reference reader's answer is not `got`."""
    try:
        want: object = envelope_reference_loads(data)
    except accepted("envelope") as err:
        want = err
    except Exception as err:  # noqa: BLE001
        return _crash(err)
    if isinstance(got, BaseException) and isinstance(want, BaseException):
        same = (str(got), getattr(got, "code", None)) == (str(want), getattr(want, "code", None))
    else:
        same = got == want
    if same:
        return None
    detail = f"loads gave {str(got)[:150]!r}, the reference {str(want)[:150]!r}"
    return Outcome("differs", "differs from the reference reader", detail=detail)


@cache
def _case_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="steward-fuzz-"))


def check_yaml(family: str, case: BytesCase) -> Outcome:
    """Write the bytes to a file and load it; only the family's located error may escape."""
    target, call, name = YAML_LOADERS[family]
    path = _case_dir() / name
    path.write_bytes(case.data)
    try:
        loader, errors = resolve(target), accepted(family)
    except Exception as err:  # noqa: BLE001 - a loader that cannot be imported fails every case
        return _crash(err)
    try:
        loaded = loader([path] if call == "paths" else path)
    except errors as err:
        return _expected(err, family, str(path))
    except Exception as err:  # noqa: BLE001
        return _crash(err)
    return _result(loaded)


def frames_of(framer: Framer, chunks: Iterator[bytes]) -> list[bytes]:
    """Feed `chunks` through a `StreamBuffer` and collect every frame."""
    buffer = StreamBuffer(framer)
    return [frame for chunk in chunks for frame in buffer.feed(chunk)]


def _chunks(stream: bytes, sizes: Sequence[int]) -> Iterator[bytes]:
    at = 0
    for size in sizes:
        if at >= len(stream):
            return
        yield stream[at : at + size]
        at += size
    if at < len(stream):
        yield stream[at:]


def _missing(expected: Sequence[bytes], got: Sequence[bytes]) -> int:
    have = Counter(got)
    return sum(max(0, n - have[frame]) for frame, n in Counter(expected).items())


def check_framer(family: str, case: StreamCase) -> Outcome:
    """Split a stream in one read and in each chunking; count intact frames lost and differences."""
    make = FRAMERS[family]
    stream = case.stream
    try:
        whole = frames_of(make(), iter([stream]))
        chunked = [frames_of(make(), _chunks(stream, sizes)) for sizes in case.chunkings]
    except Exception as err:  # noqa: BLE001 - framers never raise
        return _crash(err)
    lost = max(_missing(case.expected, got) for got in [whole, *chunked])
    dependent = any(got != whole for got in chunked)
    if not lost and not dependent:
        return Outcome("ok")
    signature = ("frames lost" if lost else "") + (" chunking-dependent" if dependent else "")
    return Outcome("lost", signature.strip(), "", "", lost, dependent)


def check(family: str, case: Case) -> Outcome:
    """Run one case of `family` against the contract."""
    if isinstance(case, CodecCase):
        return check_codec(family, case)
    if isinstance(case, StreamCase):
        return check_framer(family, case)
    if family == "envelope":
        return check_envelope(case)
    return check_yaml(family, case)


# Corpora ----------------------------------------------------------------------------------------


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@cache
def codec_corpus(codec_id: str) -> tuple[CodecCase, ...]:
    """The committed seeds of one codec."""
    rows = _jsonl(CORPUS / "codecs" / f"{codec_id}.jsonl")
    return tuple(CodecCase(bytes.fromhex(r["hex"]), r.get("meta", {})) for r in rows)


@cache
def framer_corpus(family: str) -> tuple[Segment, ...]:
    """The committed intact frames of one framer (wire bytes and the frame it returns)."""
    rows = _jsonl(CORPUS / "framers" / f"{family}.jsonl")
    return tuple(
        Segment("frame", bytes.fromhex(r["wire"]), bytes.fromhex(r["frame"])) for r in rows
    )


@cache
def text_corpus(kind: str) -> tuple[str, ...]:
    """The committed seed texts of `envelope`, `config`, `rules` or `scenarios`."""
    return tuple(p.read_text(encoding="utf-8") for p in sorted((CORPUS / kind).glob("*.*")))


YAML_CORPUS: Final = {"yaml.config": "config", "yaml.rules": "rules", "yaml.scenario": "scenarios"}


def families() -> list[str]:
    """Every family: one per registered codec, per framer, the envelope and the three YAML loaders."""
    return [*sorted(CODECS), *FRAMERS, "envelope", *YAML_LOADERS]


# Case generation --------------------------------------------------------------------------------

META_HOSTILE: Final = (
    "",
    "0",
    "-1",
    "256",
    "65536",
    "99999999999999999999",
    "9" * 5000,
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e400",
    "1e19",
    "0x",
    "0x34",
    "0xFFFFFFFFFFFF",
    "abc",
    " 85",
    "85\x00",
    "\uff18\uff15",
    "\u0663",
    "1_0",
    "+08:00",
    "+99:99",
    "-00:00",
    "24:00",
    "state",
    "availability",
    "{}",
    "[]",
    "null",
)
META_KEYS: Final = (
    "fport",
    "rssi",
    "snr",
    "address",
    "table",
    "exposes",
    "kind",
    "model",
    "utc_offset",
    "unit",
)


def _mutate_meta(rng: random.Random, meta: Mapping[str, str]) -> dict[str, str]:
    out = dict(meta)
    key = rng.choice([*meta, *META_KEYS]) if meta else rng.choice(META_KEYS)
    current = out.get(key, "")
    if current[:1] in {"[", "{"} and rng.random() < 0.7:
        out[key] = mut.mutate_json_doc(rng, current).decode("utf-8", "replace")
    elif rng.random() < 0.1:
        out.pop(key, None)
    else:
        out[key] = rng.choice(META_HOSTILE)
    return out


def codec_case(codec_id: str, rng: random.Random) -> CodecCase:
    """A seed of the codec with its payload and/or metadata mutated."""
    seeds = codec_corpus(codec_id)
    seed = rng.choice(seeds)
    payload, meta = seed.payload, dict(seed.meta)
    pick = rng.random()
    if pick < 0.75:
        if payload[:1] in {b"{", b"["} and rng.random() < 0.6:
            payload = mut.mutate_json_doc(rng, payload.decode("utf-8", "replace"))
        else:
            payload = mut.mutate_bytes(rng, payload, [s.payload for s in seeds])
    if pick > 0.6:
        meta = _mutate_meta(rng, meta)
    return CodecCase(payload, meta)


def _contact_id_frame(rng: random.Random) -> Segment:
    digits = "0123456789"
    account = "".join(rng.choice("0123456789BCDEF") for _ in range(4))
    event = "".join(rng.choice(digits) for _ in range(8))
    body = f"{account}{rng.choice(('18', '98'))}{rng.choice('136')}{event}"
    message = body + checksum_digit(body)
    eol = rng.choice((b"\r\n", b"\r", b"\n"))
    return Segment("frame", message.encode() + eol, message.encode())


def _dc09_frame(rng: random.Random) -> Segment:
    account = "".join(rng.choice("0123456789ABCDEF") for _ in range(rng.randint(3, 16)))
    kind = rng.choice(("ADM-CID", "SIA-DCS", "NULL"))
    seq = rng.randrange(10000)
    if kind == "ADM-CID":
        data = f"#{account}|{rng.choice('136')}{rng.randrange(1000):03d} {rng.randrange(100):02d} {rng.randrange(1000):03d}"
    elif kind == "SIA-DCS":
        data = f"#{account}|Nri{rng.randint(0, 99)}/{rng.choice(('FA', 'BA', 'OP', 'CL', 'YT'))}{rng.randrange(1000):03d}"
    else:
        data = ""
    body = f'"{kind}"{seq:04d}L{rng.randrange(16):X}#{account}[{data}]'
    if rng.random() < 0.5:
        body += f"_{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d},{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}-2026"
    wire = build_message(body)
    return Segment("frame", wire, wire)


def _gbt_frame(rng: random.Random) -> Segment:
    objects = [
        {
            "system_type": rng.randrange(256),
            "system_address": rng.randrange(256),
            "status": rng.randrange(65536),
            "at": AT,
        }
        for _ in range(rng.randint(1, 3))
    ]
    wire = encode_values({"info_type": 1, "serial": rng.randrange(65536), "objects": objects})
    return Segment("frame", wire, wire)


FRAME_BUILDERS: Final[Mapping[str, Callable[[random.Random], Segment]]] = {
    "framing.sia_dc09": _dc09_frame,
    "framing.contact_id": _contact_id_frame,
    "framing.gbt26875": _gbt_frame,
}
_INERT: Final[Mapping[str, bytes]] = {
    # Bytes that can never start or complete a frame of the format.
    "framing.sia_dc09": bytes(b for b in range(256) if b != 0x0A),
    "framing.contact_id": bytes(b for b in range(256) if b not in b"\r\n"),
    "framing.gbt26875": bytes(b for b in range(256) if b != 0x40),
}
_HOSTILE: Final[Mapping[str, tuple[bytes, ...]]] = {
    "framing.sia_dc09": (b"\n", b"\n0000", b"\nFFFF0FFF", b"\n12340010", b"\r", b'"ADM-CID"'),
    "framing.contact_id": (b"1234181131010158", b"BCDEF", b"0" * 300, b" ", b"\x00"),
    "framing.gbt26875": (b"@@", b"@", b"##", b"@@\x00\x00\x01\x01", b"@@\xff\xff\x01\x01"),
}


def _garbage(family: str, rng: random.Random) -> Segment:
    if rng.random() < 0.6:
        alphabet = _INERT[family]
        wire = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 48)))
    else:
        parts = [rng.choice(_HOSTILE[family]) for _ in range(rng.randint(1, 3))]
        wire = b"".join(parts) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 16)))
    if family == "framing.contact_id" and not wire.endswith((b"\r", b"\n")):
        wire += b"\r\n"  # a Contact ID frame is a line: garbage must not share its line
    return Segment("garbage", wire)


def _damaged(family: str, frame: Segment, rng: random.Random) -> Segment:
    if rng.random() < 0.5:
        cut = rng.randrange(1, max(2, len(frame.wire) - 1))
        wire = frame.wire[:cut]
        kind = "truncated"
    else:
        wire = rng.choice(mut.BYTE_OPS)(rng, frame.wire)
        kind = "damaged"
    if family == "framing.contact_id" and not wire.endswith((b"\r", b"\n")):
        wire += b"\n"
    return Segment(kind, wire)


def _intact(family: str, rng: random.Random) -> Segment:
    """A frame from the corpus or a builder; one the framer does not return alone is `other`."""
    if rng.random() < 0.5:
        return rng.choice(framer_corpus(family))
    segment = FRAME_BUILDERS[family](rng)
    if frames_of(FRAMERS[family](), iter([segment.wire])) == [segment.frame]:
        return segment
    return Segment("other", segment.wire)


def _chunking(rng: random.Random, length: int) -> tuple[int, ...]:
    sizes: list[int] = []
    small = rng.random() < 0.3
    while sum(sizes) < length:
        sizes.append(rng.randint(1, 4) if small else rng.randint(1, 128))
    return tuple(sizes)


def stream_case(family: str, rng: random.Random) -> StreamCase:
    """Intact frames with garbage, truncated and damaged frames between them, and two chunkings."""
    segments: list[Segment] = []
    for _ in range(rng.randint(2, 8)):
        pick = rng.random()
        if pick < 0.45:
            segments.append(_intact(family, rng))
        elif pick < 0.7:
            segments.append(_garbage(family, rng))
        else:
            segments.append(_damaged(family, _intact(family, rng), rng))
    if not any(s.kind == "frame" for s in segments):
        segments.append(_intact(family, rng))
    length = sum(len(s.wire) for s in segments)
    return StreamCase(tuple(segments), (_chunking(rng, length), _chunking(rng, length)))


def bytes_case(family: str, rng: random.Random) -> BytesCase:
    """A mutated envelope or YAML seed."""
    if family == "envelope":
        seed = rng.choice(text_corpus("envelope"))
        if rng.random() < 0.8:
            return BytesCase(mut.mutate_json_doc(rng, seed))
        return BytesCase(mut.mutate_bytes(rng, seed.encode()))
    return BytesCase(mut.mutate_yaml(rng, rng.choice(text_corpus(YAML_CORPUS[family]))))


def generate(family: str, rng: random.Random) -> Case:
    """One case of `family` drawn with `rng`."""
    if family in CODECS:
        return codec_case(family, rng)
    if family in FRAMERS:
        return stream_case(family, rng)
    return bytes_case(family, rng)


def warm_up(family: str) -> None:
    """Check every seed of `family` once, so that first-use imports and caches are not timed."""
    if family in CODECS:
        for seed in codec_corpus(family):
            check(family, seed)
    elif family in FRAMERS:
        check(family, stream_case(family, random.Random(0)))
    else:
        kind = "envelope" if family == "envelope" else YAML_CORPUS[family]
        for text in text_corpus(kind):
            check(family, BytesCase(text.encode()))


def case_rng(seed: int, family: str, index: int) -> random.Random:
    """The random source of case `index` of `family` under `seed` (cases are independent)."""
    return random.Random(f"{seed}/{family}/{index}")


# Shrinking --------------------------------------------------------------------------------------


def shrink_case(family: str, case: Case, outcome: Outcome, *, max_seconds: float = 5.0) -> Case:
    """A smaller case that fails the same way (same signature; framers: still failing)."""

    def same(candidate: Case) -> bool:
        return check(family, candidate).signature == outcome.signature

    if isinstance(case, CodecCase):
        payload = mut.shrink(
            case.payload, lambda p: same(CodecCase(p, case.meta)), max_seconds=max_seconds
        )
        meta = dict(case.meta)
        for key in list(meta):
            trial = {k: v for k, v in meta.items() if k != key}
            if same(CodecCase(payload, trial)):
                meta = trial
        return CodecCase(payload, meta)
    if isinstance(case, StreamCase):
        segments = mut.shrink_list(
            list(case.segments),
            lambda s: check(family, StreamCase(tuple(s), case.chunkings)).failed,
        )
        small = StreamCase(tuple(segments), case.chunkings)
        keep = [
            c for c in small.chunkings if check(family, StreamCase(small.segments, (c,))).failed
        ]
        return StreamCase(small.segments, tuple(keep[:1]) or small.chunkings)
    return BytesCase(mut.shrink(case.data, lambda d: same(BytesCase(d)), max_seconds=max_seconds))


# Writing the corpora ----------------------------------------------------------------------------

VECTORS: Final = Path("/work/shared/vectors")
_JSONL_DEVICES: Final = {
    "dragino_ldds75_ttn": "lorawan.dragino.ldds75",
    "dragino_lds02_ttn": "lorawan.dragino.lds02",
    "gbt26875_3_uitd": "serial.gbt26875.3",
    "ademco_contact_id": "serial.ademco.contact_id",
}


def _vector_seeds() -> dict[str, list[dict[str, Any]]]:
    seeds: dict[str, list[dict[str, Any]]] = {codec_id: [] for codec_id in CODECS}
    for codec in CODECS.values():
        doc = yaml.safe_load(codec.vectors.read_text())
        for entry in doc["cases"]:
            data = entry["input"]
            payload = bytes.fromhex(data["hex"]) if "hex" in data else str(data["text"]).encode()
            meta = {k: str(v) for k, v in (data.get("meta") or {}).items()}
            seeds[codec.id].append({"hex": payload.hex(), "meta": meta})
    for path in sorted(VECTORS.glob("*.examples.jsonl")) if VECTORS.is_dir() else []:
        for row in _jsonl(path):
            device = str(row.get("device", ""))
            codec_id = _JSONL_DEVICES.get(device, f"lorawan.{device.replace('_', '.', 1)}")
            if codec_id not in seeds:
                continue
            if row.get("hex"):
                meta = {"fport": str(row["fport"])} if row.get("fport") is not None else {}
                seeds[codec_id].append({"hex": row["hex"], "meta": meta})
            elif row.get("message"):
                seeds[codec_id].append({"hex": row["message"].encode().hex(), "meta": {}})
    return seeds


def _framer_seeds() -> dict[str, list[dict[str, str]]]:
    wires: dict[str, list[bytes]] = {
        "framing.sia_dc09": [],
        "framing.contact_id": [],
        "framing.gbt26875": [],
    }
    for family, codec_id in (
        ("framing.sia_dc09", "ip.sia.dc09"),
        ("framing.contact_id", "serial.ademco.contact_id"),
        ("framing.gbt26875", "serial.gbt26875.3"),
    ):
        for seed in codec_corpus(codec_id):
            wire = seed.payload if family != "framing.contact_id" else seed.payload + b"\r\n"
            wires[family].append(wire)
    out: dict[str, list[dict[str, str]]] = {}
    for family, candidates in wires.items():
        rows = []
        for wire in dict.fromkeys(candidates):
            frames = frames_of(FRAMERS[family](), iter([wire]))
            if len(frames) == 1:  # keep what the framer itself accepts as one frame
                rows.append({"wire": wire.hex(), "frame": frames[0].hex()})
        out[family] = rows
    return out


def _envelopes() -> list[Envelope]:
    reading = Reading(
        "bin-07", Metric.DISTANCE_MM, 1234.5, AT, Quality.GOOD, "lorawan.milesight.em310_udl"
    )
    derived = Reading("bin-07", Metric.FILL_PCT, 40.0, AT, derived_from=Metric.DISTANCE_MM)
    flag = Reading(
        "smoke-1",
        Metric.SMOKE,
        value=True,
        ts=AT,
        quality=Quality.SUSPECT,
        codec_id="zigbee2mqtt.generic.exposes",
    )
    event = AlarmEvent(
        fingerprint="site/smoke-1/smoke",
        seq=3,
        state=AlarmState.FIRING,
        severity=Severity.CRITICAL,
        starts_at=AT,
        at=AT,
        rule_id="smoke",
        device_id="smoke-1",
        location="d/s/c/g",
        description="smoke detected",
        valid_until=AT,
        value=True,
        evidence={"smoke": True, "battery_pct": 80.5, "note": "x"},
        suppressed=("silence",),
        work_order=WorkOrderHint("fire", Priority.URGENT),
        rule_version="1",
    )
    batch = UUID("12345678-1234-5678-1234-567812345678")
    return [
        Envelope("gw-1", batch, AT, (reading, derived, flag)),
        Envelope("gw-1", batch, AT, (), (event,)),
        Envelope("gw-1", batch, AT),
    ]


def _dump(doc: object) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _valid(family: str, text: str) -> bool:
    return check(family, BytesCase(text.encode())).kind == "ok"


def _config_seeds() -> list[str]:
    doc = yaml.safe_load((ROOT / "deploy" / "edge.example.yaml").read_text())
    small = {"gateway": doc["gateway"]}
    # A serial source must name a declared device: variants with sources keep those devices.
    bound = {s.get("device", s["id"]) for s in doc.get("sources", {}).get("serial", [])}
    wired = [d for d in doc.get("devices", []) if d["id"] in bound]
    base = small | {"sources": doc["sources"]}
    variants = [doc, small]
    variants += [small | {key: doc[key]} for key in doc if key not in base]
    variants += [
        base | {"devices": [*wired, device] if device not in wired else wired}
        for device in doc.get("devices", [])
    ]
    variants += [
        small | {"sources": {k: v}} | ({"devices": wired} if k == "serial" else {})
        for k, v in doc.get("sources", {}).items()
    ]
    return [_dump(v) for v in variants]


def _rule_seeds() -> list[str]:
    texts: list[str] = []
    for path in [
        *sorted((ROOT / "rules" / "packs").glob("*.yaml")),
        *(ROOT / "deploy" / "rules").glob("*.yaml"),
    ]:
        doc = yaml.safe_load(path.read_text())
        rest = {k: v for k, v in doc.items() if k != "rules"}
        texts.extend(_dump(rest | {"rules": [rule]}) for rule in doc.get("rules", []))
        if rest:
            texts.append(_dump(rest))
    return texts


def _scenario_seeds() -> list[str]:
    return [
        _dump(yaml.safe_load(p.read_text()))
        for p in sorted((ROOT / "simulators" / "scenarios").glob("*.yaml"))
    ]


def write_corpus(dest: Path = CORPUS) -> dict[str, int]:
    """Rebuild the seed corpora from the vectors, the default rule packs, scenarios and example config.

    Returns the number of seeds written per corpus. YAML seeds are kept only if they load.
    """
    counts: dict[str, int] = {}
    (dest / "codecs").mkdir(parents=True, exist_ok=True)
    for codec_id, rows in _vector_seeds().items():
        unique = list({json.dumps(r, sort_keys=True): r for r in rows}.values())
        (dest / "codecs" / f"{codec_id}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in unique)
        )
        counts[f"codecs/{codec_id}"] = len(unique)
    codec_corpus.cache_clear()
    (dest / "framers").mkdir(exist_ok=True)
    for family, frame_rows in _framer_seeds().items():
        (dest / "framers" / f"{family}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in frame_rows)
        )
        counts[f"framers/{family}"] = len(frame_rows)
    (dest / "envelope").mkdir(exist_ok=True)
    for index, envelope in enumerate(_envelopes()):
        (dest / "envelope" / f"envelope-{index}.json").write_bytes(envelope_dumps(envelope))
    counts["envelope"] = len(_envelopes())
    for family, kind, texts in (
        ("yaml.config", "config", _config_seeds()),
        ("yaml.rules", "rules", _rule_seeds()),
        ("yaml.scenario", "scenarios", _scenario_seeds()),
    ):
        (dest / kind).mkdir(exist_ok=True)
        for old in (dest / kind).glob("*.yaml"):
            old.unlink()
        kept = [t for t in dict.fromkeys(texts) if _valid(family, t)]
        for index, text in enumerate(kept):
            (dest / kind / f"{kind}-{index:02d}.yaml").write_text(text, encoding="utf-8")
        counts[kind] = len(kept)
    text_corpus.cache_clear()
    return counts
