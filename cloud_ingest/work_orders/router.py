"""`/api/v1/work-orders` (lists, details, actions) and `/api/v1/requests` (people's requests).

Rows are scoped in one place (`store.visible_orders`): a user sees the orders of their company
within their area, a resident only their own requests, an administrator all; an order outside
the scope is `404`, as an unknown one. An action the order's state does not allow is a `409`
problem naming the `state` and the `allowed_actions`; an `expected_version` the order has moved
past is a `412` problem with the current `version`. Photos named by an action or a request must
have been uploaded (`POST /api/v1/photos`) and be the user's to see (`422` otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.permissions import CurrentUser, database, require
from cloud_ingest.paging import DEFAULT_LIMIT, After, Limit, Page, decode_cursor, encode_cursor
from cloud_ingest.photos.router import refuse_unattachable
from cloud_ingest.problems import problem
from cloud_ingest.work_orders.lifecycle import (
    ActionForbiddenError,
    IllegalActionError,
    InvalidPayloadError,
    State,
    allowed_actions,
)
from cloud_ingest.work_orders.schemas import ActionIn, RequestIn, WorkOrderDetail, WorkOrderOut
from cloud_ingest.work_orders.service import REQUEST_SOURCES, RequestInput, WorkOrders
from cloud_ingest.work_orders.store import OrderNotFoundError, VersionConflictError

router: Final = APIRouter(tags=["work orders"])

STAFF: Final = (Role.OPERATOR, Role.SUPERVISOR, Role.TECHNICIAN, Role.ADMIN)
"""Who lists work orders (residents use `/requests`)."""
ID_MAX: Final = 2**63 - 1
EVERYONE: Final = tuple(Role)
"""Who reads one order, acts on it (the lifecycle checks the role per action) and files requests."""

_NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {
    404: {"description": "No such work order in the user's scope"}
}
_ACTION_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    **_NOT_FOUND,
    409: {"description": "The action is not allowed in the order's state (`allowed_actions`)"},
    412: {"description": "The order is no longer at `expected_version` (`version`)"},
    422: {"description": "A required field is missing or out of range"},
}


def work_order_service(request: Request) -> WorkOrders:
    """The application's `WorkOrders` (set by the lifespan)."""
    service: WorkOrders | None = getattr(request.app.state, "work_orders", None)
    if service is None:
        raise HTTPException(503, "the work-order service is not running")
    return service


Service = Annotated[WorkOrders, Depends(work_order_service)]
OrderId = Annotated[int, Path(ge=1, le=ID_MAX, description="the order's id")]
States = Annotated[list[State] | None, Query(description="current state (repeat for several)")]
Text = Annotated[str | None, Query(max_length=128)]
Location = Annotated[
    str | None, Query(max_length=1024, description="a site path: this place and below")
]


def _held(row: Mapping[str, Any]) -> bool:
    """Whether the order is ON_HOLD with its hold approved already."""
    return row.get("hold_approved_at") is not None


def _out(row: dict[str, Any], user: User) -> WorkOrderOut:
    actions = allowed_actions(State(row["state"]), user.role, hold_approved=_held(row))
    return WorkOrderOut.model_validate({**row, "allowed_actions": actions})


def _page(rows: list[dict[str, Any]], limit: int, user: User) -> Page[WorkOrderOut]:
    items = [_out(row, user) for row in rows[:limit]]
    cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page[WorkOrderOut](items=items, next=cursor)


def _after(after: str | None) -> int | None:
    if after is None:
        return None
    (key,) = decode_cursor(after, int)
    if not isinstance(key, int) or not 0 < key <= ID_MAX:
        raise HTTPException(400, "'after' is not a cursor from this list")
    return key


