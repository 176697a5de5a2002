"""Initial schema: gateways, devices, ingested batches, readings, alarm events and instances, dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table of the first schema."""
    op.create_table(
        "gateways",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("company", sa.String(128), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False, server_default="unknown"),
        _time("last_seen", nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("password_hash", sa.String(256), nullable=True),
        sa.Column("token_hash", sa.String(256), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateways")),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(256), nullable=False),
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False, server_default=""),
        sa.Column("location", sa.String(1024), nullable=False, server_default=""),
        sa.Column("labels", sa.JSON(), nullable=False),
        _time("first_seen"),
        _time("last_seen"),
        sa.ForeignKeyConstraint(
            ["gateway_id"], ["gateways.id"], name=op.f("fk_devices_gateway_id_gateways")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index(op.f("ix_devices_gateway_id"), "devices", ["gateway_id"])
    op.create_table(
        "ingested_batches",
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("gateway_id", sa.String(128), nullable=False),
        _time("sent_at"),
        _time("received_at"),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("alarm_events", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_ingested_batches")),
    )
    op.create_table(
        "readings",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("device_id", sa.String(256), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        _time("ts"),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("value_bool", sa.Boolean(), nullable=True),
        sa.Column("quality", sa.String(16), nullable=False),
        sa.Column("codec", sa.String(256), nullable=False),
        sa.Column("derived_from", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readings")),
    )
    op.create_index("ix_readings_device_id_metric_ts", "readings", ["device_id", "metric", "ts"])
    op.create_table(
        "alarm_events",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(1024), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        _time("starts_at"),
        _time("at"),
        sa.Column("rule_id", sa.String(256), nullable=False),
        sa.Column("device_id", sa.String(256), nullable=False),
        sa.Column("location", sa.String(1024), nullable=False),
        sa.Column("description", sa.String(4096), nullable=False),
        _time("valid_until", nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("value_bool", sa.Boolean(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("suppressed", sa.JSON(), nullable=False),
        sa.Column("work_order", sa.JSON(), nullable=True),
        sa.Column("rule_version", sa.String(64), nullable=False),
        _time("received_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_events")),
        sa.UniqueConstraint("fingerprint", "seq", name=op.f("uq_alarm_events_fingerprint_seq")),
    )
    op.create_table(
        "alarm_instances",
        sa.Column("fingerprint", sa.String(1024), nullable=False),
        sa.Column("gateway_id", sa.String(128), nullable=False),
        sa.Column("device_id", sa.String(256), nullable=False),
        sa.Column("rule_id", sa.String(256), nullable=False),
        sa.Column("location", sa.String(1024), nullable=False),
        sa.Column("description", sa.String(4096), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        _time("starts_at"),
        _time("first_event_at"),
        _time("last_event_at"),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        _time("valid_until", nullable=True),
        sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("work_order", sa.JSON(), nullable=True),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_alarm_instances")),
    )
    op.create_index(op.f("ix_alarm_instances_device_id"), "alarm_instances", ["device_id"])
    op.create_index(op.f("ix_alarm_instances_state"), "alarm_instances", ["state"])
    op.create_table(
        "dead_letters",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        _time("received_at"),
        sa.Column("topic", sa.String(512), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(1024), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index(op.f("ix_dead_letters_received_at"), "dead_letters", ["received_at"])
    op.create_index(op.f("ix_dead_letters_reason"), "dead_letters", ["reason"])


def downgrade() -> None:
    """Drop every table of the first schema."""
    for table in (
        "dead_letters",
        "alarm_instances",
        "alarm_events",
        "readings",
        "ingested_batches",
        "devices",
        "gateways",
    ):
        op.drop_table(table)
