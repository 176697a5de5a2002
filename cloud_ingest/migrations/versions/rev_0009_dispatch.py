"""Teams, technicians, rosters and the shared pool of lent technicians and equipment.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create `teams`, `technicians`, `shifts`, `equipment` and `loans`."""
    op.create_table(
        "teams",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("company", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("area", sa.String(1024), nullable=False, server_default=""),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("company", "name", name=op.f("uq_teams_company_name")),
    )
    op.create_table(
        "technicians",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("company", sa.String(128), nullable=False),
        sa.Column("team_id", _ID, nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_technicians_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_technicians")),
    )
    op.create_index(op.f("ix_technicians_team_id"), "technicians", ["team_id"])
    op.create_table(
        "shifts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("company", sa.String(128), nullable=False),
        sa.Column("technician", sa.String(128), nullable=False),
        sa.Column("starts_at", _TIME, nullable=False),
        sa.Column("ends_at", _TIME, nullable=False),
        sa.Column("note", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["technician"],
            ["technicians.name"],
            name=op.f("fk_shifts_technician_technicians"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shifts")),
    )
    op.create_index("ix_shifts_technician_starts_at", "shifts", ["technician", "starts_at"])
    op.create_index("ix_shifts_company_starts_at", "shifts", ["company", "starts_at"])
    op.create_table(
        "equipment",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("company", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("note", sa.String(1024), nullable=False, server_default=""),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_equipment")),
        sa.UniqueConstraint("company", "name", name=op.f("uq_equipment_company_name")),
    )
    op.create_table(
        "loans",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("lender", sa.String(128), nullable=False),
        sa.Column("borrower", sa.String(128), nullable=False),
        sa.Column("technician", sa.String(128), nullable=True),
        sa.Column("equipment_id", _ID, nullable=True),
        sa.Column("order_id", _ID, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("note", sa.String(2048), nullable=False, server_default=""),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("requested_at", _TIME, nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_at", _TIME, nullable=True),
        sa.Column("reason", sa.String(2048), nullable=True),
        sa.Column("returned_by", sa.String(128), nullable=True),
        sa.Column("returned_at", _TIME, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["equipment_id"], ["equipment.id"], name=op.f("fk_loans_equipment_id_equipment")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["work_orders.id"], name=op.f("fk_loans_order_id_work_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loans")),
    )
    op.create_index("ix_loans_lender_id", "loans", ["lender", "id"])
    op.create_index("ix_loans_borrower_id", "loans", ["borrower", "id"])
    op.create_index("ix_loans_technician_state", "loans", ["technician", "state"])


def downgrade() -> None:
    """Undo `upgrade`."""
    op.drop_index("ix_loans_technician_state", table_name="loans")
    op.drop_index("ix_loans_borrower_id", table_name="loans")
    op.drop_index("ix_loans_lender_id", table_name="loans")
    op.drop_table("loans")
    op.drop_table("equipment")
    op.drop_index("ix_shifts_company_starts_at", table_name="shifts")
    op.drop_index("ix_shifts_technician_starts_at", table_name="shifts")
    op.drop_table("shifts")
    op.drop_index(op.f("ix_technicians_team_id"), table_name="technicians")
    op.drop_table("technicians")
    op.drop_table("teams")
