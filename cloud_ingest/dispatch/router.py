"""`/api/v1/teams`, `/technicians`, `/rosters`, `/equipment` and `/pool` (the shared pool).

Staff read their company's teams, technicians, shifts and equipment (a technician only their own
shifts); supervisors and administrators change them. The pool is read by both companies of a loan;
the borrower's operators and supervisors ask for a loan, the lender's supervisors approve or reject
it, and either side's return it. A row outside the caller's scope is `404`; bad input `422`; an
action a loan's state does not allow a `409` problem naming the `state` and the `allowed_actions`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from cloud_ingest.auth.models import Role
from cloud_ingest.auth.permissions import CurrentUser, require
from cloud_ingest.clock import Clock, SystemClock
from cloud_ingest.dispatch.pool import IllegalLoanActionError, InvalidLoanError, LoanForbiddenError
from cloud_ingest.dispatch.schemas import (
    EquipmentIn,
    EquipmentOut,
    LoanActionIn,
    LoanIn,
    LoanOut,
    ShiftOut,
    ShiftsIn,
    TeamIn,
    TeamOut,
    TeamPatch,
    TechnicianIn,
    TechnicianOut,
    TechnicianPatch,
)
from cloud_ingest.dispatch.service import (
    ConflictError,
    Dispatch,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    loan_out,
)
from cloud_ingest.paging import (
    DEFAULT_LIMIT,
    After,
    Limit,
    Page,
    decode_cursor,
    decode_time,
    encode_cursor,
)
from cloud_ingest.problems import problem
from cloud_ingest.registry.roles import Engine

router: Final = APIRouter()

STAFF: Final = (Role.OPERATOR, Role.SUPERVISOR, Role.TECHNICIAN, Role.ADMIN)
"""Who reads teams, technicians, rosters, equipment and loans."""
MANAGERS: Final = (Role.SUPERVISOR, Role.ADMIN)
"""Who changes them, and who decides on loans."""
BORROWERS: Final = (Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN)
"""Who asks another company for a loan."""
ID_MAX: Final = 2**63 - 1

Id = Annotated[int, Path(ge=1, le=ID_MAX)]
TechnicianName = Annotated[str, Path(min_length=1, max_length=128)]

_T = TypeVar("_T")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    words = {
        403: "Not allowed to change this (another company, outside the area)",
        404: "No such row in the caller's scope",
        409: "Exists already, or not allowed in the loan's state (`allowed_actions`)",
        422: "The request names something that does not fit",
    }
    return {code: {"description": words[code]} for code in codes}


def _clock(request: Request) -> Clock:
    clock: Clock | None = getattr(request.app.state, "clock", None)
    return clock or SystemClock()


async def _call(awaitable: Awaitable[_T]) -> _T:
    """Await a service call, turning its errors into HTTP answers."""
    try:
        return await awaitable
    except NotFoundError as err:
        raise HTTPException(404, str(err)) from None
    except (ForbiddenError, LoanForbiddenError) as err:
        raise HTTPException(403, str(err)) from None
    except ConflictError as err:
        raise HTTPException(409, str(err)) from None
    except (InvalidError, InvalidLoanError) as err:
        raise HTTPException(422, str(err)) from None


def _service(engine: Engine, request: Request) -> Dispatch:
    return Dispatch(engine, _clock(request))


def _int_after(after: str | None) -> int | None:
    if after is None:
        return None
    (key,) = decode_cursor(after, int)
    assert isinstance(key, int)  # noqa: S101 - decode_cursor checked the type
    return key


def _str_after(after: str | None) -> str | None:
    if after is None:
        return None
    (key,) = decode_cursor(after, str)
    return str(key)


# --- teams ----------------------------------------------------------------------------------------


@router.get(
    "/teams",
    tags=["dispatch"],
    dependencies=[require(*STAFF)],
    summary="Teams of the user's company, by id",
    response_model=Page[TeamOut],
)
async def list_teams(
    engine: Engine,
    request: Request,
    user: CurrentUser,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[TeamOut]:
    """Teams: the grid each covers and the categories it handles."""
    service = _service(engine, request)
    rows = await service.list_teams(user, limit=limit + 1, after=_int_after(after))
    items = [TeamOut.model_validate(r) for r in rows[:limit]]
    cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page[TeamOut](items=items, next=cursor)


@router.post(
    "/teams",
    tags=["dispatch"],
    dependencies=[require(*MANAGERS)],
    summary="Create a team",
    response_model=TeamOut,
    status_code=201,
    responses=_errors(403, 409, 422),
)
async def create_team(engine: Engine, request: Request, user: CurrentUser, body: TeamIn) -> TeamOut:
    """A team of the user's company (an administrator names the company)."""
    row = await _call(_service(engine, request).create_team(user, body))
    return TeamOut.model_validate(row)


