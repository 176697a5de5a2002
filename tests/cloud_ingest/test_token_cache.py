"""The token cache of `user_for_token`: fresh users without a read, revocations within the TTL."""

from __future__ import annotations

import pytest
from sqlalchemy import event, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.auth import service
from cloud_ingest.auth.service import TokenCache, add_user, user_for_token
from cloud_ingest.gateways.secrets import token_hash
from cloud_ingest.infra.schema import users


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> tuple[TokenCache, Clock]:
    """The process's token cache, replaced by one on a clock the test moves."""
    clock = Clock()
    cache = TokenCache(ttl=2.0, clock=clock)
    monkeypatch.setattr(service, "token_cache", cache)
    return cache, clock


def count_user_reads(engine: AsyncEngine) -> list[str]:
    reads: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def remember(_c: Connection, _cur: object, statement: str, *_args: object) -> None:
        if "FROM users" in statement:
            reads.append(statement)

    return reads


async def test_a_token_is_read_once_within_the_ttl(
    engine: AsyncEngine, cache: tuple[TokenCache, Clock]
) -> None:
    _, clock = cache
    token = await add_user(engine, "op", role="operator", company="A")
    reads = count_user_reads(engine)
    first = await user_for_token(engine, token)
    clock.now += 1.9
    again = await user_for_token(engine, token)
    assert first == again
    assert first is not None
    assert first.name == "op"
    assert len(reads) == 1
    clock.now += 0.2  # past the TTL: read again
    assert await user_for_token(engine, token) == first
    assert len(reads) == 2


async def test_a_revoked_token_stops_working_within_the_ttl(
    engine: AsyncEngine, cache: tuple[TokenCache, Clock]
) -> None:
    _, clock = cache
    token = await add_user(engine, "op", role="operator", company="A")
    assert await user_for_token(engine, token) is not None
    # another process revokes it (the row changes behind this process's back)
    async with engine.begin() as conn:
        await conn.execute(
            update(users).where(users.c.name == "op").values(token_hash=token_hash("other"))
        )
    assert await user_for_token(engine, token) is not None  # cached, for at most the TTL
    clock.now += 2.0
    assert await user_for_token(engine, token) is None


async def test_rotating_in_this_process_takes_effect_at_once(
    engine: AsyncEngine, cache: tuple[TokenCache, Clock]
) -> None:
    token = await add_user(engine, "op", role="operator", company="A")
    assert await user_for_token(engine, token) is not None
    rotated = await add_user(engine, "op", role="supervisor", company=None, rotate=True)
    assert await user_for_token(engine, token) is None
    user = await user_for_token(engine, rotated)
    assert user is not None
    assert user.role == "supervisor"


async def test_unknown_tokens_are_not_cached(
    engine: AsyncEngine, cache: tuple[TokenCache, Clock]
) -> None:
    reads = count_user_reads(engine)
    for _ in range(3):
        assert await user_for_token(engine, "no-such-token") is None
    assert len(reads) == 3
