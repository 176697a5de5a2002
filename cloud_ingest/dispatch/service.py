"""`Dispatch`: teams, technicians, rosters, equipment and the shared pool; and who takes an order.

**Registry.** A property company's supervisors (and administrators, naming the company) register
teams, each covering a grid (`area`) and some order categories; technicians (existing users of
role technician of the same company) in a team, with their skills; on-duty shifts; and equipment.
Staff read their company's rows; a technician reads their own shifts.

**Pool (人物拆借).** The borrowing company asks the lender for a technician or a piece of
equipment (`request_loan`), for one of its orders or open-ended; the lender's supervisor approves
or rejects it; either side returns it (`pool.py` has the lifecycle). A piece of equipment is lent
to one borrower at a time.

**Dispatch** (`prepare_dispatch`, called by `WorkOrders.act` on its transaction). A `dispatch`
without `assignee` (or with `team`) is assigned automatically (`assign.pick`: category, the team's
area, the roster at the clock's now, least open load). With `assignee` (a manual override) the
person must be a technician of the order's company, active if registered, or a technician lent to
it by an approved loan for this order or open-ended. The event's data then carries `assignee`,
`assignee_company` (the technician's own company) and `loan_id` (null unless borrowed), which
attribute lent work in the KPIs; a refusal is an `InvalidPayloadError` (`422`) naming why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.scope import normal_path, path_within
from cloud_ingest.clock import Clock, SystemClock
from cloud_ingest.dispatch import store
from cloud_ingest.dispatch.assign import NoCandidateError, OrderNeed, pick
from cloud_ingest.dispatch.pool import (
    IllegalLoanActionError,
    InvalidLoanError,
    LoanKind,
    LoanState,
    allowed_loan_actions,
    decide_loan,
    sides_of,
)
from cloud_ingest.dispatch.schemas import (
    EquipmentIn,
    LoanIn,
    ShiftIn,
    TeamIn,
    TeamPatch,
    TechnicianIn,
    TechnicianPatch,
)
from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import equipment, loans, shifts, teams, technicians, work_orders
from cloud_ingest.work_orders.lifecycle import (
    TRANSITIONS,
    Action,
    InvalidPayloadError,
    State,
)
from cloud_ingest.work_orders.store import visible_orders

SHIFT_MAX: Final = timedelta(days=7)
"""A shift longer than this is refused as a typing error."""
RANGE_MAX: Final = timedelta(days=62)
"""The widest time range one roster query may ask for."""


class DispatchError(Exception):
    """A dispatch request cannot be done; `str()` says why in one line."""


class NotFoundError(DispatchError):
    """No such row in the user's scope (`404`)."""


class ForbiddenError(DispatchError):
    """The user may not do this here (`403`)."""


class ConflictError(DispatchError):
    """The row exists already or is in use (`409`)."""


class InvalidError(DispatchError):
    """The request names something that does not fit (`422`)."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """Who an order is dispatched to, and how."""

    assignee: str
    assignee_company: str
    loan_id: int | None
    team_id: int | None
    mode: str
    """`manual` (an `assignee` was given) or `automatic`."""

    def data(self) -> dict[str, object]:
        """The fields of the dispatch event's data."""
        return {
            "assignee": self.assignee,
            "assignee_company": self.assignee_company,
            "loan_id": self.loan_id,
            "team": self.team_id,
            "assignment": self.mode,
        }


# --- dispatching an order (inside `WorkOrders.act`) ----------------------------------------------


async def prepare_dispatch(
    conn: AsyncConnection,
    order: Mapping[str, Any],
    action: str,
    user: User,
    payload: Mapping[str, object],
    *,
    now: datetime,
) -> tuple[Mapping[str, object], dict[str, object]]:
    """The payload to decide `action` with, and the dispatch event's extra data.

    Anything but a `dispatch` that applies (state and role) passes unchanged: the lifecycle
    refuses it in its words. Raises `InvalidPayloadError` when nobody may take the order.
    """
    rule = TRANSITIONS[Action.DISPATCH]
    if (
        action != Action.DISPATCH.value
        or State(order["state"]) not in rule.sources
        or user.role not in rule.roles
    ):
        return payload, {}
    team = payload.get("team")
    if team is not None and (not isinstance(team, int) or isinstance(team, bool)):
        raise InvalidPayloadError("'team' must be a team's id")
    name = payload.get("assignee")
    if name is not None and not isinstance(name, str):
        raise InvalidPayloadError("'assignee' must be a user's name")
    if name is not None and name.strip():
        chosen = await manual_assignment(conn, order, name.strip())
    else:
        chosen = await automatic_assignment(conn, order, now, team)
    return {**payload, "assignee": chosen.assignee}, chosen.data()


