"""The `gateways` rows the administrator manages: add (with fresh credentials), rotate, list.

A gateway's credentials are made here and returned once; only their hashes are stored
(`cloud_ingest.gateways.secrets`). A row that the ingest registered on first sight (no credentials
yet, `require_registration` off) is taken over by `add`; a row with credentials is refused unless
the credentials are rotated on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.gateways.ids import check_company, check_gateway_id
from cloud_ingest.gateways.secrets import mosquitto_hash, new_secret, token_hash
from cloud_ingest.infra.db import WRITE_TRANSACTION
from cloud_ingest.infra.schema import gateways
from core.site import SitePath


class GatewayError(ValueError):
    """A gateway cannot be added or changed as asked; the message says why in one line."""


class GatewayConflictError(GatewayError):
    """The request is valid but does not fit the stored gateways (a duplicate, an unknown id)."""


@dataclass(frozen=True, slots=True)
class GatewayCredentials:
    """What a gateway needs to report: shown once, never stored in clear."""

    gateway_id: str
    mqtt_password: str
    http_token: str

    @property
    def mqtt_username(self) -> str:
        """The broker user name: the gateway id."""
        return self.gateway_id


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """One gateway as the administration lists it."""

    gateway_id: str
    company: str
    site: str
    status: str
    last_seen: datetime | None
    has_credentials: bool


async def add_gateway(
    engine: AsyncEngine,
    gateway_id: str,
    *,
    company: str | None,
    site: str | None = None,
    rotate: bool = False,
    now: datetime | None = None,
) -> GatewayCredentials:
    """Create (or, with `rotate`, re-key) a gateway and return its new credentials.

    Without `rotate`, `company` is required and a gateway that already has credentials is refused.
    With `rotate`, the gateway must exist; both secrets are replaced, and `company` and `site` are
    changed only when given.

    Raises:
        GatewayConflictError: the gateway already has credentials (without `rotate`), or does not
            exist (with `rotate`).
        GatewayError: a bad id, company or site.
    """
    try:
        check_gateway_id(gateway_id)
        company = None if company is None else check_company(company)
        site = None if site is None else str(SitePath.parse(site))
    except ValueError as err:
        raise GatewayError(str(err)) from None
    if company is None and not rotate:
        raise GatewayError("--company is required to add a gateway")
    credentials = GatewayCredentials(gateway_id, new_secret(), new_secret())
    values: dict[str, object] = {
        "password_hash": mosquitto_hash(credentials.mqtt_password),
        "token_hash": token_hash(credentials.http_token),
    }
    if company is not None:
        values["company"] = company
    if site is not None:
        values["site"] = site
    try:
        async with engine.connect() as connection:
            conn = await connection.execution_options(**{WRITE_TRANSACTION: True})
            async with conn.begin():
                found = await conn.execute(
                    select(gateways.c.password_hash).where(gateways.c.id == gateway_id)
                )
                row = found.one_or_none()
                if row is None:
                    if rotate:
                        raise GatewayConflictError(
                            f"no gateway {gateway_id!r} to rotate; add it first"
                        )
                    created = now or datetime.now(UTC)
                    await conn.execute(
                        insert(gateways).values(id=gateway_id, created_at=created, **values)
                    )
                else:
                    if row.password_hash is not None and not rotate:
                        raise GatewayConflictError(
                            f"gateway {gateway_id!r} already exists; "
                            "use --rotate to issue new credentials"
                        )
                    await conn.execute(
                        update(gateways).where(gateways.c.id == gateway_id).values(**values)
                    )
    except IntegrityError:
        # Added by someone else between our read and our insert.
        raise GatewayConflictError(
            f"gateway {gateway_id!r} already exists; use --rotate to issue new credentials"
        ) from None
    return credentials


async def list_gateways(engine: AsyncEngine) -> list[GatewayInfo]:
    """Every gateway, by id."""
    query = select(
        gateways.c.id,
        gateways.c.company,
        gateways.c.site,
        gateways.c.status,
        gateways.c.last_seen,
        gateways.c.password_hash.is_not(None).label("has_credentials"),
    ).order_by(gateways.c.id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        GatewayInfo(r.id, r.company, r.site, r.status, r.last_seen, bool(r.has_credentials))
        for r in rows
    ]


async def password_hashes(engine: AsyncEngine) -> list[tuple[str, str]]:
    """`(gateway id, $7$ hash)` of every gateway that has MQTT credentials, by id."""
    query = (
        select(gateways.c.id, gateways.c.password_hash)
        .where(gateways.c.password_hash.is_not(None))
        .order_by(gateways.c.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [(r.id, r.password_hash) for r in rows]


def credentialed_ids(entries: Iterable[tuple[str, str]]) -> list[str]:
    """The ids of `password_hashes` entries (the gateways the ACL file lists)."""
    return [gateway_id for gateway_id, _hash in entries]
