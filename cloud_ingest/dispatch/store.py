"""The dispatch tables, read for a user or for an order: who sees which rows, and the candidates.

Every function runs on the caller's connection. Teams, technicians, shifts and equipment belong to
one company: its staff see them (a technician: only their own shifts), an administrator every
company's, an area officer the teams whose area lies within theirs and nothing else. A loan is seen
by both companies, the lender's and the borrower's (a technician: the loans that lend them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.scope import normal_path, within
from cloud_ingest.dispatch.assign import Candidate, Shift
from cloud_ingest.dispatch.pool import LoanKind, LoanState
from cloud_ingest.infra.schema import (
    loans,
    shifts,
    teams,
    technicians,
    users,
    work_order_events,
    work_orders,
)
from cloud_ingest.work_orders.lifecycle import Action, State

LOADED_STATES: Final = (State.DISPATCHED.value, State.IN_PROGRESS.value, State.ON_HOLD.value)
"""An order in these states counts toward its assignee's open load."""


def company_rows(
    user: User, company: ColumnElement[str], area: ColumnElement[str] | None = None
) -> ColumnElement[bool]:
    """The rows of a company table `user` sees (`area`: the row's site path, for area officers)."""
    if user.sees_everything:
        return true()
    if user.is_area_officer:
        if area is None or not normal_path(user.area):
            return false()
        return within(area, user.area)
    return company == user.company


def shift_rows(user: User) -> ColumnElement[bool]:
    """The shifts `user` sees: a technician only their own."""
    if user.role is Role.TECHNICIAN and not user.sees_everything:
        return and_(shifts.c.company == user.company, shifts.c.technician == user.name)
    return company_rows(user, shifts.c.company)


def loan_rows(user: User) -> ColumnElement[bool]:
    """The loans `user` sees: their company's as lender or borrower; a technician, those of them."""
    if user.sees_everything:
        return true()
    if not user.company:
        return false()
    if user.role is Role.TECHNICIAN:
        return loans.c.technician == user.name
    return or_(loans.c.lender == user.company, loans.c.borrower == user.company)