async def manual_assignment(
    conn: AsyncConnection, order: Mapping[str, Any], name: str
) -> Assignment:
    """`name` as the order's assignee, if they may take it (else `InvalidPayloadError`)."""
    person = await store.user_row(conn, name)
    if person is None or person["role"] != Role.TECHNICIAN.value:
        raise InvalidPayloadError(f"{name!r} is not a technician")
    registered = await store.technician_row(conn, name)
    if registered is not None and not registered["active"]:
        raise InvalidPayloadError(f"technician {name!r} is not active")
    team_id = None if registered is None else int(registered["team_id"])
    company, own = str(person["company"]), str(order["company"])
    if company == own:
        return Assignment(name, company, None, team_id, "manual")
    loan_id = await store.approved_loan(
        conn, name, lender=company, borrower=own, order_id=int(order["id"])
    )
    if loan_id is None:
        raise InvalidPayloadError(
            f"{name!r} is a technician of company {company!r}, not {own!r}, and is not lent "
            f"to {own!r} by an approved loan for this order"
        )
    return Assignment(name, company, loan_id, team_id, "manual")


async def automatic_assignment(
    conn: AsyncConnection, order: Mapping[str, Any], now: datetime, team: int | None = None
) -> Assignment:
    """The technician `assign.pick` chooses for the order at `now` (within `team`, if given)."""
    if team is not None:
        found = await conn.execute(
            select(teams.c.id).where(teams.c.id == team, teams.c.company == order["company"])
        )
        if found.first() is None:
            raise InvalidPayloadError(f"no team {team} of company {order['company']!r}")
    need = OrderNeed(
        company=str(order["company"]),
        category=str(order["category"]),
        location=str(order["location"]),
    )
    found_candidates = await store.candidates(conn, dict(order), now, team)
    excluded = await store.rejected_by(conn, int(order["id"]))
    try:
        chosen = pick(need, found_candidates, now, excluded)
    except NoCandidateError as err:
        raise InvalidPayloadError(str(err)) from None
    return Assignment(chosen.name, chosen.company, chosen.loan_id, chosen.team_id, "automatic")


# --- the registry and the pool ---------------------------------------------------------------------


def _company_for(user: User, given: str | None) -> str:
    """The company a new row belongs to: the user's own; an administrator must name one."""
    if user.sees_everything:
        if not given:
            raise InvalidError("an administrator names the 'company'")
        return given.strip()
    if given is not None and given.strip() != user.company:
        raise ForbiddenError("only an administrator creates rows of another company")
    return user.company


def _inside_area(user: User, area: str) -> None:
    own = normal_path(user.area)
    if not user.sees_everything and not path_within(area, own):
        raise ForbiddenError(f"{area or 'the whole company'!r} is outside your area {own!r}")


def loan_out(row: Mapping[str, Any], user: User) -> dict[str, Any]:
    """A loan's row with the actions `user` may take on it."""
    sides = sides_of(
        user.company,
        lender=str(row["lender"]),
        borrower=str(row["borrower"]),
        admin=user.sees_everything,
    )
    staff = user.role in {Role.SUPERVISOR, Role.ADMIN}
    actions = allowed_loan_actions(LoanState(row["state"]), sides) if staff else []
    return {**row, "allowed_actions": actions}