@router.get(
    "/teams/{team_id}",
    tags=["dispatch"],
    dependencies=[require(*STAFF)],
    summary="One team",
    response_model=TeamOut,
    responses=_errors(404),
)
async def get_team(engine: Engine, request: Request, user: CurrentUser, team_id: Id) -> TeamOut:
    """The team `team_id`."""
    return TeamOut.model_validate(await _call(_service(engine, request).get_team(user, team_id)))


@router.patch(
    "/teams/{team_id}",
    tags=["dispatch"],
    dependencies=[require(*MANAGERS)],
    summary="Change a team's name, area, categories or activity",
    response_model=TeamOut,
    responses=_errors(403, 404, 409, 422),
)
async def patch_team(
    engine: Engine, request: Request, user: CurrentUser, team_id: Id, body: TeamPatch
) -> TeamOut:
    """Change the fields given."""
    row = await _call(_service(engine, request).update_team(user, team_id, body))
    return TeamOut.model_validate(row)


# --- technicians ----------------------------------------------------------------------------------


@router.get(
    "/technicians",
    tags=["dispatch"],
    dependencies=[require(*STAFF)],
    summary="Registered technicians of the user's company, by name",
    response_model=Page[TechnicianOut],
)
async def list_technicians(
    *,
    engine: Engine,
    request: Request,
    user: CurrentUser,
    team: Annotated[int | None, Query(ge=1, le=ID_MAX, description="a team's id")] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[TechnicianOut]:
    """Technicians with their team, skills and open load."""
    service = _service(engine, request)
    rows = await service.list_technicians(user, team=team, limit=limit + 1, after=_str_after(after))
    items = [TechnicianOut.model_validate(r) for r in rows[:limit]]
    cursor = encode_cursor(items[-1].name) if len(rows) > limit else None
    return Page[TechnicianOut](items=items, next=cursor)


@router.post(
    "/technicians",
    tags=["dispatch"],
    dependencies=[require(*MANAGERS)],
    summary="Register a user of role technician in a team",
    response_model=TechnicianOut,
    status_code=201,
    responses=_errors(404, 409, 422),
)
async def create_technician(
    engine: Engine, request: Request, user: CurrentUser, body: TechnicianIn
) -> TechnicianOut:
    """Register the technician (a user of the team's company)."""
    row = await _call(_service(engine, request).create_technician(user, body))
    return TechnicianOut.model_validate(row)


@router.get(
    "/technicians/{name}",
    tags=["dispatch"],
    dependencies=[require(*STAFF)],
    summary="One registered technician",
    response_model=TechnicianOut,
    responses=_errors(404),
)
async def get_technician(
    engine: Engine, request: Request, user: CurrentUser, name: TechnicianName
) -> TechnicianOut:
    """The technician `name`, with their open load."""
    row = await _call(_service(engine, request).get_technician(user, name))
    return TechnicianOut.model_validate(row)


@router.patch(
    "/technicians/{name}",
    tags=["dispatch"],
    dependencies=[require(*MANAGERS)],
    summary="Move a technician to a team, change their skills or (de)activate them",
    response_model=TechnicianOut,
    responses=_errors(404, 422),
)
async def patch_technician(
    engine: Engine,
    request: Request,
    user: CurrentUser,
    name: TechnicianName,
    body: TechnicianPatch,
) -> TechnicianOut:
    """Change the fields given."""
    row = await _call(_service(engine, request).update_technician(user, name, body))
    return TechnicianOut.model_validate(row)


# --- rosters --------------------------------------------------------------------------------------


@router.get(
    "/rosters",
    tags=["dispatch"],
    dependencies=[require(*STAFF)],
    summary="Shifts overlapping a time range, by start (a technician: their own)",
    response_model=Page[ShiftOut],
    responses=_errors(422),
)
async def list_shifts(
    *,
    engine: Engine,
    request: Request,
    user: CurrentUser,
    start: Annotated[datetime, Query(description="from (ISO 8601 with offset)")],
    end: Annotated[datetime, Query(description="to (ISO 8601 with offset; at most 62 days)")],
    team: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
    technician: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[ShiftOut]:
    """The roster of the range, filtered by team or technician."""
    if start.utcoffset() is None or end.utcoffset() is None:
        raise HTTPException(422, "'start' and 'end' need a time zone offset")
    key = None
    if after is not None:
        at, last = decode_cursor(after, str, int)
        assert isinstance(last, int)  # noqa: S101 - decode_cursor checked the type
        key = (decode_time(at), last)
    rows = await _call(
        _service(engine, request).list_shifts(
            user,
            start=start,
            end=end,
            team=team,
            technician=technician,
            limit=limit + 1,
            after=key,
        )
    )
    items = [ShiftOut.model_validate(r) for r in rows[:limit]]
    cursor = None
    if len(rows) > limit:
        cursor = encode_cursor(items[-1].starts_at.isoformat(), items[-1].id)
    return Page[ShiftOut](items=items, next=cursor)


@router.post(
    "/rosters",
    tags=["dispatch"],
    dependencies=[require(*MANAGERS)],
    summary="Add shifts to the roster (all or none)",
    response_model=list[ShiftOut],
    status_code=201,
    responses=_errors(422),
)
async def create_shifts(
    engine: Engine, request: Request, user: CurrentUser, body: ShiftsIn
) -> list[ShiftOut]:
    """Add the shifts of registered technicians of the user's company."""
    rows = await _call(_service(engine, request).create_shifts(user, body.shifts))
    return [ShiftOut.model_validate(r) for r in rows]


@router.delete(
    "/rosters/{shift_id}",
    tags=["dispatch"],
    dependencies=[require(*MANAGERS)],
    summary="Remove a shift",
    status_code=204,
    responses=_errors(404),
)
async def delete_shift(
    engine: Engine, request: Request, user: CurrentUser, shift_id: Id
) -> Response:
    """Remove the shift `shift_id`."""
    await _call(_service(engine, request).delete_shift(user, shift_id))
    return Response(status_code=204)


# --- equipment ------------------------------------------------------------------------------------


@router.get(
    "/equipment",
    tags=["dispatch"],
    dependencies=[require(*STAFF)],
    summary="Equipment of the user's company, by id",
    response_model=Page[EquipmentOut],
)
async def list_equipment(
    engine: Engine,
    request: Request,
    user: CurrentUser,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[EquipmentOut]:
    """Equipment the company may lend through the pool."""
    rows = await _service(engine, request).list_equipment(
        user, limit=limit + 1, after=_int_after(after)
    )
    items = [EquipmentOut.model_validate(r) for r in rows[:limit]]
    cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page[EquipmentOut](items=items, next=cursor)


@router.post(
    "/equipment",
    tags=["dispatch"],
    dependencies=[require(*MANAGERS)],
    summary="Register a piece of equipment",
    response_model=EquipmentOut,
    status_code=201,
    responses=_errors(403, 409, 422),
)
async def create_equipment(
    engine: Engine, request: Request, user: CurrentUser, body: EquipmentIn
) -> EquipmentOut:
    """A piece of equipment of the user's company (an administrator names the company)."""
    row = await _call(_service(engine, request).create_equipment(user, body))
    return EquipmentOut.model_validate(row)


# --- the pool -------------------------------------------------------------------------------------


@router.get(
    "/pool",
    tags=["pool"],
    dependencies=[require(*STAFF)],
    summary="Loans the user's company lends or borrows, newest first",
    response_model=Page[LoanOut],
)
async def list_loans(
    *,
    engine: Engine,
    request: Request,
    user: CurrentUser,
    state: Annotated[
        str | None, Query(max_length=16, description="REQUESTED, APPROVED, ...")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[LoanOut]:
    """Loans with the actions the caller may take on each."""
    rows = await _service(engine, request).list_loans(
        user, state=state, limit=limit + 1, after=_int_after(after)
    )
    items = [LoanOut.model_validate(loan_out(r, user)) for r in rows[:limit]]
    cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page[LoanOut](items=items, next=cursor)


@router.post(
    "/pool",
    tags=["pool"],
    dependencies=[require(*BORROWERS)],
    summary="Ask another company to lend a technician or a piece of equipment",
    response_model=LoanOut,
    status_code=201,
    responses=_errors(403, 422),
)
async def request_loan(
    engine: Engine, request: Request, user: CurrentUser, body: LoanIn
) -> LoanOut:
    """A loan REQUESTED by the user's company, for one of its orders or open-ended."""
    row = await _call(_service(engine, request).request_loan(user, body))
    return LoanOut.model_validate(loan_out(row, user))


@router.get(
    "/pool/{loan_id}",
    tags=["pool"],
    dependencies=[require(*STAFF)],
    summary="One loan",
    response_model=LoanOut,
    responses=_errors(404),
)
async def get_loan(engine: Engine, request: Request, user: CurrentUser, loan_id: Id) -> LoanOut:
    """The loan `loan_id`."""
    row = await _call(_service(engine, request).get_loan(user, loan_id))
    return LoanOut.model_validate(loan_out(row, user))


@router.post(
    "/pool/{loan_id}/actions",
    tags=["pool"],
    dependencies=[require(*MANAGERS)],
    summary="Approve or reject a loan (the lender), return it, or cancel the request",
    response_model=LoanOut,
    responses=_errors(403, 404, 409, 422),
)
async def act_on_loan(
    engine: Engine, request: Request, user: CurrentUser, loan_id: Id, body: LoanActionIn
) -> LoanOut | JSONResponse:
    """Apply the action; `409` names the loan's state and the allowed actions if it does not apply."""
    service = _service(engine, request)
    try:
        row = await _call(
            service.act_on_loan(user, loan_id, body.action, body.reason, body.expected_version)
        )
    except IllegalLoanActionError as err:
        return problem(
            HTTPStatus.CONFLICT,
            str(err),
            instance=request.url.path,
            state=err.state.value,
            allowed_actions=err.allowed,
        )
    return LoanOut.model_validate(loan_out(row, user))