@router.get(
    "/work-orders",
    dependencies=[require(*STAFF)],
    summary="Work orders, newest first",
    response_model=Page[WorkOrderOut],
)
async def list_work_orders(
    *,
    service: Service,
    user: CurrentUser,
    state: States = None,
    category: Text = None,
    company: Text = None,
    location: Location = None,
    source: Annotated[str | None, Query(max_length=16, description="where it came from")] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[WorkOrderOut]:
    """Orders of the user's scope, filtered, newest first (keyset pages)."""
    rows = await service.find(
        user,
        limit=limit + 1,
        after=_after(after),
        states=[s.value for s in state or ()],
        category=category,
        company=company,
        location=location,
        sources=[source] if source else (),
    )
    return _page(rows, limit, user)


@router.get(
    "/work-orders/{order_id}",
    dependencies=[require(*EVERYONE)],
    summary="One work order with its events and attached alarms",
    response_model=WorkOrderDetail,
    responses=_NOT_FOUND,
)
async def get_work_order(service: Service, user: CurrentUser, order_id: OrderId) -> WorkOrderDetail:
    """The order, its events in `seq` order and the alarms attached to it."""
    try:
        row = await service.get(order_id, user)
    except OrderNotFoundError as err:
        raise HTTPException(404, str(err)) from None
    actions = allowed_actions(State(row["state"]), user.role, hold_approved=_held(row))
    return WorkOrderDetail.model_validate({**row, "allowed_actions": actions})


@router.post(
    "/work-orders/{order_id}/actions",
    dependencies=[require(*EVERYONE)],
    summary="Take one action on a work order (accept, dispatch, start, submit, verify, ...)",
    response_model=WorkOrderOut,
    responses=_ACTION_ERRORS,
)
async def act_on_work_order(
    service: Service, user: CurrentUser, order_id: OrderId, body: ActionIn, request: Request
) -> WorkOrderOut | JSONResponse:
    """Apply the action; `409` names the state and the allowed actions if it does not apply."""
    payload = body.model_dump(exclude={"action", "expected_version"}, exclude_none=True)
    instance = request.url.path
    await refuse_unattachable(database(request), user, body.photos)
    try:
        row = await service.act(order_id, body.action, user, payload, body.expected_version)
    except OrderNotFoundError as err:
        raise HTTPException(404, str(err)) from None
    except IllegalActionError as err:
        return problem(
            HTTPStatus.CONFLICT,
            str(err),
            instance=instance,
            state=err.state.value,
            allowed_actions=err.allowed,
        )
    except VersionConflictError as err:
        return problem(
            HTTPStatus.PRECONDITION_FAILED,
            str(err),
            instance=instance,
            state=err.state.value,
            version=err.current,
        )
    except ActionForbiddenError as err:
        raise HTTPException(403, str(err)) from None
    except InvalidPayloadError as err:
        raise HTTPException(422, str(err)) from None
    return _out(row, user)


@router.post(
    "/requests",
    dependencies=[require(*EVERYONE)],
    summary="File a request: a resident's repair, a 12345 complaint or an inspector's report",
    response_model=WorkOrderOut,
    status_code=201,
    responses={422: {"description": "A required field is missing"}},
)
async def create_request(
    service: Service, user: CurrentUser, body: RequestIn, http: Request
) -> WorkOrderOut:
    """Open a work order for the request (a repeated 12345 reference returns the first)."""
    await refuse_unattachable(database(http), user, body.photos)
    request = RequestInput(**body.model_dump())
    try:
        row = await service.create_request(user, request)
    except ActionForbiddenError as err:
        raise HTTPException(403, str(err)) from None
    except InvalidPayloadError as err:
        raise HTTPException(422, str(err)) from None
    return _out(row, user)


@router.get(
    "/requests",
    dependencies=[require(*EVERYONE)],
    summary="Requests (not alarms), newest first; a resident sees only their own",
    response_model=Page[WorkOrderOut],
)
async def list_requests(
    *,
    service: Service,
    user: CurrentUser,
    state: States = None,
    source: Annotated[
        str | None, Query(max_length=16, description="resident, hotline_12345 or inspector")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[WorkOrderOut]:
    """Orders that people filed, in the user's scope."""
    sources = [source] if source else list(REQUEST_SOURCES)
    rows = await service.find(
        user,
        limit=limit + 1,
        after=_after(after),
        states=[s.value for s in state or ()],
        sources=sources,
    )
    return _page(rows, limit, user)