class Dispatch:
    """The registry and the pool on `engine` (see the module text); `clock` gives every time."""

    def __init__(self, engine: AsyncEngine, clock: Clock | None = None) -> None:
        """Serve from `engine`; the default clock is the system's."""
        self._engine = engine
        self._clock: Clock = clock or SystemClock()

    async def _write(self) -> AsyncConnection:
        conn = await self._engine.connect()
        return await conn.execution_options(**{WRITE_TRANSACTION: True})

    # --- teams ------------------------------------------------------------------------------------

    async def list_teams(
        self, user: User, *, limit: int, after: int | None
    ) -> list[dict[str, Any]]:
        """Up to `limit` teams `user` sees, by id, after `after`."""
        query = select(teams).where(store.company_rows(user, teams.c.company, teams.c.area))
        if after is not None:
            query = query.where(teams.c.id > after)
        return await self._rows(query.order_by(teams.c.id).limit(limit))

    async def get_team(self, user: User, team_id: int) -> dict[str, Any]:
        """The team `team_id`, if `user` sees it."""
        async with self._engine.connect() as conn:
            return await self._team(conn, user, team_id)

    async def _team(self, conn: AsyncConnection, user: User, team_id: int) -> dict[str, Any]:
        scope = store.company_rows(user, teams.c.company, teams.c.area)
        row = (await conn.execute(select(teams).where(teams.c.id == team_id, scope))).mappings()
        found = row.first()
        if found is None:
            raise NotFoundError(f"no team {team_id}")
        return dict(found)

    async def create_team(self, user: User, body: TeamIn) -> dict[str, Any]:
        """Create a team of the user's company (an administrator's: of `body.company`)."""
        company = _company_for(user, body.company)
        _inside_area(user, body.area)
        now = self._clock.now()
        values = {
            "company": company,
            "name": body.name.strip(),
            "area": body.area,
            "categories": sorted(set(body.categories)),
            "active": body.active,
            "created_at": now,
            "updated_at": now,
        }
        conn = await self._write()
        try:
            async with conn.begin():
                result = await conn.execute(insert(teams).values(**values).returning(*teams.c))
                return dict(result.mappings().one())
        except IntegrityError:
            raise ConflictError(f"company {company!r} has a team {values['name']!r}") from None
        finally:
            await conn.close()

    async def update_team(self, user: User, team_id: int, patch: TeamPatch) -> dict[str, Any]:
        """Change the fields of the team that `patch` gives."""
        values: dict[str, Any] = {}
        for name in patch.model_fields_set:
            value = getattr(patch, name)
            if value is None:
                raise InvalidError(f"{name!r} cannot be cleared")
            values[name] = sorted(set(value)) if name == "categories" else value
        if "area" in values:
            _inside_area(user, values["area"])
        conn = await self._write()
        try:
            async with conn.begin():
                await self._team(conn, user, team_id)
                if values:
                    values["updated_at"] = self._clock.now()
                    await conn.execute(update(teams).where(teams.c.id == team_id).values(**values))
                return await self._team(conn, user, team_id)
        except IntegrityError:
            raise ConflictError(f"the company has a team {values.get('name')!r}") from None
        finally:
            await conn.close()

    # --- technicians ------------------------------------------------------------------------------

    async def list_technicians(
        self, user: User, *, team: int | None, limit: int, after: str | None
    ) -> list[dict[str, Any]]:
        """Up to `limit` technicians `user` sees (of `team`, if given), by name, after `after`."""
        query = select(technicians).where(self._technician_scope(user))
        if team is not None:
            query = query.where(technicians.c.team_id == team)
        if after is not None:
            query = query.where(technicians.c.name > after)
        rows = await self._rows(query.order_by(technicians.c.name).limit(limit))
        return await self._with_loads(rows)

    def _technician_scope(self, user: User) -> ColumnElement[bool]:
        return store.company_rows(user, technicians.c.company)

    async def get_technician(self, user: User, name: str) -> dict[str, Any]:
        """The registered technician `name`, if `user` sees them."""
        async with self._engine.connect() as conn:
            row = await self._technician(conn, user, name)
        (with_load,) = await self._with_loads([row])
        return with_load

    async def _technician(self, conn: AsyncConnection, user: User, name: str) -> dict[str, Any]:
        query = select(technicians).where(technicians.c.name == name, self._technician_scope(user))
        found = (await conn.execute(query)).mappings().first()
        if found is None:
            raise NotFoundError(f"no technician {name!r}")
        return dict(found)

    async def create_technician(self, user: User, body: TechnicianIn) -> dict[str, Any]:
        """Register the user `body.name` (role technician, the team's company) in the team."""
        now = self._clock.now()
        conn = await self._write()
        try:
            async with conn.begin():
                team = await self._team(conn, user, body.team_id)
                person = await store.user_row(conn, body.name)
                if person is None or person["role"] != Role.TECHNICIAN.value:
                    raise InvalidError(f"{body.name!r} is not a user of role technician")
                if person["company"] != team["company"]:
                    raise InvalidError(
                        f"{body.name!r} is not of company {team['company']!r}: lend them "
                        "through the pool instead"
                    )
                if await store.technician_row(conn, body.name) is not None:
                    raise ConflictError(f"{body.name!r} is registered already")
                values = {
                    "name": body.name,
                    "company": team["company"],
                    "team_id": body.team_id,
                    "skills": sorted(set(body.skills)),
                    "active": body.active,
                    "created_at": now,
                    "updated_at": now,
                }
                await conn.execute(insert(technicians).values(**values))
        finally:
            await conn.close()
        return {**values, "open_load": 0}

    async def update_technician(
        self, user: User, name: str, patch: TechnicianPatch
    ) -> dict[str, Any]:
        """Move the technician to another team, change their skills or (de)activate them."""
        values: dict[str, Any] = {}
        for field in patch.model_fields_set:
            value = getattr(patch, field)
            if value is None:
                raise InvalidError(f"{field!r} cannot be cleared")
            values[field] = sorted(set(value)) if field == "skills" else value
        conn = await self._write()
        try:
            async with conn.begin():
                row = await self._technician(conn, user, name)
                if "team_id" in values:
                    team = await self._team(conn, user, values["team_id"])
                    if team["company"] != row["company"]:
                        raise InvalidError(f"team {team['id']} is of another company")
                if values:
                    values["updated_at"] = self._clock.now()
                    await conn.execute(
                        update(technicians).where(technicians.c.name == name).values(**values)
                    )
                row = await self._technician(conn, user, name)
        finally:
            await conn.close()
        (with_load,) = await self._with_loads([row])
        return with_load

    async def _with_loads(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            loads = await store.open_loads(conn, [str(r["name"]) for r in rows])
        return [{**r, "open_load": loads.get(str(r["name"]), 0)} for r in rows]

    # --- rosters ----------------------------------------------------------------------------------

    async def list_shifts(
        self,
        user: User,
        *,
        start: datetime,
        end: datetime,
        team: int | None = None,
        technician: str | None = None,
        limit: int,
        after: tuple[datetime, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Shifts overlapping [`start`, `end`) that `user` sees, by start then id."""
        if end <= start:
            raise InvalidError("'end' must be after 'start'")
        if end - start > RANGE_MAX:
            raise InvalidError(f"a roster query spans at most {RANGE_MAX.days} days")
        query = select(shifts).where(
            store.shift_rows(user), shifts.c.starts_at < end, shifts.c.ends_at > start
        )
        if technician is not None:
            query = query.where(shifts.c.technician == technician)
        if team is not None:
            members = select(technicians.c.name).where(technicians.c.team_id == team)
            query = query.where(shifts.c.technician.in_(members))
        if after is not None:
            at, last = after
            query = query.where(
                (shifts.c.starts_at > at) | ((shifts.c.starts_at == at) & (shifts.c.id > last))
            )
        return await self._rows(query.order_by(shifts.c.starts_at, shifts.c.id).limit(limit))

    async def create_shifts(self, user: User, given: Sequence[ShiftIn]) -> list[dict[str, Any]]:
        """Add `given` shifts of technicians `user` sees (all or none)."""
        now = self._clock.now()
        conn = await self._write()
        try:
            async with conn.begin():
                rows = []
                for shift in given:
                    if shift.ends_at <= shift.starts_at:
                        raise InvalidError(f"a shift of {shift.technician!r} ends before it starts")
                    if shift.ends_at - shift.starts_at > SHIFT_MAX:
                        raise InvalidError(f"a shift lasts at most {SHIFT_MAX.days} days")
                    try:
                        person = await self._technician(conn, user, shift.technician)
                    except NotFoundError:
                        raise InvalidError(
                            f"{shift.technician!r} is not a registered technician of yours"
                        ) from None
                    values = {
                        "company": person["company"],
                        "technician": shift.technician,
                        "starts_at": shift.starts_at,
                        "ends_at": shift.ends_at,
                        "note": shift.note,
                        "created_at": now,
                    }
                    result = await conn.execute(
                        insert(shifts).values(**values).returning(*shifts.c)
                    )
                    rows.append(dict(result.mappings().one()))
                return rows
        finally:
            await conn.close()

    async def delete_shift(self, user: User, shift_id: int) -> None:
        """Remove the shift `shift_id` of the user's company."""
        conn = await self._write()
        try:
            async with conn.begin():
                result = await conn.execute(
                    delete(shifts).where(
                        shifts.c.id == shift_id, store.company_rows(user, shifts.c.company)
                    )
                )
                if result.rowcount != 1:
                    raise NotFoundError(f"no shift {shift_id}")
        finally:
            await conn.close()

    # --- equipment --------------------------------------------------------------------------------

    async def list_equipment(
        self, user: User, *, limit: int, after: int | None
    ) -> list[dict[str, Any]]:
        """Up to `limit` pieces of equipment of the user's company, by id, after `after`."""
        query = select(equipment).where(store.company_rows(user, equipment.c.company))
        if after is not None:
            query = query.where(equipment.c.id > after)
        return await self._rows(query.order_by(equipment.c.id).limit(limit))

    async def create_equipment(self, user: User, body: EquipmentIn) -> dict[str, Any]:
        """Register a piece of equipment of the user's company."""
        company = _company_for(user, body.company)
        values = {
            "company": company,
            "name": body.name.strip(),
            "kind": body.kind.strip(),
            "note": body.note,
            "active": body.active,
            "created_at": self._clock.now(),
        }
        conn = await self._write()
        try:
            async with conn.begin():
                result = await conn.execute(
                    insert(equipment).values(**values).returning(*equipment.c)
                )
                return dict(result.mappings().one())
        except IntegrityError:
            raise ConflictError(f"company {company!r} has equipment {values['name']!r}") from None
        finally:
            await conn.close()

    # --- the pool ---------------------------------------------------------------------------------

    async def list_loans(
        self, user: User, *, state: str | None, limit: int, after: int | None
    ) -> list[dict[str, Any]]:
        """Loans `user` sees, newest first, before the id `after`."""
        query = select(loans).where(store.loan_rows(user))
        if state is not None:
            query = query.where(loans.c.state == state)
        if after is not None:
            query = query.where(loans.c.id < after)
        return await self._rows(query.order_by(loans.c.id.desc()).limit(limit))

    async def get_loan(self, user: User, loan_id: int) -> dict[str, Any]:
        """The loan `loan_id`, if `user` sees it."""
        async with self._engine.connect() as conn:
            return await self._loan(conn, user, loan_id)

    async def _loan(
        self, conn: AsyncConnection, user: User, loan_id: int, *, lock: bool = False
    ) -> dict[str, Any]:
        query = select(loans).where(loans.c.id == loan_id, store.loan_rows(user))
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        found = (await conn.execute(query)).mappings().first()
        if found is None:
            raise NotFoundError(f"no loan {loan_id}")
        return dict(found)

    async def request_loan(self, user: User, body: LoanIn) -> dict[str, Any]:
        """Ask `body.lender` for a technician or equipment on behalf of the user's company."""
        if user.sees_everything:
            if not body.borrower:
                raise InvalidError("an administrator names the 'borrower'")
            borrower = body.borrower
        elif body.borrower is not None and body.borrower != user.company:
            raise ForbiddenError("a company borrows only for itself")
        else:
            borrower = user.company
        lender = body.lender.strip()
        if lender == borrower:
            raise InvalidError("a company does not borrow from itself")
        now = self._clock.now()
        conn = await self._write()
        try:
            async with conn.begin():
                await self._check_lendable(conn, body, lender)
                if body.order_id is not None:
                    await self._check_order(conn, user, body.order_id, borrower)
                values = {
                    "kind": body.kind,
                    "lender": lender,
                    "borrower": borrower,
                    "technician": body.technician
                    if body.kind == LoanKind.TECHNICIAN.value
                    else None,
                    "equipment_id": body.equipment_id
                    if body.kind == LoanKind.EQUIPMENT.value
                    else None,
                    "order_id": body.order_id,
                    "state": LoanState.REQUESTED.value,
                    "note": body.note,
                    "requested_by": user.name,
                    "requested_at": now,
                    "version": 1,
                }
                result = await conn.execute(insert(loans).values(**values).returning(*loans.c))
                return dict(result.mappings().one())
        finally:
            await conn.close()

    async def _check_lendable(self, conn: AsyncConnection, body: LoanIn, lender: str) -> None:
        if body.kind == LoanKind.TECHNICIAN.value:
            if not body.technician or body.equipment_id is not None:
                raise InvalidError("a technician loan names the 'technician' (and no equipment)")
            person = await store.user_row(conn, body.technician)
            if (
                person is None
                or person["role"] != Role.TECHNICIAN.value
                or person["company"] != lender
            ):
                raise InvalidError(f"{body.technician!r} is not a technician of {lender!r}")
            registered = await store.technician_row(conn, body.technician)
            if registered is not None and not registered["active"]:
                raise InvalidError(f"technician {body.technician!r} is not active")
            return
        if body.equipment_id is None or body.technician is not None:
            raise InvalidError("an equipment loan names the 'equipment_id' (and no technician)")
        row = (
            await conn.execute(
                select(equipment.c.company, equipment.c.active).where(
                    equipment.c.id == body.equipment_id
                )
            )
        ).first()
        if row is None or row[0] != lender or not row[1]:
            raise InvalidError(f"{lender!r} has no active equipment {body.equipment_id}")

    async def _check_order(
        self, conn: AsyncConnection, user: User, order_id: int, borrower: str
    ) -> None:
        found = await conn.execute(
            select(work_orders.c.company).where(work_orders.c.id == order_id, visible_orders(user))
        )
        company = found.scalar_one_or_none()
        if company is None or company != borrower:
            raise InvalidError(f"no work order {order_id} of company {borrower!r}")

    async def act_on_loan(
        self,
        user: User,
        loan_id: int,
        action: str,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """Approve, reject, return or cancel the loan; return its row after.

        Raises `NotFoundError`, the pool's `IllegalLoanActionError` (also for a stale
        `expected_version`), `LoanForbiddenError`, `InvalidLoanError`, and `ConflictError`
        when approving equipment lent elsewhere already.
        """
        now = self._clock.now()
        conn = await self._write()
        try:
            async with conn.begin():
                row = await self._loan(conn, user, loan_id, lock=True)
                state = LoanState(row["state"])
                sides = sides_of(
                    user.company,
                    lender=str(row["lender"]),
                    borrower=str(row["borrower"]),
                    admin=user.sees_everything,
                )
                if expected_version is not None and expected_version != row["version"]:
                    raise IllegalLoanActionError(action, state, allowed_loan_actions(state, sides))
                target = decide_loan(state, action, sides, reason)
                values: dict[str, Any] = {"state": target.value, "version": row["version"] + 1}
                if target in {LoanState.APPROVED, LoanState.REJECTED}:
                    values |= {"decided_by": user.name, "decided_at": now}
                if target is LoanState.REJECTED:
                    values["reason"] = (reason or "").strip()
                if target in {LoanState.RETURNED, LoanState.CANCELLED}:
                    values |= {"returned_by": user.name, "returned_at": now}
                if target is LoanState.APPROVED and row["equipment_id"] is not None:
                    await self._check_equipment_free(conn, int(row["equipment_id"]))
                result = await conn.execute(
                    update(loans)
                    .where(loans.c.id == loan_id, loans.c.version == row["version"])
                    .values(**values)
                )
                if result.rowcount != 1:
                    raise IllegalLoanActionError(action, state, [])
                return {**row, **values}
        finally:
            await conn.close()

    async def _check_equipment_free(self, conn: AsyncConnection, equipment_id: int) -> None:
        """`ConflictError` if the equipment is lent already.

        The equipment's row stays locked (PostgreSQL) until the commit, so two approvals of one
        piece cannot both pass.
        """
        if conn.dialect.name == "postgresql":
            piece = select(equipment.c.id).where(equipment.c.id == equipment_id)
            await conn.execute(piece.with_for_update())
        lent = await conn.execute(
            select(loans.c.id).where(
                loans.c.equipment_id == equipment_id, loans.c.state == LoanState.APPROVED.value
            )
        )
        other = lent.scalar_one_or_none()
        if other is not None:
            raise ConflictError(f"equipment {equipment_id} is lent already (loan {other})")

    # ----------------------------------------------------------------------------------------------

    async def _rows(self, query: Any) -> list[dict[str, Any]]:  # noqa: ANN401 - any select
        async with self._engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings()]


__all__ = [
    "Assignment",
    "ConflictError",
    "Dispatch",
    "DispatchError",
    "ForbiddenError",
    "InvalidError",
    "InvalidLoanError",
    "NotFoundError",
    "automatic_assignment",
    "loan_out",
    "manual_assignment",
    "prepare_dispatch",
]
