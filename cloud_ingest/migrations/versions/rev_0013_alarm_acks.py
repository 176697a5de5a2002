"""Acknowledging alarms: who acknowledged which episode of an instance, and people's notes on it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `alarm_instances.acked_*` and create `alarm_notes`."""
    with op.batch_alter_table("alarm_instances") as batch:
        batch.add_column(sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("acked_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("acked_episode", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "alarm_notes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("fingerprint", sa.String(1024), nullable=False),
        sa.Column("episode", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.String(2048), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_notes")),
    )
    op.create_index("ix_alarm_notes_fingerprint_id", "alarm_notes", ["fingerprint", "id"])


def downgrade() -> None:
    """Undo `upgrade`."""
    op.drop_index("ix_alarm_notes_fingerprint_id", table_name="alarm_notes")
    op.drop_table("alarm_notes")
    with op.batch_alter_table("alarm_instances") as batch:
        batch.drop_column("acked_episode")
        batch.drop_column("acked_by")
        batch.drop_column("acked_at")
