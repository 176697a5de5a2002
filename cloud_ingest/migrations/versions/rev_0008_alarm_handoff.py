"""Alarm instances waiting for the work-order service (`alarm_instances.handoff_pending`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `alarm_instances.handoff_pending` (false for every instance there is) and its index."""
    with op.batch_alter_table("alarm_instances") as batch:
        batch.add_column(
            sa.Column("handoff_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index(
        op.f("ix_alarm_instances_handoff_pending"), "alarm_instances", ["handoff_pending"]
    )


def downgrade() -> None:
    """Drop `alarm_instances.handoff_pending` and its index."""
    op.drop_index(op.f("ix_alarm_instances_handoff_pending"), table_name="alarm_instances")
    with op.batch_alter_table("alarm_instances") as batch:
        batch.drop_column("handoff_pending")
