"""Reading one row for an endpoint: the row, or the 404 problem a client gets for an unknown one.

A row outside the caller's scope is filtered out by the query itself (`auth/scope.py`), so it is
answered exactly as an unknown one.
"""

from __future__ import annotations

from fastapi import HTTPException
from sqlalchemy import Executable
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection


async def one_or_404(conn: AsyncConnection, query: Executable, missing: str) -> RowMapping:
    """The single row `query` selects, or `HTTPException(404, missing)` when there is none."""
    row = (await conn.execute(query)).mappings().one_or_none()
    if row is None:
        raise HTTPException(404, missing)
    return row
