"""The live stream's outbox of events.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `stream_events` (ids never reused: `AUTOINCREMENT` on SQLite)."""
    op.create_table(
        "stream_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("company", sa.String(128), nullable=False, server_default=""),
        sa.Column("location", sa.String(1024), nullable=False, server_default=""),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_events")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_stream_events_at"), "stream_events", ["at"])


def downgrade() -> None:
    """Undo `upgrade`."""
    op.drop_index(op.f("ix_stream_events_at"), table_name="stream_events")
    op.drop_table("stream_events")
