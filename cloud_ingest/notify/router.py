"""`/api/v1/notifications`: channels, subscriptions and the delivery log.

Administrators and supervisors manage channels and subscriptions; a supervisor those of their own
company, and subscriptions within their area. Operators also read the delivery log. An area
officer (a user without a company) reads the subscriptions and deliveries of every company within
their area, sees no channel and changes nothing. A row outside the user's scope is `404`, like an
unknown one. Secrets are written, never read back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from sqlalchemy import ColumnElement, delete, false, insert, select, true, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud_ingest.auth.models import Role, User
from cloud_ingest.auth.permissions import CurrentUser, database, require
from cloud_ingest.auth.scope import normal_path, visible
from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import (
    notification_attempts,
    notification_channels,
    notification_deliveries,
    notification_subscriptions,
)
from cloud_ingest.notify.channels import check_channel
from cloud_ingest.notify.matching import within_area
from cloud_ingest.notify.outbox import DEAD, FAILED, PENDING
from cloud_ingest.notify.schemas import (
    MAX_ID,
    AttemptOut,
    ChannelIn,
    ChannelOut,
    ChannelPatch,
    DeliveryDetail,
    DeliveryOut,
    Status,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionPatch,
)
from cloud_ingest.paging import DEFAULT_LIMIT, After, Limit, Page, decode_cursor, encode_cursor
from cloud_ingest.rows import one_or_404

router: Final = APIRouter(prefix="/notifications", tags=["notifications"])
MANAGERS: Final = (Role.ADMIN, Role.SUPERVISOR)
LOG_READERS: Final = (Role.ADMIN, Role.SUPERVISOR, Role.OPERATOR)

Engine = Annotated[AsyncEngine, Depends(database)]
ChannelId = Annotated[int, Path(ge=1, le=MAX_ID, description="a channel's id")]
SubscriptionId = Annotated[int, Path(ge=1, le=MAX_ID, description="a subscription's id")]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID, description="a delivery's id")]
_NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {
    404: {"description": "No such row in the user's scope"}
}

ch, sub, dl = notification_channels.c, notification_subscriptions.c, notification_deliveries.c


def _now() -> datetime:
    return datetime.now(UTC)


@asynccontextmanager
async def _writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write (SQLite: `BEGIN IMMEDIATE`, so it never fails to upgrade)."""
    async with engine.connect() as connection:
        conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
        async with conn.begin():
            yield conn


def _channel_scope(user: User) -> ColumnElement[bool]:
    if user.sees_everything:
        return true()
    if not user.company:
        return false()
    return ch.company == user.company


def _subscription_scope(user: User) -> ColumnElement[bool]:
    return visible(user, company=sub.company, location=sub.area)


def _delivery_scope(user: User) -> ColumnElement[bool]:
    return visible(user, company=dl.company, location=dl.location)


def _channel_out(row: RowMapping) -> ChannelOut:
    values = dict(row)
    values["has_secret"] = bool(values.pop("secret"))
    return ChannelOut.model_validate(values)


def _page_after(after: str | None) -> int | None:
    return None if after is None else int(str(decode_cursor(after, int)[0]))


async def _visible_channel(conn: AsyncConnection, user: User, channel_id: int) -> ChannelOut:
    query = select(notification_channels).where(ch.id == channel_id, _channel_scope(user))
    return _channel_out(await one_or_404(conn, query, f"no notification channel {channel_id}"))


def _checked(kind: str, target: str, options: dict[str, object]) -> None:
    try:
        check_channel(kind, target, options)
    except ValueError as err:
        raise HTTPException(422, str(err)) from err


# --- channels -------------------------------------------------------------------------------------


@router.get(
    "/channels",
    dependencies=[require(*MANAGERS)],
    summary="Notification channels, oldest first",
    response_model=Page[ChannelOut],
)
async def list_channels(
    engine: Engine, user: CurrentUser, limit: Limit = DEFAULT_LIMIT, after: After = None
) -> Page[ChannelOut]:
    """The channels of the user's company (administrators: all)."""
    query = select(notification_channels).where(_channel_scope(user))
    start = _page_after(after)
    if start is not None:
        query = query.where(ch.id > start)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(ch.id).limit(limit + 1))).mappings().all()
    items = [_channel_out(r) for r in rows[:limit]]
    cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page[ChannelOut](items=items, next=cursor)


@router.post(
    "/channels",
    dependencies=[require(*MANAGERS)],
    summary="Add a notification channel",
    status_code=201,
    response_model=ChannelOut,
    responses={409: {"description": "The company has a channel of that name"}},
)
async def add_channel(engine: Engine, user: CurrentUser, body: ChannelIn) -> ChannelOut:
    """Create a channel of the user's company (administrators: of `company`)."""
    if body.company is not None and not user.sees_everything and body.company != user.company:
        raise HTTPException(403, "channels of another company are for administrators")
    company = user.company if not user.sees_everything else (body.company or "")
    _checked(body.kind, body.target, dict(body.options))
    values = body.model_dump(exclude={"company"}) | {"company": company, "created_at": _now()}
    try:
        async with _writing(engine) as conn:
            new_id = (
                await conn.execute(insert(notification_channels).values(**values).returning(ch.id))
            ).scalar_one()
            return await _visible_channel(conn, user, new_id)
    except IntegrityError as err:
        raise HTTPException(409, f"a channel named {body.name!r} exists") from err


