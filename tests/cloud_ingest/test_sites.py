"""The site tree: CSV imports of sites and devices (all rows or none) and `GET /api/v1/sites`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from cloud_ingest.auth.service import add_user
from cloud_ingest.cli import main
from cloud_ingest.infra.config import load_settings
from cloud_ingest.infra.db import create_engine
from cloud_ingest.infra.schema import devices, sites
from cloud_ingest.main import create_app
from cloud_ingest.problems import PROBLEM_JSON
from cloud_ingest.registry.csv_import import parse_devices, parse_sites
from cloud_ingest.registry.imports import import_sites

EXAMPLES = Path(__file__).parents[2] / "docs" / "examples"
LOTUS = "huangpu/nanjing-e/xinhua/g01/lotus"
PINE = "huangpu/nanjing-e/xinhua/g02/pine"


def rows(url: str, table: Any) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                result = await conn.execute(select(table))
                return [dict(r) for r in result.mappings()]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def cli(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--db", url])
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- imports ----------------------------------------------------------------------------------


def test_example_files_import_cleanly_and_again_change_nothing(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, db_url, "db", "upgrade")[0] == 0
    code, out, err = cli(capsys, db_url, "sites", "import", str(EXAMPLES / "sites.csv"))
    assert (code, err) == (0, ""), err
    assert out.count("created site ") == 14
    assert out.splitlines()[-1].endswith("imported: 14 created, 0 updated, 0 unchanged")
    stored = {r["path"]: r for r in rows(db_url, sites)}
    assert stored["huangpu"]["parent"] is None
    assert stored[f"{LOTUS}/b1/u1"]["parent"] == f"{LOTUS}/b1"
    assert (stored[f"{LOTUS}/b1/u1"]["level"], stored[f"{LOTUS}/b1/u1"]["name"]) == (
        "unit",
        "1单元",
    )
    # the compound's company passes down; the shared levels have none
    assert stored[f"{LOTUS}/b1/u1"]["company"] == "greenleaf-pm"
    assert stored["huangpu/nanjing-e/xinhua/g01"]["company"] == ""
    assert stored[LOTUS]["plan"] == {"x": 0, "y": 0, "w": 240, "h": 160}
    assert stored[f"{LOTUS}/b1/u1"]["plan"] is None

    code, out, _ = cli(capsys, db_url, "sites", "import", str(EXAMPLES / "sites.csv"))
    assert code == 0
    assert out.splitlines() == [
        f"{EXAMPLES / 'sites.csv'}: imported: 0 created, 0 updated, 14 unchanged"
    ]

    for gateway in ("gw-lotus", "gw-pine"):
        assert cli(capsys, db_url, "gateways", "add", gateway, "--company", "greenleaf-pm")[0] == 0
    code, out, err = cli(capsys, db_url, "devices", "import", str(EXAMPLES / "devices.csv"))
    assert (code, err) == (0, ""), err
    assert out.count("created device ") == 13
    stored_devices = {r["id"]: r for r in rows(db_url, devices)}
    kinds = {r["kind"] for r in stored_devices.values()}
    assert kinds == {"smoke", "manhole", "bin", "perimeter"}
    smoke = stored_devices["smoke-lotus-b1-u1-301"]
    assert (smoke["gateway_id"], smoke["location"]) == ("gw-lotus", f"{LOTUS}/b1/u1")
    assert smoke["labels"] == {"room": "301", "floor": "3"}
    assert (smoke["plan_x"], smoke["plan_y"]) == (30.0, 30.0)
    code, out, _ = cli(capsys, db_url, "devices", "import", str(EXAMPLES / "devices.csv"))
    assert code == 0
    assert out.splitlines()[-1].endswith("0 created, 0 updated, 13 unchanged")

    # an edited file updates what changed; a file without the optional columns keeps them
    renamed = (EXAMPLES / "sites.csv").read_text(encoding="utf-8").replace("荷花苑", "荷花园")
    code, out, _ = cli(capsys, db_url, "sites", "import", write(tmp_path, "s.csv", renamed))
    assert out.splitlines()[0] == f"updated site {LOTUS}"
    assert out.splitlines()[-1].endswith("0 created, 1 updated, 13 unchanged")
    moved = f"id,gateway,kind,location\nsmoke-lotus-b1-u1-301,gw-lotus,smoke,{LOTUS}/b2/u1\n"
    code, out, _ = cli(capsys, db_url, "devices", "import", write(tmp_path, "d.csv", moved))
    assert out.splitlines()[0] == "updated device smoke-lotus-b1-u1-301"
    smoke = next(r for r in rows(db_url, devices) if r["id"] == "smoke-lotus-b1-u1-301")
    assert smoke["location"] == f"{LOTUS}/b2/u1"
    assert smoke["labels"] == {"room": "301", "floor": "3"}
    assert (smoke["plan_x"], smoke["plan_y"]) == (30.0, 30.0)


BAD_SITES = """\
path,level,name,company,plan_x,plan_y,plan_w,plan_h
d1,district,District One,,,,,
d1/s1,street,Street,,,,,
d9/s1,street,Orphan,,,,,
d1/s1/c1,grid,Wrong level,,,,,
d1//c2,community,Empty segment,,,,,
d1/s1/c3,community,,,,,,
d1/s1/c4,community,Half a plan,,1,2,,
d1/s1/c5,community,Bad number,,1,2,three,4
d1/s1,street,Again,,,,,
d1/s1/c6,community,Too few cells
d1/s1/c7,hamlet,Unknown level,,,,,
d1/s1/c8,community,Fine,,,,,
"""


def test_a_sites_file_with_bad_rows_reports_every_one_and_imports_nothing(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, db_url, "db", "upgrade")[0] == 0
    file = write(tmp_path, "sites.csv", BAD_SITES)
    code, out, err = cli(capsys, db_url, "sites", "import", file)
    assert (code, out) == (2, "")
    lines = err.splitlines()
    prefix = f"cloud-ingest sites import: error: {file}:"
    assert all(line.startswith(prefix) for line in lines[:-1]), err
    reasons = [line.removeprefix(prefix) for line in lines]
    assert [r.split(":", 1)[0] for r in reasons[:-1]] == [
        str(n) for n in (4, 5, 6, 7, 8, 9, 10, 11, 12)
    ]
    assert "parent d9 is neither in the file nor stored" in reasons[0]
    assert "is a community by its depth" in reasons[1]
    assert "empty segment" in reasons[2]
    assert "name is empty" in reasons[3]
    assert "fill all of them or none" in reasons[4]
    assert "'three' is not a number" in reasons[5]
    assert "repeats line 3" in reasons[6]
    assert "the header has 8 columns" in reasons[7]
    assert "unknown level 'hamlet'" in reasons[8]
    assert lines[-1].endswith("nothing imported: 9 problem(s) in " + file)
    assert rows(db_url, sites) == []

    code, _, err = cli(capsys, db_url, "sites", "import", "--dry-run", file)
    assert code == 2
    header = write(tmp_path, "h.csv", "path,name,colour\nd1,x,red\n")
    code, _, err = cli(capsys, db_url, "sites", "import", header)
    assert code == 2
    assert f"{header}:1: missing column(s) level" in err
    assert "unknown column(s) 'colour'" in err
    latin = tmp_path / "latin.csv"
    latin.write_bytes("path,level,name\nd1,district,Zürich\n".encode("latin-1"))
    code, _, err = cli(capsys, db_url, "sites", "import", str(latin))
    assert code == 2
    assert "not UTF-8" in err
    assert err.count("\n") == 1
    assert rows(db_url, sites) == []


def test_a_devices_file_with_bad_rows_reports_every_one_and_imports_nothing(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, db_url, "db", "upgrade")[0] == 0
    for gateway in ("gw-a", "gw-b"):
        assert cli(capsys, db_url, "gateways", "add", gateway, "--company", "A")[0] == 0
    good = write(tmp_path, "good.csv", "id,gateway,kind,location\ndev-1,gw-a,smoke,d1/s1\n")
    assert cli(capsys, db_url, "devices", "import", good)[0] == 0
    bad = write(
        tmp_path,
        "devices.csv",
        "id,gateway,kind,location,labels,plan_x,plan_y\n"
        "dev-2,gw-a,bin,d1/s1,stream=kitchen,1,2\n"
        "dev-1,gw-b,smoke,d1/s1,,,\n"
        "dev-3,gw-z,smoke,d1/s1,,,\n"
        "dev-4,gw-a,toaster,d1/s1,,,\n"
        "dev-5,gw-a,smoke,d1/s1,room,,\n"
        "dev-6,gw-a,smoke,d1/s1,,7,\n"
        "dev-2,gw-a,bin,d1/s1,,,\n"
        "dev 7,gw-a,smoke,d1/s1,,,\n"
        "dev-8,gw-a,smoke,d1/ /x,,,\n"
        "dev-9,gw-a,smoke,d1/s1,a=1;a=2,,\n",
    )
    code, out, err = cli(capsys, db_url, "devices", "import", bad)
    assert (code, out) == (2, "")
    prefix = f"cloud-ingest devices import: error: {bad}:"
    reasons = [line.removeprefix(prefix) for line in err.splitlines()]
    assert [r.split(":", 1)[0] for r in reasons[:-1]] == [str(n) for n in range(3, 12)]
    assert "registered to gateway 'gw-a', not 'gw-b'" in reasons[0]
    assert "no gateway 'gw-z'" in reasons[1]
    assert "unknown device kind 'toaster'" in reasons[2]
    assert "'room' is not key=value" in reasons[3]
    assert "fill all of them or none" in reasons[4]
    assert "repeats line 2" in reasons[5]
    assert "space" in reasons[6]
    assert "surrounding spaces" in reasons[7] or "empty segment" in reasons[7]
    assert "given twice" in reasons[8]
    assert err.splitlines()[-1].endswith("nothing imported: 9 problem(s) in " + bad)
    assert [r["id"] for r in rows(db_url, devices)] == ["dev-1"]


def test_import_commands_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("sites", "devices"):
        with pytest.raises(SystemExit) as exited:
            main([command, "import", "--help"])
        assert exited.value.code == 0
        text = capsys.readouterr().out
        assert "FILE:LINE" in text
        assert "--dry-run" in text


def test_parsing_is_pure_and_keeps_the_line_numbers() -> None:
    parsed = parse_sites("\ufeffPath,Level,Name\n\nd1,district,D\nd1/s1,street,S\n")
    assert parsed.errors == []
    assert [(r.line, r.path, r.level, r.company, r.plan_given) for r in parsed.rows] == [
        (3, "d1", "district", None, False),
        (4, "d1/s1", "street", None, False),
    ]
    parsed_devices = parse_devices(
        'id,gateway,kind,location,labels\nd-1,gw-1,SMOKE,/a/b/,"room = 3 ; floor=1;"\n'
    )
    (row,) = parsed_devices.rows
    assert (row.kind, row.location, row.labels, row.plan_given) == (
        "smoke",
        "a/b",
        {"room": "3", "floor": "1"},
        False,
    )


# --- GET /api/v1/sites ------------------------------------------------------------------------

USERS = {
    "admin": ("admin", None, None),
    "op": ("operator", "greenleaf-pm", None),
    "tech-lotus": ("technician", "greenleaf-pm", LOTUS),
    "sup-grid2": ("supervisor", "greenleaf-pm", "huangpu/nanjing-e/xinhua/g02"),
    "op-b": ("operator", "B", None),
    "resident": ("resident", "greenleaf-pm", LOTUS),
}
B_SITES = f"""\
path,level,name,company
{PINE}/b9,building,Somebody else's,B
{PINE}/b9/u1,unit,Unit,
"""


@dataclass
class World:
    client: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)

    async def get(self, user: str, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return await self.client.get(path, params=params, headers=headers)

    async def ok(self, user: str, path: str, **params: Any) -> Any:
        response = await self.get(user, path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    async def paths(self, user: str, **params: Any) -> list[str]:
        found: list[str] = []
        after: str | None = None
        for _ in range(100):
            extra = {"after": after} if after else {}
            page = await self.ok(user, "/api/v1/sites", **params, **extra)
            found += [item["path"] for item in page["items"]]
            after = page["next"]
            if after is None:
                return found
        raise AssertionError("pages never ended")


@asynccontextmanager
async def sites_world(url: str) -> AsyncIterator[World]:
    app: FastAPI = create_app(
        load_settings(environ={}, flags={"database_url": url, "migrate_on_start": True})
    )
    lifespan: AbstractAsyncContextManager[None] = app.router.lifespan_context(app)  # type: ignore[assignment]
    async with lifespan:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            engine = app.state.engine
            text = (EXAMPLES / "sites.csv").read_text(encoding="utf-8")
            await import_sites(engine, parse_sites(text))
            await import_sites(engine, parse_sites(B_SITES))
            world = World(client)
            for name, (role, company, area) in USERS.items():
                world.tokens[name] = await add_user(
                    engine, name, role=role, company=company, area=area
                )
            yield world


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    async with sites_world(db_url) as built:
        yield built


async def test_sites_are_listed_by_path_filtered_and_scoped(world: World) -> None:
    everything = await world.paths("admin", limit=4)
    assert everything == sorted(everything)
    assert len(everything) == 16
    assert await world.paths("admin") == everything

    shared = ["huangpu", "huangpu/nanjing-e", "huangpu/nanjing-e/xinhua"]
    shared += ["huangpu/nanjing-e/xinhua/g01", "huangpu/nanjing-e/xinhua/g02"]
    own = [p for p in everything if p.startswith((LOTUS, PINE)) and "/b9" not in p]
    assert await world.paths("op") == sorted(shared + own)
    assert await world.paths("op-b") == sorted([*shared, f"{PINE}/b9", f"{PINE}/b9/u1"])
    # an area: its subtree and the way down to it
    lotus = [p for p in everything if p.startswith(LOTUS)]
    assert await world.paths("tech-lotus") == sorted(shared[:4] + lotus)
    assert await world.paths("sup-grid2") == sorted(
        [*shared[:3], shared[4], PINE, f"{PINE}/b1", f"{PINE}/b1/u1"]
    )

    assert await world.paths("admin", parent=LOTUS) == [f"{LOTUS}/b1", f"{LOTUS}/b2"]
    assert await world.paths("admin", parent="") == ["huangpu"]
    assert await world.paths("op", level="unit") == [
        f"{LOTUS}/b1/u1",
        f"{LOTUS}/b1/u2",
        f"{LOTUS}/b2/u1",
        f"{PINE}/b1/u1",
    ]
    assert await world.paths("tech-lotus", parent="huangpu/nanjing-e/xinhua") == [
        "huangpu/nanjing-e/xinhua/g01"
    ]
    page = await world.ok("op", "/api/v1/sites", parent=LOTUS)
    first = page["items"][0]
    assert set(first) == {"path", "parent", "level", "name", "company", "plan", "updated_at"}
    assert (first["parent"], first["level"], first["name"], first["company"]) == (
        LOTUS,
        "building",
        "1号楼",
        "greenleaf-pm",
    )
    assert first["plan"] == {"x": 20, "y": 20, "w": 60, "h": 30}
    assert first["updated_at"].endswith("+00:00")


async def test_one_site_with_its_visible_children(world: World) -> None:
    xinhua = await world.ok("op", "/api/v1/sites/huangpu/nanjing-e/xinhua")
    assert (xinhua["name"], xinhua["level"], xinhua["children"]) == ("新华社区", "community", 2)
    assert (await world.ok("tech-lotus", "/api/v1/sites/huangpu/nanjing-e/xinhua"))["children"] == 1
    pine = f"/api/v1/sites/{PINE}"
    assert (await world.ok("admin", pine))["children"] == 2
    assert (await world.ok("op", pine))["children"] == 1
    assert (await world.ok("op", f"/api/v1/sites/{LOTUS}/b1/u1"))["children"] == 0
    assert (await world.ok("op", "/api/v1/sites/huangpu%2Fnanjing-e"))["name"] == "南京东路街道"
    for user, path in [
        ("tech-lotus", pine),
        ("op-b", f"/api/v1/sites/{LOTUS}"),
        ("op", f"/api/v1/sites/{PINE}/b9"),
        ("admin", "/api/v1/sites/huangpu/nowhere"),
    ]:
        response = await world.get(user, path)
        assert response.status_code == 404, (user, path)
        assert response.headers["content-type"] == PROBLEM_JSON


async def test_sites_need_a_staff_role_and_a_known_level(world: World) -> None:
    for path in ["/api/v1/sites", f"/api/v1/sites/{LOTUS}"]:
        response = await world.get("resident", path)
        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM_JSON
    for params, status in [({"level": "hamlet"}, 422), ({"after": "WzFd"}, 400)]:
        response = await world.get("admin", "/api/v1/sites", **params)
        assert response.status_code == status
        assert response.headers["content-type"] == PROBLEM_JSON
    assert (await world.client.get("/api/v1/sites")).status_code == 401
