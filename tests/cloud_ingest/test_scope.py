"""Row scoping: the SQL filter `visible` and its Python twin `user_sees` agree, on both databases.

A table of users (admin, company users with and without an area, area officers without a
company) against rows of three companies at locations chosen to trip prefix matching (`d1/s10`
is not within `d1/s1`, `_` and `%` are plain characters, the empty location is nowhere in
particular). Every user's rows are computed three ways: `visible` through the row's gateway,
`visible` through a company column, and `user_sees` in Python; the three must be equal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest
from sqlalchemy import Select, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.scope import site_visible, topic_of_company, user_sees, visible
from cloud_ingest.infra.db import create_engine
from cloud_ingest.infra.schema import dead_letters, devices, gateways, metadata, sites

NOW: Final = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

GATEWAYS: Final = {"gw-a": ("A", "d1/s1"), "gw-b": ("B", "d1/s2"), "gw-0": ("", "d1/s1/c1")}
"""id: (company, site)."""

LOCATIONS: Final = [
    "",
    "d1",
    "d1/s1",
    "d1/s1/c1",
    "d1/s1/c1/g1",
    "d1/s10/c1",
    "d1/s1_x/c1",
    "d1/s1%/c1",
    "d1/s2/c1",
    "d2/s1/c1",
]

USERS: Final = [
    User("admin", Role.ADMIN, "", ""),
    User("op-a", Role.OPERATOR, "A", ""),
    User("tech-a-s1", Role.TECHNICIAN, "A", "d1/s1"),
    User("res-a-g1", Role.RESIDENT, "A", "d1/s1/c1/g1"),
    User("op-b-d2", Role.OPERATOR, "B", "d2"),
    User("op-c", Role.OPERATOR, "C", ""),
    User("street-officer", Role.SUPERVISOR, "", "d1/s1"),
    User("district-officer", Role.SUPERVISOR, "", "d1"),
    User("grid-member", Role.OPERATOR, "", "d1/s1/c1/g1"),
    User("odd-officer", Role.OPERATOR, "", "d1/s1_x"),
    User("officer-without-area", Role.OPERATOR, "", ""),
]


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a database holding the gateways, devices and sites of the table."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/scope.db"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(
                metadata.create_all, tables=[gateways, devices, sites, dead_letters]
            )
            await conn.execute(
                insert(gateways),
                [
                    {"id": gw, "company": company, "site": site, "created_at": NOW}
                    for gw, (company, site) in GATEWAYS.items()
                ],
            )
            await conn.execute(
                insert(devices),
                [
                    {
                        "id": f"{gw}:{location}",
                        "gateway_id": gw,
                        "location": location,
                        "labels": {},
                        "first_seen": NOW,
                        "last_seen": NOW,
                    }
                    for gw in GATEWAYS
                    for location in LOCATIONS
                ],
            )
        yield engine
    finally:
        await engine.dispose()


def _expected(user: User) -> set[str]:
    return {
        f"{gw}:{location}"
        for gw, (company, _) in GATEWAYS.items()
        for location in LOCATIONS
        if user_sees(user, company, location)
    }


async def _ids(engine: AsyncEngine, query: Select[Any]) -> set[str]:
    async with engine.connect() as conn:
        return {str(value) for value in (await conn.execute(query)).scalars()}


async def test_sql_and_python_scopes_agree(engine: AsyncEngine) -> None:
    d = devices.c
    for user in USERS:
        through_gateway = select(d.id).where(
            visible(user, gateway_id=d.gateway_id, location=d.location)
        )
        through_company = (
            select(d.id)
            .select_from(devices.join(gateways))
            .where(visible(user, company=gateways.c.company, location=d.location))
        )
        expected = _expected(user)
        assert await _ids(engine, through_gateway) == expected, user.name
        assert await _ids(engine, through_company) == expected, user.name


async def test_the_table_says_what_each_user_sees(engine: AsyncEngine) -> None:
    """The agreement above is not vacuous: spot checks of what the table's users see."""
    by_name = {user.name: user for user in USERS}
    everything = {f"{gw}:{loc}" for gw in GATEWAYS for loc in LOCATIONS}
    assert _expected(by_name["admin"]) == everything
    assert _expected(by_name["op-a"]) == {f"gw-a:{loc}" for loc in LOCATIONS}
    assert _expected(by_name["op-c"]) == set()
    in_street = ["d1/s1", "d1/s1/c1", "d1/s1/c1/g1"]
    # a company user with an area: their company, within the area
    assert _expected(by_name["tech-a-s1"]) == {f"gw-a:{loc}" for loc in in_street}
    # the street officer: every company's rows in the street, none outside it
    assert _expected(by_name["street-officer"]) == {
        f"{gw}:{loc}" for gw in GATEWAYS for loc in in_street
    }
    assert _expected(by_name["grid-member"]) == {f"{gw}:d1/s1/c1/g1" for gw in GATEWAYS}
    assert _expected(by_name["odd-officer"]) == {f"{gw}:d1/s1_x/c1" for gw in GATEWAYS}
    assert _expected(by_name["district-officer"]) == {
        f"{gw}:{loc}" for gw in GATEWAYS for loc in LOCATIONS if loc.startswith("d1")
    }
    assert _expected(by_name["officer-without-area"]) == set()
    d = devices.c
    query = select(d.id).where(
        visible(by_name["street-officer"], gateway_id=d.gateway_id, location=d.location)
    )
    assert await _ids(engine, query) == {f"{gw}:{loc}" for gw in GATEWAYS for loc in in_street}