@router.get(
    "/channels/{channel_id}",
    dependencies=[require(*MANAGERS)],
    summary="One notification channel",
    response_model=ChannelOut,
    responses=_NOT_FOUND,
)
async def get_channel(engine: Engine, user: CurrentUser, channel_id: ChannelId) -> ChannelOut:
    """The channel (without its secret)."""
    async with engine.connect() as conn:
        return await _visible_channel(conn, user, channel_id)


@router.patch(
    "/channels/{channel_id}",
    dependencies=[require(*MANAGERS)],
    summary="Change a notification channel",
    response_model=ChannelOut,
    responses={**_NOT_FOUND, 409: {"description": "The company has a channel of that name"}},
)
async def change_channel(
    engine: Engine, user: CurrentUser, channel_id: ChannelId, body: ChannelPatch
) -> ChannelOut:
    """Change the fields given; `secret: null` removes the secret."""
    changes = body.model_dump(include=body.model_fields_set)
    for key in ("name", "target", "options", "enabled"):
        if key in changes and changes[key] is None:
            raise HTTPException(422, f"{key} cannot be null")
    try:
        async with _writing(engine) as conn:
            current = await _visible_channel(conn, user, channel_id)
            _checked(
                current.kind,
                changes.get("target", current.target),
                changes.get("options", current.options),
            )
            if changes:
                await conn.execute(
                    update(notification_channels).where(ch.id == channel_id).values(**changes)
                )
            return await _visible_channel(conn, user, channel_id)
    except IntegrityError as err:
        raise HTTPException(409, f"a channel named {body.name!r} exists") from err


@router.delete(
    "/channels/{channel_id}",
    dependencies=[require(*MANAGERS)],
    summary="Delete a notification channel and its subscriptions",
    status_code=204,
    response_class=Response,
    responses=_NOT_FOUND,
)
async def delete_channel(engine: Engine, user: CurrentUser, channel_id: ChannelId) -> Response:
    """Delete the channel and its subscriptions; its unsent deliveries become dead (kept in the log)."""
    async with _writing(engine) as conn:
        await _visible_channel(conn, user, channel_id)
        await conn.execute(
            update(notification_deliveries)
            .where(dl.channel_id == channel_id, dl.status.in_((PENDING, FAILED)))
            .values(status=DEAD, last_error="the channel was deleted")
        )
        await conn.execute(delete(notification_subscriptions).where(sub.channel_id == channel_id))
        await conn.execute(delete(notification_channels).where(ch.id == channel_id))
    return Response(status_code=204)


# --- subscriptions --------------------------------------------------------------------------------


async def _visible_subscription(
    conn: AsyncConnection, user: User, subscription_id: int
) -> SubscriptionOut:
    query = select(notification_subscriptions).where(
        sub.id == subscription_id, _subscription_scope(user)
    )
    row = await one_or_404(conn, query, f"no notification subscription {subscription_id}")
    return SubscriptionOut.model_validate(dict(row))


def _area_for(user: User, area: str | None) -> str:
    chosen = normal_path(user.area if area is None else area)
    if not user.sees_everything and not within_area(chosen, user.area):
        raise HTTPException(403, f"the area {chosen!r} is outside yours ({user.area!r})")
    return chosen


@router.get(
    "/subscriptions",
    dependencies=[require(*MANAGERS)],
    summary="Notification subscriptions, oldest first",
    response_model=Page[SubscriptionOut],
)
async def list_subscriptions(
    engine: Engine,
    user: CurrentUser,
    channel_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="of this channel only")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[SubscriptionOut]:
    """The subscriptions of the user's company within their area (administrators: all)."""
    query = select(notification_subscriptions).where(_subscription_scope(user))
    if channel_id is not None:
        query = query.where(sub.channel_id == channel_id)
    start = _page_after(after)
    if start is not None:
        query = query.where(sub.id > start)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(sub.id).limit(limit + 1))).mappings().all()
    items = [SubscriptionOut.model_validate(dict(r)) for r in rows[:limit]]
    cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page[SubscriptionOut](items=items, next=cursor)


@router.post(
    "/subscriptions",
    dependencies=[require(*MANAGERS)],
    summary="Subscribe a channel to a topic pattern",
    status_code=201,
    response_model=SubscriptionOut,
    responses={404: {"description": "No such channel in the user's scope"}},
)
async def add_subscription(
    engine: Engine, user: CurrentUser, body: SubscriptionIn
) -> SubscriptionOut:
    """Create a subscription of the channel's company; `area` defaults to the user's area."""
    area = _area_for(user, body.area)
    async with _writing(engine) as conn:
        channel = await _visible_channel(conn, user, body.channel_id)
        new_id = (
            await conn.execute(
                insert(notification_subscriptions)
                .values(
                    channel_id=channel.id,
                    company=channel.company,
                    topic=body.topic,
                    min_severity=body.min_severity.value,
                    role=None if body.role is None else body.role.value,
                    area=area,
                    enabled=body.enabled,
                    created_at=_now(),
                )
                .returning(sub.id)
            )
        ).scalar_one()
        return await _visible_subscription(conn, user, new_id)


