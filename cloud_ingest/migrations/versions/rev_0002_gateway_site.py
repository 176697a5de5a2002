"""Gateways: the site path given by the administrator (`cloud-ingest gateways add --site`).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `gateways.site` (empty for gateways registered before)."""
    with op.batch_alter_table("gateways") as batch:
        batch.add_column(sa.Column("site", sa.String(1024), nullable=False, server_default=""))


def downgrade() -> None:
    """Drop `gateways.site`."""
    with op.batch_alter_table("gateways") as batch:
        batch.drop_column("site")
