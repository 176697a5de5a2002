"""Notifications: channels, subscriptions, the delivery outbox and log, and every attempt.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the four notification tables."""
    op.create_table(
        "notification_channels",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("company", sa.String(128), nullable=False, server_default=""),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(512), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_channels")),
        sa.UniqueConstraint("company", "name", name=op.f("uq_notification_channels_company_name")),
    )
    op.create_table(
        "notification_subscriptions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("channel_id", _ID, nullable=False),
        sa.Column("company", sa.String(128), nullable=False, server_default=""),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("min_severity", sa.String(16), nullable=False, server_default="info"),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("area", sa.String(1024), nullable=False, server_default=""),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notification_channels.id"],
            name=op.f("fk_notification_subscriptions_channel_id_notification_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_subscriptions")),
    )
    op.create_index(
        op.f("ix_notification_subscriptions_channel_id"),
        "notification_subscriptions",
        ["channel_id"],
    )
    op.create_index(
        op.f("ix_notification_subscriptions_company"), "notification_subscriptions", ["company"]
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("subscription_id", _ID, nullable=True),
        sa.Column("channel_id", _ID, nullable=False),
        sa.Column("company", sa.String(128), nullable=False, server_default=""),
        sa.Column("location", sa.String(1024), nullable=False, server_default=""),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(1024), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
    )
    op.create_index(
        op.f("ix_notification_deliveries_channel_id"), "notification_deliveries", ["channel_id"]
    )
    op.create_index(
        "ix_notification_deliveries_status_next_attempt_at",
        "notification_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_table(
        "notification_attempts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("delivery_id", _ID, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(1024), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["notification_deliveries.id"],
            name=op.f("fk_notification_attempts_delivery_id_notification_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_attempts")),
    )
    op.create_index(
        op.f("ix_notification_attempts_delivery_id"), "notification_attempts", ["delivery_id"]
    )


def downgrade() -> None:
    """Undo `upgrade`."""
    op.drop_index(op.f("ix_notification_attempts_delivery_id"), table_name="notification_attempts")
    op.drop_table("notification_attempts")
    op.drop_index(
        "ix_notification_deliveries_status_next_attempt_at", table_name="notification_deliveries"
    )
    op.drop_index(
        op.f("ix_notification_deliveries_channel_id"), table_name="notification_deliveries"
    )
    op.drop_table("notification_deliveries")
    op.drop_index(
        op.f("ix_notification_subscriptions_company"), table_name="notification_subscriptions"
    )
    op.drop_index(
        op.f("ix_notification_subscriptions_channel_id"), table_name="notification_subscriptions"
    )
    op.drop_table("notification_subscriptions")
    op.drop_table("notification_channels")
