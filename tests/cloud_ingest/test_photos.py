"""Photos by content hash: the type judged from the bytes, the streaming multipart reader, and
`/api/v1/photos` (upload, idempotence, limits, hostile inputs, who may read) with the check that
work-order actions and requests name only uploaded photos, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from images import png
from sqlalchemy import func, select

from cloud_ingest.auth.service import add_user
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.schema import photos
from cloud_ingest.main import create_app
from cloud_ingest.photos.formats import (
    BadDimensionsError,
    ImageInfo,
    ImageType,
    NotAnImageError,
    is_sha256,
    sniff,
)
from cloud_ingest.photos.multipart import (
    MultipartError,
    MultipartReader,
    PartData,
    PartEnd,
    PartStart,
    boundary_of,
)
from cloud_ingest.photos.store import INCOMING, Incoming, PhotoTooLargeError, photo_path
from cloud_ingest.problems import PROBLEM_JSON

# --- images as bytes ----------------------------------------------------------------------------


def jpeg(width: int = 640, height: int = 480, exif: int = 100) -> bytes:
    """JPEG markers as a camera writes them: SOI, an APP1 (EXIF) segment, then SOF0."""
    app1 = b"\xff\xe1" + struct.pack(">H", exif + 2) + b"E" * exif
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app1 + sof + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x12" * 50


def webp_vp8x(width: int, height: int) -> bytes:
    body = (
        b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    )
    return (
        b"RIFF" + struct.pack("<I", 4 + 8 + len(body)) + b"WEBPVP8X" + struct.pack("<I", 10) + body
    )


def webp_vp8(width: int, height: int) -> bytes:
    frame = b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 10
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(frame))
        + b"WEBPVP8 "
        + struct.pack("<I", len(frame))
        + frame
    )


def webp_lossless(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    frame = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 8
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(frame))
        + b"WEBPVP8L"
        + struct.pack("<I", len(frame))
        + frame
    )


GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- formats ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png(3, 2), ImageInfo(ImageType.PNG, 3, 2)),
        (jpeg(640, 480), ImageInfo(ImageType.JPEG, 640, 480)),
        (jpeg(4000, 3000, exif=30_000), ImageInfo(ImageType.JPEG, 4000, 3000)),
        (webp_vp8x(1920, 1080), ImageInfo(ImageType.WEBP, 1920, 1080)),
        (webp_vp8(800, 600), ImageInfo(ImageType.WEBP, 800, 600)),
        (webp_lossless(17, 9), ImageInfo(ImageType.WEBP, 17, 9)),
        (jpeg()[:8], ImageInfo(ImageType.JPEG)),  # the frame header not in the bytes given
    ],
)
def test_the_type_and_size_are_read_from_the_bytes(data: bytes, expected: ImageInfo) -> None:
    assert sniff(data) == expected


@pytest.mark.parametrize(
    "data",
    [GIF, SVG, b"", b"\x89PNG", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"%PDF-1.7", png()[:16]],
)
def test_anything_else_is_not_an_image(data: bytes) -> None:
    with pytest.raises(NotAnImageError):
        sniff(data)


@pytest.mark.parametrize("data", [png(0, 1), png(1, 0), png(30_000, 1), jpeg(15_000, 15_000)])
def test_impossible_dimensions_are_refused(data: bytes) -> None:
    with pytest.raises(BadDimensionsError):
        sniff(data)


def test_a_photo_hash_is_64_lower_case_hex_digits_and_nothing_else(tmp_path: Path) -> None:
    good = sha(b"x")
    assert is_sha256(good)
    for bad in [good.upper(), good[:63], good + "0", "../" + good[3:], good[:62] + "\n0", "g" * 64]:
        assert not is_sha256(bad)
        with pytest.raises(ValueError, match="not a photo hash"):
            photo_path(tmp_path, bad)
    assert photo_path(tmp_path, good) == tmp_path / good[:2] / good[2:4] / good


async def test_an_incoming_photo_is_written_whole_however_it_arrives(tmp_path: Path) -> None:
    data = jpeg(exif=65_000) + bytes(range(256)) * 400  # past the head kept for the dimensions
    for first in [1, 11, 12, 13, 70_000]:
        incoming = Incoming(tmp_path, max_bytes=len(data))
        await incoming.write(data[:first])
        await incoming.write(data[first:])
        stored = await incoming.finish()
        assert (stored.sha256, stored.info) == (sha(data), ImageInfo(ImageType.JPEG, 640, 480))
        assert photo_path(tmp_path, stored.sha256).read_bytes() == data
        assert stored.new == (first == 1)
    with pytest.raises(PhotoTooLargeError):
        await Incoming(tmp_path, max_bytes=10).write(data[:11])
    assert list((tmp_path / INCOMING).iterdir()) == []


# --- the multipart reader -----------------------------------------------------------------------

BOUNDARY = "----form-7MA4YWxkTrZu0gW"


def form(*parts: tuple[str, str | None, str, bytes], boundary: str = BOUNDARY) -> bytes:
    """A multipart body of `(name, filename, content type, data)` parts."""
    out = b""
    for name, filename, kind, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        out += f"Content-Type: {kind}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def parse(body: bytes, chunk: int) -> list[tuple[str, str | None, bytes]]:
    reader = MultipartReader(BOUNDARY)
    parts: list[tuple[str, str | None, bytes]] = []
    current: tuple[str, str | None] | None = None
    data = b""
    for at in range(0, len(body), chunk):
        for event in reader.feed(body[at : at + chunk]):
            if isinstance(event, PartStart):
                current, data = (event.name, event.filename), b""
            elif isinstance(event, PartData):
                data += event.data
            else:
                assert isinstance(event, PartEnd)
                assert current is not None
                parts.append((*current, data))
    reader.close()
    return parts


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1000, 1 << 20])
def test_parts_come_out_whole_whatever_the_chunks(chunk: int) -> None:
    tricky = b"a\r\n--" + BOUNDARY[:-1].encode() + b"x\r\n--\r\n" + bytes(range(256))
    body = form(
        ("note", None, "text/plain", b"kitchen"),
        ("file", "a.png", "image/png", png()),
        ("file", "b.bin", "application/octet-stream", tricky),
        ("file", "", "application/octet-stream", b""),
    )
    assert parse(b"preamble\r\n" + body + b"epilogue", chunk) == [
        ("note", None, b"kitchen"),
        ("file", "a.png", png()),
        ("file", "b.bin", tricky),
        ("file", "", b""),
    ]


def test_a_cut_or_malformed_body_is_refused() -> None:
    whole = form(("file", "a.png", "image/png", png()))
    with pytest.raises(MultipartError, match="final delimiter"):
        parse(whole[:-10], 5)
    with pytest.raises(MultipartError, match="no multipart delimiter"):
        parse(b"x" * 5000, 100)
    with pytest.raises(MultipartError, match="headers are too long"):
        parse(f"--{BOUNDARY}\r\nX-Long: ".encode() + b"a" * 10_000, 100)
    with pytest.raises(MultipartError, match="Content-Disposition"):
        parse(f"--{BOUNDARY}\r\nContent-Type: image/png\r\n\r\nxx\r\n--{BOUNDARY}--".encode(), 9)
    with pytest.raises(MultipartError, match="garbage"):
        parse(f"--{BOUNDARY}garbage\r\n".encode(), 9)


def test_the_boundary_comes_from_the_content_type() -> None:
    assert boundary_of(f"multipart/form-data; boundary={BOUNDARY}") == BOUNDARY
    assert boundary_of('Multipart/Form-Data; charset=utf-8; boundary="a b:c"') == "a b:c"
    for bad in ["multipart/form-data", "multipart/mixed; boundary=x", "image/png"]:
        with pytest.raises(MultipartError):
            boundary_of(bad)


# --- the API ------------------------------------------------------------------------------------

API = "/api/v1"
USERS = {  # name: (role, company, area)
    "admin": ("admin", None, None),
    "op-a": ("operator", "A", None),
    "sup-a": ("supervisor", "A", None),
    "tech-a": ("technician", "A", None),
    "resident-a": ("resident", "A", "d1/s1/c1/g1/b1"),
    "resident-a2": ("resident", "A", "d1/s1/c1/g1/b2"),
    "op-b": ("operator", "B", None),
    "street-officer": ("supervisor", None, "d1/s1"),
    "far-officer": ("supervisor", None, "d2"),
}
MAX_BYTES = 4096


@dataclass
class Photos:
    client: httpx.AsyncClient
    app: FastAPI
    root: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    async def upload(self, user: str, *files: tuple[str, bytes, str]) -> httpx.Response:
        parts = [("file", f) for f in files]
        return await self.client.post(f"{API}/photos", files=parts, headers=self.auth(user))

    async def raw(self, user: str, data: Any, kind: str) -> httpx.Response:
        headers = {**self.auth(user), "Content-Type": kind}
        return await self.client.post(f"{API}/photos", content=data, headers=headers)

    async def stored(self, user: str, data: bytes) -> str:
        response = await self.upload(user, ("p.png", data, "image/png"))
        assert response.status_code in {200, 201}, response.text
        digest: str = response.json()["sha256"]
        return digest

    async def read(self, user: str, digest: str) -> httpx.Response:
        return await self.client.get(f"{API}/photos/{digest}", headers=self.auth(user))

    async def post(self, user: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(f"{API}{path}", json=body, headers=self.auth(user))

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Photos]:
    flags = {
        "database_url": db_url,
        "migrate_on_start": True,
        "alarm_sweep_interval_s": 0,
        "sla_breach_interval_s": 0,
        "notify_worker": False,
        "photo_dir": tmp_path / "photos",
        "photo_max_bytes": MAX_BYTES,
        "photo_max_files": 3,
    }
    app = create_app(load_settings(environ={}, flags=flags))
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://photos") as client:
            found = Photos(client, app, tmp_path / "photos")
            for name, (role, company, area) in USERS.items():
                found.tokens[name] = await add_user(
                    app.state.engine, name, role=role, company=company, area=area
                )
            yield found


def assert_problem(response: httpx.Response, status: int, detail: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert detail in response.json().get("detail", "")


async def photo_rows(api: Photos) -> list[tuple[Any, ...]]:
    p = photos.c
    async with api.app.state.engine.connect() as conn:
        rows = await conn.execute(
            select(p.sha256, p.uploader, p.company, p.size, p.type).order_by(p.uploader)
        )
        return [tuple(r) for r in rows]


async def test_a_photo_is_stored_once_under_its_hash(api: Photos) -> None:
    data = png(3, 2)
    first = await api.upload("tech-a", ("kitchen.png", data, "image/png"))
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["sha256"], body["size"], body["type"]) == (sha(data), len(data), "image/png")
    assert (body["width"], body["height"]) == (3, 2)
    assert body["photos"] == [{k: body[k] for k in ("sha256", "size", "type", "width", "height")}]
    assert api.files() == [photo_path(api.root, sha(data))]
    assert api.files()[0].read_bytes() == data

    again = await api.upload("tech-a", ("same.png", data, "image/png"))
    assert (again.status_code, again.json()["sha256"]) == (200, sha(data))
    await api.upload("op-a", ("same.png", data, "image/png"))
    assert len(api.files()) == 1  # the same bytes, stored once
    assert await photo_rows(api) == [
        (sha(data), "op-a", "A", len(data), "image/png"),
        (sha(data), "tech-a", "A", len(data), "image/png"),
    ]


async def test_several_files_and_a_raw_body(api: Photos) -> None:
    one, two = png(salt=b"1"), jpeg()
    response = await api.upload("tech-a", ("1.png", one, "image/png"), ("2.jpg", two, "image/jpeg"))
    assert response.status_code == 201, response.text
    listed = [(p["sha256"], p["type"]) for p in response.json()["photos"]]
    assert listed == [(sha(one), "image/png"), (sha(two), "image/jpeg")]

    # the declared type is not trusted: the bytes are a WebP
    data = webp_vp8x(64, 48)
    raw = await api.raw("resident-a", data, "image/png")
    assert raw.status_code == 201, raw.text
    assert (raw.json()["sha256"], raw.json()["type"]) == (sha(data), "image/webp")
    assert len(api.files()) == 3

    # streamed in chunks that split the magic bytes and the head kept for the dimensions
    data = jpeg(exif=3000)
    cuts = [0, 1, 2, 5, 11, 12, 13, 2000, len(data)]

    async def chunks() -> AsyncIterator[bytes]:
        for start, end in itertools.pairwise(cuts):
            yield data[start:end]

    streamed = await api.raw("tech-a", chunks(), "image/jpeg")
    assert streamed.status_code == 201, streamed.text
    assert photo_path(api.root, sha(data)).read_bytes() == data


@pytest.mark.parametrize(
    ("files", "status", "detail"),
    [
        ([("x.png", GIF, "image/png")], 415, "not a JPEG, PNG or WebP"),
        ([("x.png", SVG, "image/svg+xml")], 415, "not a JPEG, PNG or WebP"),
        ([("ok.png", png(), "image/png"), ("x.jpg", b"MZ\x90\x00", "image/jpeg")], 415, ""),
        ([("empty.png", b"", "image/png")], 422, "empty"),
        ([("huge.png", png(30_000, 1), "image/png")], 422, "pixels"),
        ([(f"{n}.png", png(salt=bytes([n])), "image/png") for n in range(4)], 413, "at most 3"),
    ],
)
async def test_what_is_not_a_photo_is_refused_and_nothing_kept(
    api: Photos, files: list[tuple[str, bytes, str]], status: int, detail: str
) -> None:
    assert_problem(await api.upload("tech-a", *files), status, detail)
    assert await photo_rows(api) == []
    # no temporary file is left; a refused part is never stored (a good one before it may be,
    # without a row: nobody may read it until it is uploaded again)
    assert [p for p in api.files() if INCOMING in p.parts] == []
    if len(files) == 1 and status == 415:
        assert not api.root.exists()  # refused on its first bytes, before touching the disk
    good = {photo_path(api.root, sha(data)) for _, data, _ in files if data[:4] == b"\x89PNG"}
    assert set(api.files()) <= good


async def test_hostile_forms_are_refused(api: Photos) -> None:
    headers = api.auth("tech-a")
    no_file = await api.client.post(f"{API}/photos", data={"note": "x"}, files=[], headers=headers)
    assert_problem(no_file, 415)  # a urlencoded form is not multipart
    just_fields = form(("note", None, "text/plain", b"no file here"))
    kind = f"multipart/form-data; boundary={BOUNDARY}"
    assert_problem(await api.raw("tech-a", just_fields, kind), 422, "no file")
    assert_problem(await api.raw("tech-a", png(), "multipart/form-data"), 400, "boundary")
    cut = form(("file", "a.png", "image/png", png()))[:-12]
    assert_problem(await api.raw("tech-a", cut, kind), 400, "final delimiter")
    assert_problem(await api.raw("tech-a", png(), "text/plain"), 415)
    assert_problem(await api.raw("tech-a", b"", "image/png"), 422, "empty")
    empty_fields = form(
        *[("x", None, "text/plain", b"")] * 100, ("file", "a.png", "image/png", png())
    )
    assert_problem(await api.raw("tech-a", empty_fields, kind), 413, "other fields")
    long_field = form(
        ("note", None, "text/plain", b"x" * 70_000), ("f", "a.png", "image/png", png())
    )
    assert_problem(await api.raw("tech-a", long_field, kind), 413, "other fields")
    assert await photo_rows(api) == []
    assert [p for p in api.files() if INCOMING not in p.parts] == []
    assert [p for p in api.files() if INCOMING in p.parts] == []  # temporary files dropped


async def test_an_oversize_body_is_refused_while_it_streams(api: Photos) -> None:
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        yield png()[:16]
        for n in range(1000):  # 1 MB of which the server may read only past MAX_BYTES
            sent.append(n)
            yield b"\x00" * 1024

    response = await api.raw("tech-a", endless(), "image/png")
    assert_problem(response, 413, f"at most {MAX_BYTES} bytes")
    assert len(sent) < 10  # the rest was never read
    in_form = form(("file", "big.png", "image/png", png() + b"\x00" * MAX_BYTES))
    kind = f"multipart/form-data; boundary={BOUNDARY}"
    assert_problem(await api.raw("tech-a", in_form, kind), 413)
    # a Content-Length beyond the limit is refused before the body is read
    headers = {**api.auth("tech-a"), "Content-Type": "image/png", "Content-Length": "99999999"}
    declared = await api.client.post(f"{API}/photos", content=b"", headers=headers)
    assert_problem(declared, 413)
    assert api.files() == []
    assert await photo_rows(api) == []


async def test_a_photo_is_served_with_its_type_to_whom_may_see_it(api: Photos) -> None:
    data = jpeg()
    digest = await api.stored("tech-a", data)
    response = await api.read("tech-a", digest)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"].startswith("private")
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["etag"] == f'"{digest}"'
    headers = {**api.auth("tech-a"), "If-None-Match": f'"{digest}"'}
    cached = await api.client.get(f"{API}/photos/{digest}", headers=headers)
    assert (cached.status_code, cached.content) == (304, b"")
    headers = {**api.auth("op-b"), "If-None-Match": f'"{digest}"'}
    assert_problem(await api.client.get(f"{API}/photos/{digest}", headers=headers), 404)
    for user in ["op-a", "sup-a", "admin"]:  # the uploader's company, and an admin
        assert (await api.read(user, digest)).status_code == 200, user
    for user in ["op-b", "resident-a", "street-officer"]:  # no order names it yet
        assert_problem(await api.read(user, digest), 404)
    assert_problem(await api.read("tech-a", sha(b"never uploaded")), 404)


async def test_a_bad_hash_reads_nothing(api: Photos) -> None:
    digest = await api.stored("tech-a", png())
    for path in [
        "..%2F..%2Fsteward.db",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "../../../etc/passwd",
        f"..%2F{digest[:2]}%2F{digest[2:4]}%2F{digest}",
        digest.upper(),
        "z" * 64,
        "abc",
        digest + "0",
    ]:
        response = await api.client.get(f"{API}/photos/{path}", headers=api.auth("admin"))
        assert response.status_code in {404, 422}, (path, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON, path


async def test_evidence_opens_a_photo_to_the_people_of_the_order(api: Photos) -> None:
    before = await api.stored("resident-a", png(salt=b"before"))
    request = await api.post(
        "resident-a", "/requests", {"text": "Leaking pipe", "category": "water", "photos": [before]}
    )
    assert request.status_code == 201, request.text
    order = request.json()["id"]
    after = await api.stored("tech-a", png(salt=b"after"))
    steps: list[tuple[str, dict[str, Any]]] = [
        ("op-a", {"action": "accept"}),
        ("op-a", {"action": "dispatch", "assignee": "tech-a"}),
        ("tech-a", {"action": "start"}),
        ("tech-a", {"action": "submit", "result": "fixed", "photos": [after]}),
    ]
    for user, body in steps:
        response = await api.post(user, f"/work-orders/{order}/actions", body)
        assert response.status_code == 200, response.text

    # the resident sees the technician's photo on their request; another resident sees neither
    assert (await api.read("resident-a", after)).content == png(salt=b"after")
    for digest in (before, after):
        assert_problem(await api.read("resident-a2", digest), 404)
        assert (await api.read("op-a", digest)).status_code == 200
        assert_problem(await api.read("op-b", digest), 404)
    # an area officer sees the evidence of the orders within the area only
    assert request.json()["location"] == "d1/s1/c1/g1/b1"  # the resident's own
    assert (await api.read("street-officer", after)).status_code == 200
    assert_problem(await api.read("far-officer", after), 404)


async def test_actions_and_requests_name_only_uploaded_photos(api: Photos) -> None:
    mine = await api.stored("resident-a", png(salt=b"mine"))
    theirs = await api.stored("op-b", png(salt=b"theirs"))
    never = sha(b"never uploaded")
    for photo, detail in [
        (never, "no uploaded photo"),
        (theirs, "no uploaded photo"),  # another company's: not the resident's to attach
        ("sha256:aa", "not photo hashes"),
        ("../" + never[3:], "not photo hashes"),
    ]:
        response = await api.post("resident-a", "/requests", {"text": "x", "photos": [photo]})
        assert_problem(response, 422, detail)
    ok = await api.post("resident-a", "/requests", {"text": "Broken door", "photos": [mine]})
    assert ok.status_code == 201, ok.text
    order = ok.json()["id"]
    comment = {"action": "comment", "comment": "see", "photos": [never]}
    assert_problem(await api.post("op-a", f"/work-orders/{order}/actions", comment), 422)
    comment["photos"] = [mine]  # the company's staff may attach what they see
    response = await api.post("op-a", f"/work-orders/{order}/actions", comment)
    assert response.status_code == 200, response.text
    async with api.app.state.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(photos))
    assert count == 2