@router.get(
    "/subscriptions/{subscription_id}",
    dependencies=[require(*MANAGERS)],
    summary="One notification subscription",
    response_model=SubscriptionOut,
    responses=_NOT_FOUND,
)
async def get_subscription(
    engine: Engine, user: CurrentUser, subscription_id: SubscriptionId
) -> SubscriptionOut:
    """The subscription."""
    async with engine.connect() as conn:
        return await _visible_subscription(conn, user, subscription_id)


@router.patch(
    "/subscriptions/{subscription_id}",
    dependencies=[require(*MANAGERS)],
    summary="Change a notification subscription",
    response_model=SubscriptionOut,
    responses=_NOT_FOUND,
)
async def change_subscription(
    engine: Engine, user: CurrentUser, subscription_id: SubscriptionId, body: SubscriptionPatch
) -> SubscriptionOut:
    """Change the fields given."""
    changes = body.model_dump(include=body.model_fields_set, mode="json")
    for key in ("topic", "min_severity", "area", "enabled"):
        if key in changes and changes[key] is None:
            raise HTTPException(422, f"{key} cannot be null")
    if "area" in changes:
        changes["area"] = _area_for(user, changes["area"])
    async with _writing(engine) as conn:
        await _visible_subscription(conn, user, subscription_id)
        if changes:
            await conn.execute(
                update(notification_subscriptions)
                .where(sub.id == subscription_id)
                .values(**changes)
            )
        return await _visible_subscription(conn, user, subscription_id)


@router.delete(
    "/subscriptions/{subscription_id}",
    dependencies=[require(*MANAGERS)],
    summary="Delete a notification subscription",
    status_code=204,
    response_class=Response,
    responses=_NOT_FOUND,
)
async def delete_subscription(
    engine: Engine, user: CurrentUser, subscription_id: SubscriptionId
) -> Response:
    """Delete the subscription (deliveries already recorded are still sent)."""
    async with _writing(engine) as conn:
        await _visible_subscription(conn, user, subscription_id)
        await conn.execute(delete(notification_subscriptions).where(sub.id == subscription_id))
    return Response(status_code=204)


# --- deliveries -----------------------------------------------------------------------------------

_DELIVERY_COLUMNS: Final = [c for c in notification_deliveries.c if c.name != "payload"]


def _delivery_values(row: RowMapping) -> dict[str, object]:
    values = dict(row)
    payload = values.get("payload") or {}
    values["title"] = str(payload.get("title", "")) if isinstance(payload, dict) else ""
    return values


@router.get(
    "/deliveries",
    dependencies=[require(*LOG_READERS)],
    summary="The delivery log, newest first",
    response_model=Page[DeliveryOut],
)
async def list_deliveries(
    *,
    engine: Engine,
    user: CurrentUser,
    status: Annotated[Status | None, Query(description="only this status")] = None,
    topic: Annotated[str | None, Query(max_length=256, description="only this topic")] = None,
    channel_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only to this channel")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> Page[DeliveryOut]:
    """Deliveries of the user's company within their area (administrators: all)."""
    query = select(*_DELIVERY_COLUMNS, dl.payload).where(_delivery_scope(user))
    if status is not None:
        query = query.where(dl.status == status)
    if topic is not None:
        query = query.where(dl.topic == topic)
    if channel_id is not None:
        query = query.where(dl.channel_id == channel_id)
    start = _page_after(after)
    if start is not None:
        query = query.where(dl.id < start)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(dl.id.desc()).limit(limit + 1))).mappings().all()
    items = [DeliveryOut.model_validate(_delivery_values(r)) for r in rows[:limit]]
    cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page[DeliveryOut](items=items, next=cursor)


@router.get(
    "/deliveries/{delivery_id}",
    dependencies=[require(*LOG_READERS)],
    summary="One delivery with its document and every try",
    response_model=DeliveryDetail,
    responses=_NOT_FOUND,
)
async def get_delivery(
    engine: Engine, user: CurrentUser, delivery_id: DeliveryId
) -> DeliveryDetail:
    """The delivery, what it sends, and its tries in order."""
    a = notification_attempts.c
    async with engine.connect() as conn:
        query = select(notification_deliveries).where(dl.id == delivery_id, _delivery_scope(user))
        row = await one_or_404(conn, query, f"no notification delivery {delivery_id}")
        tries = (
            (
                await conn.execute(
                    select(a.attempt, a.at, a.ok, a.error)
                    .where(a.delivery_id == delivery_id)
                    .order_by(a.id)
                )
            )
            .mappings()
            .all()
        )
    values = _delivery_values(row)
    values["tries"] = [AttemptOut.model_validate(dict(t)) for t in tries]
    return DeliveryDetail.model_validate(values)
