"""The tables of the cloud ingest, as SQLAlchemy Core tables on one `MetaData`.

The Alembic revisions under `cloud_ingest/migrations/` create exactly these tables (a test
compares the migrated database with this module). Every time is a `UtcDateTime`.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    Uuid,
    false,
    true,
)

from cloud_ingest.infra.db import UtcDateTime

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names, so batch migrations on SQLite can find every constraint by name."""

metadata: Final = MetaData(naming_convention=NAMING_CONVENTION)

BigId: Final = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit surrogate key (SQLite's INTEGER PRIMARY KEY is its 64-bit rowid)."""

DEAD_LETTER_PAYLOAD_MAX: Final = 64 * 1024
"""At most this many bytes of a refused message are kept in its dead letter."""

gateways: Final = Table(
    "gateways",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("company", String(128), nullable=False, server_default=""),
    Column("site", String(1024), nullable=False, server_default=""),
    Column("status", String(16), nullable=False, server_default="unknown"),
    Column("last_seen", UtcDateTime(), nullable=True),
    Column("version", String(64), nullable=True),
    Column("password_hash", String(256), nullable=True),
    Column("token_hash", String(256), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("offline_since", UtcDateTime(), nullable=True),
    Column("online_since", UtcDateTime(), nullable=True),
    Column("status_session", UtcDateTime(), nullable=True),
)
"""`status` is online, offline or unknown; `offline_since` is when the latest outage began and is kept
after it ends (with `online_since`), so events the gateway replays from that outage can be told.
`status_session` is the `session` of the status applied last: an older one is not applied again."""

devices: Final = Table(
    "devices",
    metadata,
    Column("id", String(256), primary_key=True),
    Column("gateway_id", String(128), ForeignKey("gateways.id"), nullable=False, index=True),
    Column("kind", String(64), nullable=False, server_default=""),
    Column("location", String(1024), nullable=False, server_default=""),
    Column("labels", JSON(), nullable=False),
    Column("first_seen", UtcDateTime(), nullable=False),
    Column("last_seen", UtcDateTime(), nullable=False),
    Column("plan_x", Float(), nullable=True),
    Column("plan_y", Float(), nullable=True),
)
"""`plan_x`/`plan_y` place the device on the plan of its compound (the site's `plan` coordinates)."""

sites: Final = Table(
    "sites",
    metadata,
    Column("path", String(1024), primary_key=True),
    Column("parent", String(1024), nullable=True, index=True),
    Column("level", String(16), nullable=False),
    Column("name", String(256), nullable=False),
    Column("company", String(128), nullable=False, server_default=""),
    Column("plan", JSON(none_as_null=True), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)
"""The site tree (district / street / community / grid / compound / building / unit): `path` is the
"/"-joined segments from the district down, `parent` the path one level up, `name` what people call
it, `company` the property company that manages it, `plan` its shape on its parent's plan."""

ingested_batches: Final = Table(
    "ingested_batches",
    metadata,
    Column("batch_id", Uuid(), primary_key=True),
    Column("gateway_id", String(128), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("readings", Integer(), nullable=False),
    Column("alarm_events", Integer(), nullable=False),
)

readings: Final = Table(
    "readings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("gateway_id", String(128), nullable=False),
    Column("device_id", String(256), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("ts", UtcDateTime(), nullable=False),
    Column("value", Float(), nullable=False),
    Column("value_bool", Boolean(), nullable=True),
    Column("quality", String(16), nullable=False),
    Column("codec", String(256), nullable=False),
    Column("derived_from", String(64), nullable=True),
    Index("ix_readings_device_id_metric_ts", "device_id", "metric", "ts"),
)
"""The embedded telemetry store: `value` is the number (a boolean as 0 or 1); `value_bool` is set
only for a boolean value."""

alarm_events: Final = Table(
    "alarm_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("fingerprint", String(1024), nullable=False),
    Column("seq", BigInteger(), nullable=False),
    Column("gateway_id", String(128), nullable=False),
    Column("batch_id", Uuid(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("rule_id", String(256), nullable=False),
    Column("device_id", String(256), nullable=False),
    Column("location", String(1024), nullable=False),
    Column("description", String(4096), nullable=False),
    Column("valid_until", UtcDateTime(), nullable=True),
    Column("value", Float(), nullable=True),
    Column("value_bool", Boolean(), nullable=True),
    Column("evidence", JSON(), nullable=False),
    Column("suppressed", JSON(), nullable=False),
    Column("work_order", JSON(none_as_null=True), nullable=True),
    Column("rule_version", String(64), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    UniqueConstraint("fingerprint", "seq"),
)
"""Every alarm event, append-only; `id` orders them as stored, (fingerprint, seq) identifies one."""

alarm_instances: Final = Table(
    "alarm_instances",
    metadata,
    Column("fingerprint", String(1024), primary_key=True),
    Column("gateway_id", String(128), nullable=False),
    Column("device_id", String(256), nullable=False, index=True),
    Column("rule_id", String(256), nullable=False),
    Column("location", String(1024), nullable=False),
    Column("description", String(4096), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("severity", String(16), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("first_event_at", UtcDateTime(), nullable=False),
    Column("last_event_at", UtcDateTime(), nullable=False),
    Column("last_seq", BigInteger(), nullable=False),
    Column("valid_until", UtcDateTime(), nullable=True),
    Column("stale", Boolean(), nullable=False, server_default=false()),
    Column("inhibited_by", String(1024), nullable=True),
    Column("handoff_pending", Boolean(), nullable=False, server_default=false(), index=True),
    Column("work_order", JSON(none_as_null=True), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("acked_at", UtcDateTime(), nullable=True),
    Column("acked_by", String(128), nullable=True),
    Column("acked_episode", UtcDateTime(), nullable=True),
)
"""One row per fingerprint: the state of its event with the highest `seq` (`last_seq`).
`acked_*` is the latest acknowledgement: who, when, and the episode acknowledged (the `starts_at`
of that time); the instance is acknowledged while its `starts_at` is still that episode's."""

alarm_notes: Final = Table(
    "alarm_notes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("fingerprint", String(1024), nullable=False),
    Column("episode", UtcDateTime(), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("text", String(2048), nullable=False, server_default=""),
    Index("ix_alarm_notes_fingerprint_id", "fingerprint", "id"),
)
"""What people said about an alarm instance, append-only: `kind` ack (with its comment) or
comment; `episode` is the instance's `starts_at` when it was said."""

dead_letters: Final = Table(
    "dead_letters",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime(), nullable=False, index=True),
    Column("topic", String(512), nullable=False),
    Column("reason", String(32), nullable=False, index=True),
    Column("detail", String(1024), nullable=False),
    Column("payload", LargeBinary(), nullable=False),
    Column("payload_size", Integer(), nullable=False),
)
"""Refused messages: why (`reason` code, `detail` in words) and the first bytes of each."""

users: Final = Table(
    "users",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("company", String(128), nullable=False, server_default=""),
    Column("area", String(1024), nullable=False, server_default=""),
    Column("token_hash", String(256), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("password_hash", String(256), nullable=True),
    Column("language", String(8), nullable=True),
)
"""People and programs that read the API: a `role`, the `company` whose rows they see, and an
`area` (a site path prefix; empty: all of the company). Only the SHA-256 of the token is kept;
`password_hash` (scrypt, `cloud_ingest.auth.passwords`) lets a person sign in to the console, and
`language` is the console language they chose (`zh`, `en`; none: the default)."""


# --- work orders --------------------------------------------------------------------------------

work_orders: Final = Table(
    "work_orders",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("number", String(32), nullable=False, unique=True),
    Column("source", String(16), nullable=False),
    Column("category", String(64), nullable=False),
    Column("priority", String(2), nullable=False),
    Column("state", String(24), nullable=False),
    Column("company", String(128), nullable=False, server_default=""),
    Column("location", String(1024), nullable=False, server_default=""),
    Column("title", String(256), nullable=False),
    Column("description", String(4096), nullable=False, server_default=""),
    Column("fingerprint", String(1024), nullable=True),
    Column("external_ref", String(128), nullable=True),
    Column("external_deadline", UtcDateTime(), nullable=True),
    Column("requester", String(128), nullable=True),
    Column("assignee", String(128), nullable=True),
    Column("handler", String(128), nullable=True),
    Column("verifier", String(128), nullable=True),
    Column("rating", Integer(), nullable=True),
    Column("rework_count", Integer(), nullable=False, server_default="0"),
    Column("escalation_level", Integer(), nullable=False, server_default="0"),
    Column("version", Integer(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("last_alarm_at", UtcDateTime(), nullable=True),
    Column("accepted_at", UtcDateTime(), nullable=True),
    Column("dispatched_at", UtcDateTime(), nullable=True),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("submitted_at", UtcDateTime(), nullable=True),
    Column("closed_at", UtcDateTime(), nullable=True),
    Column("due_at", UtcDateTime(), nullable=True),
    Column("hold_approved_at", UtcDateTime(), nullable=True),
    Column("hold_due_at", UtcDateTime(), nullable=True),
    Index("ix_work_orders_state_id", "state", "id"),
    Index("ix_work_orders_company_id", "company", "id"),
    Index("ix_work_orders_location_category_state", "location", "category", "state"),
    Index("ix_work_orders_requester", "requester"),
    Index("ix_work_orders_assignee", "assignee"),
    Index("ix_work_orders_due_at", "due_at"),
    UniqueConstraint("source", "external_ref"),
)
"""One work order: `number` is what people quote (WO-YYYYMMDD-NNNN); `source` alarm, resident,
hotline_12345 or inspector; `priority` P1..P4; `fingerprint` the alarm that opened it;
`external_ref`/`external_deadline` the 12345 hotline's own reference and deadline. People by user
name: `requester` the resident who asked, `assignee` the technician dispatched, `handler` who
submitted the result, `verifier` who verified it. `version` counts its events (optimistic
concurrency); `last_alarm_at` is when alarm evidence last attached; `due_at` when the current stage
is due (none while a hold is approved: `hold_approved_at` is when it was, `hold_due_at` the due time
it stopped, so `resume` gives back the time that was left)."""

work_order_events: Final = Table(
    "work_order_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", BigInteger(), ForeignKey("work_orders.id"), nullable=False),
    Column("seq", Integer(), nullable=False),
    Column("action", String(32), nullable=False),
    Column("from_state", String(24), nullable=True),
    Column("to_state", String(24), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("reason", String(2048), nullable=True),
    Column("evidence", JSON(), nullable=False),
    Column("data", JSON(), nullable=False),
    Column("dedupe", String(64), nullable=True, unique=True),
    UniqueConstraint("order_id", "seq"),
    Index("ix_work_order_events_at", "at"),
)
"""Every change of a work order, append-only: `seq` counts from 1 within the order (equal to the
order's `version` after it); `actor` is the user's name (or `system`); `evidence` holds photo
hashes and alarm fingerprints with their `seq`; `dedupe` is the SHA-256 of an alarm change that
was applied (fingerprint, seq, stale), so a redelivered change is not applied twice."""

work_order_alarms: Final = Table(
    "work_order_alarms",
    metadata,
    Column("order_id", BigInteger(), ForeignKey("work_orders.id"), primary_key=True),
    Column("fingerprint", String(1024), primary_key=True),
    Column("first_seq", BigInteger(), nullable=False),
    Column("last_seq", BigInteger(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_work_order_alarms_fingerprint", "fingerprint"),
)
"""The alarm instances attached to an order, with the state of the latest change attached."""

work_order_numbers: Final = Table(
    "work_order_numbers",
    metadata,
    Column("day", String(8), primary_key=True),
    Column("last", Integer(), nullable=False),
)
"""The last number given out per local day (`20261207`), for WO-20261207-0001."""

work_order_escalations: Final = Table(
    "work_order_escalations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", BigInteger(), ForeignKey("work_orders.id"), nullable=False, index=True),
    Column("key", String(160), nullable=False, unique=True),
    Column("stage", String(16), nullable=False),
    Column("from_level", String(16), nullable=False),
    Column("to_level", String(16), nullable=False),
    Column("target", String(1024), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("next_due_at", UtcDateTime(), nullable=True),
    Column("at", UtcDateTime(), nullable=False),
)
"""Each SLA breach the scheduler acted on: the overdue `stage` and its `due_at`, the level the
order rose `from_level` `to_level` (equal at the district, which is told again) and that level's
site path `target`. `key` (`escalation.breach_key`) is UNIQUE, so of several processes seeing one
breach only one records it (and escalates the order in the same transaction)."""


# --- notifications ------------------------------------------------------------------------------

notification_channels: Final = Table(
    "notification_channels",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("company", String(128), nullable=False, server_default=""),
    Column("name", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("target", String(2048), nullable=False),
    Column("secret", String(512), nullable=True),
    Column("options", JSON(), nullable=False),
    Column("enabled", Boolean(), nullable=False, server_default=true()),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("company", "name"),
)
"""Where notifications go: `kind` webhook, robot or email; `target` the URL or the mail address.
`secret` signs what is sent (webhook HMAC, DingTalk robot `sign`; for e-mail the SMTP password)
and is stored as given, since sending needs it: the API never shows it back."""

notification_subscriptions: Final = Table(
    "notification_subscriptions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "channel_id",
        BigId,
        ForeignKey("notification_channels.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("company", String(128), nullable=False, server_default="", index=True),
    Column("topic", String(256), nullable=False),
    Column("min_severity", String(16), nullable=False, server_default="info"),
    Column("role", String(16), nullable=True),
    Column("area", String(1024), nullable=False, server_default=""),
    Column("enabled", Boolean(), nullable=False, server_default=true()),
    Column("created_at", UtcDateTime(), nullable=False),
)
"""Which events a channel receives: a `topic` pattern (`work_order.*`), a minimum severity, the
`company` (empty: every company) and an `area` (site path prefix; empty: the whole company);
`role`, when set, limits it to events addressed to that role."""

notification_deliveries: Final = Table(
    "notification_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("subscription_id", BigId, nullable=True),
    Column("channel_id", BigId, nullable=False, index=True),
    Column("company", String(128), nullable=False, server_default=""),
    Column("location", String(1024), nullable=False, server_default=""),
    Column("topic", String(256), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("payload", JSON(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("last_error", String(1024), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    Index("ix_notification_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
)
"""The outbox and log of notifications: one row per (event, subscription), `status` pending, sent,
failed (will be retried at `next_attempt_at`) or dead (gave up after the last attempt)."""

notification_attempts: Final = Table(
    "notification_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        BigId,
        ForeignKey("notification_deliveries.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("attempt", Integer(), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("ok", Boolean(), nullable=False),
    Column("error", String(1024), nullable=True),
)
"""Every try of a delivery: when, whether it went through, and why not."""


# --- live stream ---------------------------------------------------------------------------------

stream_events: Final = Table(
    "stream_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("key", String(1024), nullable=False),
    Column("company", String(128), nullable=False, server_default=""),
    Column("location", String(1024), nullable=False, server_default=""),
    Column("data", JSON(), nullable=False),
    sqlite_autoincrement=True,
)
"""The live stream's outbox: one row per change (`kind` alarm, work_order or gateway), written in
the transaction of the change. `id` is the SSE event id: increasing, never reused (SQLite
`AUTOINCREMENT`, a PostgreSQL sequence), with gaps; the primary key serves `id > ?`, the index on
`at` the retention prune."""


# --- dispatch: teams, technicians, rosters and the shared pool -----------------------------------

teams: Final = Table(
    "teams",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("company", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("area", String(1024), nullable=False, server_default=""),
    Column("categories", JSON(), nullable=False),
    Column("active", Boolean(), nullable=False, server_default=true()),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("company", "name"),
)
"""A property company's team: it covers the orders within `area` (a site path, its grid; empty:
the whole company) of its `categories` (empty: every category)."""

technicians: Final = Table(
    "technicians",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("company", String(128), nullable=False),
    Column("team_id", BigId, ForeignKey("teams.id"), nullable=False, index=True),
    Column("skills", JSON(), nullable=False),
    Column("active", Boolean(), nullable=False, server_default=true()),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
"""A user of role technician registered in a team (`name` is the user's name); `skills` are the
categories they handle (empty: every category their team handles)."""

shifts: Final = Table(
    "shifts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("company", String(128), nullable=False),
    Column(
        "technician",
        String(128),
        ForeignKey("technicians.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("note", String(256), nullable=False, server_default=""),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_shifts_technician_starts_at", "technician", "starts_at"),
    Index("ix_shifts_company_starts_at", "company", "starts_at"),
)
"""The on-duty roster: a technician is on duty from `starts_at` (included) to `ends_at` (not)."""

equipment: Final = Table(
    "equipment",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("company", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("note", String(1024), nullable=False, server_default=""),
    Column("active", Boolean(), nullable=False, server_default=true()),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("company", "name"),
)
"""A property company's piece of equipment that it may lend through the pool (a pump, a lift)."""

loans: Final = Table(
    "loans",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("lender", String(128), nullable=False),
    Column("borrower", String(128), nullable=False),
    Column("technician", String(128), nullable=True),
    Column("equipment_id", BigId, ForeignKey("equipment.id"), nullable=True),
    Column("order_id", BigId, ForeignKey("work_orders.id"), nullable=True),
    Column("state", String(16), nullable=False),
    Column("note", String(2048), nullable=False, server_default=""),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("decided_by", String(128), nullable=True),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("reason", String(2048), nullable=True),
    Column("returned_by", String(128), nullable=True),
    Column("returned_at", UtcDateTime(), nullable=True),
    Column("version", Integer(), nullable=False),
    Index("ix_loans_lender_id", "lender", "id"),
    Index("ix_loans_borrower_id", "borrower", "id"),
    Index("ix_loans_technician_state", "technician", "state"),
)
"""The shared pool (人物拆借): `lender` lends a `technician` (a user's name) or a piece of
`equipment` to `borrower`, for one work order (`order_id`) or, without one, for any of the
borrower's orders until returned. `state` REQUESTED, APPROVED, REJECTED (by the lender, with a
`reason`), RETURNED or CANCELLED; `version` counts its changes."""


# --- console sign-in -----------------------------------------------------------------------------

console_sessions: Final = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column(
        "user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)
"""A person signed in to the console: the SHA-256 (hex) of the random session id their browser
holds in an HttpOnly cookie, whose user, and until when it is valid. Signing out deletes the row;
expired rows are deleted when someone signs in."""


# --- photos by content hash ----------------------------------------------------------------------

photos: Final = Table(
    "photos",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("uploader", String(128), primary_key=True),
    Column("company", String(128), nullable=False, server_default=""),
    Column("size", BigInteger(), nullable=False),
    Column("type", String(32), nullable=False),
    Column("width", Integer(), nullable=True),
    Column("height", Integer(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)
"""A photo (evidence of a work order, a resident's request) and who uploaded it: the file is
stored once under its lower-case hex SHA-256 (`cloud_ingest.photos.store`), with one row per
uploader; `company` is the uploader's (empty for an admin); `type` the media type judged from
its bytes; `width` and `height` in pixels where its header tells them."""
