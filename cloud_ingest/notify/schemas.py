"""The request and answer bodies of `/api/v1/notifications`."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cloud_ingest.auth.models import Role
from cloud_ingest.paging import IsoTime
from core.types import Severity

MAX_ID: Final = 2**63 - 1
"""The largest row id (64-bit)."""

Kind = Literal["webhook", "robot", "email"]
Status = Literal["pending", "sent", "failed", "dead"]
TopicPattern = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256, pattern=r"^[a-z0-9_*-]+(\.[a-z0-9_*-]+)*$"),
]
"""Dot-separated words; `*` matches anything: `*`, `work_order.*`, `alarm.critical`."""
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Target = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Area = Annotated[str, StringConstraints(max_length=1024)]


class ChannelIn(BaseModel):
    """A new channel. `secret`: webhook HMAC key, DingTalk robot secret or SMTP password.

    `options`: `style` (`dingtalk`, `wecom`) for robots; `smtp_host`, `smtp_port`, `sender`,
    `smtp_username`, `starttls` for e-mail (defaults from the server's settings).
    """

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: Kind
    target: Target = Field(description="the URL (webhook, robot) or the addresses (email)")
    secret: Secret | None = None
    options: dict[str, str | int | bool] = Field(default_factory=dict)
    enabled: bool = True
    company: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        default=None,
        description="administrators only: the company (empty: every company); "
        "others always create channels of their own company",
    )


class ChannelPatch(BaseModel):
    """Changes to a channel; absent fields stay, `secret: null` removes the secret."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    target: Target | None = None
    secret: Secret | None = None
    options: dict[str, str | int | bool] | None = None
    enabled: bool | None = None


class ChannelOut(BaseModel):
    """A channel; its secret is never shown, only whether it has one."""

    id: int
    company: str
    name: str
    kind: str
    target: str
    has_secret: bool
    options: dict[str, object]
    enabled: bool
    created_at: IsoTime


class SubscriptionIn(BaseModel):
    """A new subscription of a channel (of the channel's company)."""

    model_config = ConfigDict(extra="forbid")

    channel_id: int = Field(ge=1, le=MAX_ID)
    topic: TopicPattern
    min_severity: Severity = Severity.INFO
    role: Role | None = Field(
        default=None, description="only events addressed to this role (`data.roles`)"
    )
    area: Area | None = Field(
        default=None, description="a site path prefix; default: the user's area"
    )
    enabled: bool = True


class SubscriptionPatch(BaseModel):
    """Changes to a subscription; absent fields stay (`role: null` removes the role)."""

    model_config = ConfigDict(extra="forbid")

    topic: TopicPattern | None = None
    min_severity: Severity | None = None
    role: Role | None = None
    area: Area | None = None
    enabled: bool | None = None


class SubscriptionOut(BaseModel):
    """A subscription."""

    id: int
    channel_id: int
    company: str
    topic: str
    min_severity: str
    role: str | None
    area: str
    enabled: bool
    created_at: IsoTime


class DeliveryOut(BaseModel):
    """One entry of the delivery log."""

    id: int
    channel_id: int
    subscription_id: int | None
    company: str
    location: str
    topic: str
    severity: str
    title: str
    status: str
    attempts: int
    next_attempt_at: IsoTime
    last_error: str | None
    created_at: IsoTime
    sent_at: IsoTime | None


class AttemptOut(BaseModel):
    """One try of a delivery."""

    attempt: int
    at: IsoTime
    ok: bool
    error: str | None


class DeliveryDetail(DeliveryOut):
    """A delivery with what it sends and every try."""

    payload: dict[str, object]
    tries: list[AttemptOut]