async def test_gateways_without_a_location(engine: AsyncEngine) -> None:
    """Gateway rows: a company user sees the company's, an area officer those sited in the area."""
    g = gateways.c
    cases = {
        "admin": {"gw-a", "gw-b", "gw-0"},
        "op-a": {"gw-a"},
        "tech-a-s1": {"gw-a"},  # a company user's area does not hide the company's gateways
        "op-c": set(),
        "street-officer": {"gw-a", "gw-0"},
        "district-officer": {"gw-a", "gw-b", "gw-0"},
        "grid-member": set(),
        "officer-without-area": set(),
    }
    by_name = {user.name: user for user in USERS}
    for name, expected in cases.items():
        query = select(g.id).where(visible(by_name[name], gateway_id=g.id))
        assert await _ids(engine, query) == expected, name
        by_company = select(g.id).where(visible(by_name[name], company=g.company))
        if by_name[name].is_area_officer:  # a company column alone names no area
            assert await _ids(engine, by_company) == set(), name


async def test_sites_and_dead_letters(engine: AsyncEngine) -> None:
    """Sites: own and shared ones in the area and those above it; dead letters: company staff."""
    tree = [
        ("d1", "district", ""),
        ("d1/s1", "street", ""),
        ("d1/s1/c1", "community", ""),
        ("d1/s1/c1/g1", "grid", ""),
        ("d1/s1/c1/g1/k-a", "compound", "A"),
        ("d1/s1/c1/g1/k-b", "compound", "B"),
        ("d1/s2", "street", ""),
        ("d1/s2/c1", "community", ""),
    ]
    async with engine.begin() as conn:
        await conn.execute(
            insert(sites),
            [
                {
                    "path": path,
                    "parent": path.rpartition("/")[0] or None,
                    "level": level,
                    "name": path,
                    "company": company,
                    "updated_at": NOW,
                }
                for path, level, company in tree
            ],
        )
        await conn.execute(
            insert(dead_letters),
            [
                {
                    "topic": f"steward/v1/{gw}/up",
                    "reason": "bad_json",
                    "detail": "not JSON",
                    "payload": b"{",
                    "payload_size": 1,
                    "received_at": NOW,
                }
                for gw in GATEWAYS
            ],
        )
    by_name = {user.name: user for user in USERS}
    s = sites.c
    cases = {
        "op-a": {p for p, _, c in tree if c in {"", "A"}},
        "tech-a-s1": {"d1", "d1/s1", "d1/s1/c1", "d1/s1/c1/g1", "d1/s1/c1/g1/k-a"},
        "street-officer": {
            "d1",
            "d1/s1",
            "d1/s1/c1",
            "d1/s1/c1/g1",
            "d1/s1/c1/g1/k-a",
            "d1/s1/c1/g1/k-b",
        },
        "grid-member": {
            "d1",
            "d1/s1",
            "d1/s1/c1",
            "d1/s1/c1/g1",
            "d1/s1/c1/g1/k-a",
            "d1/s1/c1/g1/k-b",
        },
        "officer-without-area": set(),
    }
    for name, expected in cases.items():
        query = select(s.path).where(site_visible(by_name[name], path=s.path, company=s.company))
        assert await _ids(engine, query) == expected, name
    t = dead_letters.c
    for company, expected in [("A", {"steward/v1/gw-a/up"}), ("", set()), ("C", set())]:
        query = select(t.topic).where(topic_of_company(t.topic, company))
        assert await _ids(engine, query) == expected, company


def test_visible_takes_one_company_source() -> None:
    user = USERS[1]
    with pytest.raises(ValueError, match="not both"):
        visible(user, gateway_id=devices.c.gateway_id, company=gateways.c.company)
    with pytest.raises(ValueError, match="needs gateway_id or company"):
        visible(user, location=devices.c.location)
