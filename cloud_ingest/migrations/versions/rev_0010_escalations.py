"""SLA breaches and escalations, and approval of a hold.

Adds `work_order_escalations` (one row per breach the scheduler acted on, UNIQUE `key`) and the
columns of an approved hold on `work_orders` (`hold_approved_at`, `hold_due_at`).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create `work_order_escalations`; add the hold columns to `work_orders`."""
    with op.batch_alter_table("work_orders") as batch:
        batch.add_column(sa.Column("hold_approved_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("hold_due_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "work_order_escalations",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("from_level", sa.String(16), nullable=False),
        sa.Column("to_level", sa.String(16), nullable=False),
        sa.Column("target", sa.String(1024), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["work_orders.id"],
            name=op.f("fk_work_order_escalations_order_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_escalations")),
        sa.UniqueConstraint("key", name=op.f("uq_work_order_escalations_key")),
    )
    op.create_index(
        op.f("ix_work_order_escalations_order_id"), "work_order_escalations", ["order_id"]
    )


def downgrade() -> None:
    """Drop `work_order_escalations` and the hold columns."""
    op.drop_index(op.f("ix_work_order_escalations_order_id"), table_name="work_order_escalations")
    op.drop_table("work_order_escalations")
    with op.batch_alter_table("work_orders") as batch:
        batch.drop_column("hold_due_at")
        batch.drop_column("hold_approved_at")