async def user_row(conn: AsyncConnection, name: str) -> dict[str, Any] | None:
    """The user called `name` (role, company, area), or None."""
    row = (
        (
            await conn.execute(
                select(users.c.name, users.c.role, users.c.company, users.c.area).where(
                    users.c.name == name
                )
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


async def technician_row(conn: AsyncConnection, name: str) -> dict[str, Any] | None:
    """The registered technician `name`, or None."""
    row = (await conn.execute(select(technicians).where(technicians.c.name == name))).mappings()
    found = row.first()
    return None if found is None else dict(found)


async def approved_loan(
    conn: AsyncConnection, technician: str, *, lender: str, borrower: str, order_id: int
) -> int | None:
    """The approved loan lending `technician` to `borrower` for the order (or open-ended), or None.

    A loan for this very order is preferred to an open-ended one, then the oldest.
    """
    query = (
        select(loans.c.id)
        .where(
            loans.c.kind == LoanKind.TECHNICIAN.value,
            loans.c.technician == technician,
            loans.c.lender == lender,
            loans.c.borrower == borrower,
            loans.c.state == LoanState.APPROVED.value,
            or_(loans.c.order_id == order_id, loans.c.order_id.is_(None)),
        )
        .order_by(loans.c.order_id.is_(None), loans.c.id)
        .limit(1)
    )
    found = (await conn.execute(query)).scalar_one_or_none()
    return None if found is None else int(found)


async def rejected_by(conn: AsyncConnection, order_id: int) -> frozenset[str]:
    """The people who rejected the order (not chosen again by automatic assignment)."""
    rows = await conn.execute(
        select(work_order_events.c.actor).where(
            work_order_events.c.order_id == order_id,
            work_order_events.c.action == Action.REJECT.value,
        )
    )
    return frozenset(str(actor) for (actor,) in rows)


async def candidates(
    conn: AsyncConnection,
    order: dict[str, Any],
    at: datetime,
    team_id: int | None = None,
) -> list[Candidate]:
    """Every technician who might take `order` at `at`, with their shifts then and open load.

    The company's own (of `team_id` only, if given) and, without a team, those lent to it by
    approved loans for the order or open-ended.
    """
    company = str(order["company"])
    query = (
        select(
            technicians.c.name,
            technicians.c.company,
            technicians.c.team_id,
            technicians.c.skills,
            technicians.c.active,
            teams.c.area,
            teams.c.categories,
            teams.c.active.label("team_active"),
        )
        .join(teams, teams.c.id == technicians.c.team_id)
        .where(technicians.c.company == company)
    )
    if team_id is not None:
        query = query.where(technicians.c.team_id == team_id)
    own = [(dict(r), None) for r in (await conn.execute(query)).mappings()]
    lent: list[tuple[dict[str, Any], int | None]] = []
    if team_id is None:
        lent = await _lent(conn, company, int(order["id"]))
    rows = own + lent
    names = sorted({str(r["name"]) for r, _ in rows})
    duty = await _on_duty(conn, names, at)
    load = await open_loads(conn, names)
    return [
        Candidate(
            name=str(r["name"]),
            company=str(r["company"]),
            team_id=None if r["team_id"] is None else int(r["team_id"]),
            area=str(r["area"] or ""),
            team_categories=frozenset(r["categories"] or ()),
            skills=frozenset(r["skills"] or ()),
            shifts=tuple(duty.get(str(r["name"]), ())),
            open_load=load.get(str(r["name"]), 0),
            active=bool(r["active"]) and bool(r["team_active"]),
            loan_id=loan_id,
        )
        for r, loan_id in rows
    ]


async def _lent(
    conn: AsyncConnection, borrower: str, order_id: int
) -> list[tuple[dict[str, Any], int | None]]:
    """Technicians lent to `borrower` for the order or open-ended: (their row, the loan's id)."""
    query = (
        select(
            loans.c.id.label("loan_id"),
            loans.c.technician.label("name"),
            loans.c.lender.label("company"),
            technicians.c.team_id,
            technicians.c.skills,
            technicians.c.active,
            teams.c.area,
            teams.c.categories,
            teams.c.active.label("team_active"),
        )
        .outerjoin(technicians, technicians.c.name == loans.c.technician)
        .outerjoin(teams, teams.c.id == technicians.c.team_id)
        .where(
            loans.c.kind == LoanKind.TECHNICIAN.value,
            loans.c.borrower == borrower,
            loans.c.state == LoanState.APPROVED.value,
            or_(loans.c.order_id == order_id, loans.c.order_id.is_(None)),
        )
        .order_by(loans.c.order_id.is_(None), loans.c.id)
    )
    found: dict[str, tuple[dict[str, Any], int | None]] = {}
    for row in (await conn.execute(query)).mappings():
        values = dict(row)
        for key, default in (("active", True), ("team_active", True), ("area", "")):
            if values[key] is None:
                values[key] = default
        found.setdefault(str(values["name"]), (values, int(values["loan_id"])))
    return list(found.values())


async def _on_duty(
    conn: AsyncConnection, names: Sequence[str], at: datetime
) -> dict[str, list[Shift]]:
    if not names:
        return {}
    rows = await conn.execute(
        select(shifts.c.technician, shifts.c.starts_at, shifts.c.ends_at).where(
            shifts.c.technician.in_(list(names)),
            shifts.c.starts_at <= at,
            shifts.c.ends_at > at,
        )
    )
    duty: dict[str, list[Shift]] = {}
    for name, starts_at, ends_at in rows:
        duty.setdefault(str(name), []).append(Shift(starts_at, ends_at))
    return duty


async def open_loads(conn: AsyncConnection, names: Sequence[str]) -> dict[str, int]:
    """How many orders dispatched to each of `names` are not yet submitted."""
    if not names:
        return {}
    rows = await conn.execute(
        select(work_orders.c.assignee, func.count())
        .where(
            work_orders.c.assignee.in_(list(names)),
            work_orders.c.state.in_(LOADED_STATES),
        )
        .group_by(work_orders.c.assignee)
    )
    return {str(name): int(count) for name, count in rows}
