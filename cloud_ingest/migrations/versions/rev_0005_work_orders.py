"""Work orders, their append-only events and the alarm instances attached to them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create `work_orders`, `work_order_events`, `work_order_alarms`, `work_order_numbers`."""
    op.create_table(
        "work_orders",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("priority", sa.String(2), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("company", sa.String(128), nullable=False, server_default=""),
        sa.Column("location", sa.String(1024), nullable=False, server_default=""),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("description", sa.String(4096), nullable=False, server_default=""),
        sa.Column("fingerprint", sa.String(1024), nullable=True),
        sa.Column("external_ref", sa.String(128), nullable=True),
        sa.Column("external_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requester", sa.String(128), nullable=True),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("handler", sa.String(128), nullable=True),
        sa.Column("verifier", sa.String(128), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rework_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_alarm_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders")),
        sa.UniqueConstraint("number", name=op.f("uq_work_orders_number")),
        sa.UniqueConstraint(
            "source", "external_ref", name=op.f("uq_work_orders_source_external_ref")
        ),
    )
    op.create_index("ix_work_orders_state_id", "work_orders", ["state", "id"])
    op.create_index("ix_work_orders_company_id", "work_orders", ["company", "id"])
    op.create_index(
        "ix_work_orders_location_category_state",
        "work_orders",
        ["location", "category", "state"],
    )
    op.create_index("ix_work_orders_requester", "work_orders", ["requester"])
    op.create_index("ix_work_orders_assignee", "work_orders", ["assignee"])
    op.create_index("ix_work_orders_due_at", "work_orders", ["due_at"])
    op.create_table(
        "work_order_events",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(24), nullable=True),
        sa.Column("to_state", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(2048), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("dedupe", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["work_orders.id"],
            name=op.f("fk_work_order_events_order_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_events")),
        sa.UniqueConstraint("order_id", "seq", name=op.f("uq_work_order_events_order_id_seq")),
        sa.UniqueConstraint("dedupe", name=op.f("uq_work_order_events_dedupe")),
    )
    op.create_index("ix_work_order_events_at", "work_order_events", ["at"])
    op.create_table(
        "work_order_alarms",
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(1024), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["work_orders.id"],
            name=op.f("fk_work_order_alarms_order_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("order_id", "fingerprint", name=op.f("pk_work_order_alarms")),
    )
    op.create_index("ix_work_order_alarms_fingerprint", "work_order_alarms", ["fingerprint"])
    op.create_table(
        "work_order_numbers",
        sa.Column("day", sa.String(8), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_work_order_numbers")),
    )


def downgrade() -> None:
    """Undo `upgrade`."""
    op.drop_table("work_order_numbers")
    op.drop_index("ix_work_order_alarms_fingerprint", table_name="work_order_alarms")
    op.drop_table("work_order_alarms")
    op.drop_index("ix_work_order_events_at", table_name="work_order_events")
    op.drop_table("work_order_events")
    for name in (
        "ix_work_orders_due_at",
        "ix_work_orders_assignee",
        "ix_work_orders_requester",
        "ix_work_orders_location_category_state",
        "ix_work_orders_company_id",
        "ix_work_orders_state_id",
    ):
        op.drop_index(name, table_name="work_orders")
    op.drop_table("work_orders")
