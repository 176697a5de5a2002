"""The site tree, device positions on a plan, gateway outage times and alarm inhibition.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `sites`; add device plan positions, gateway outage times, alarm inhibition."""
    op.create_table(
        "sites",
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("parent", sa.String(1024), nullable=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("company", sa.String(128), nullable=False, server_default=""),
        sa.Column("plan", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_sites")),
    )
    op.create_index(op.f("ix_sites_parent"), "sites", ["parent"])
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("plan_x", sa.Float(), nullable=True))
        batch.add_column(sa.Column("plan_y", sa.Float(), nullable=True))
    with op.batch_alter_table("gateways") as batch:
        batch.add_column(sa.Column("offline_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("online_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("status_session", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("alarm_instances") as batch:
        batch.add_column(sa.Column("inhibited_by", sa.String(1024), nullable=True))


def downgrade() -> None:
    """Undo `upgrade`."""
    with op.batch_alter_table("alarm_instances") as batch:
        batch.drop_column("inhibited_by")
    with op.batch_alter_table("gateways") as batch:
        batch.drop_column("status_session")
        batch.drop_column("online_since")
        batch.drop_column("offline_since")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("plan_y")
        batch.drop_column("plan_x")
    op.drop_index(op.f("ix_sites_parent"), table_name="sites")
    op.drop_table("sites")
