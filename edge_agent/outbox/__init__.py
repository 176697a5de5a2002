"""The crash-safe outbox between the pipeline and the uplink (see docs/outbox.md)."""

from edge_agent.outbox.base import (
    Batch,
    Outbox,
    OutboxError,
    OutboxLimits,
    OutboxRecord,
    OutboxStats,
    RecordKind,
)

__all__ = [
    "Batch",
    "Outbox",
    "OutboxError",
    "OutboxLimits",
    "OutboxRecord",
    "OutboxStats",
    "RecordKind",
]
