"""Counters of the ingest service, as a plain object the app exports (Prometheus, logs)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class IngestCounters:
    """Totals since the service started; only the ingest service writes them.

    Counted when the batch that held them committed (a batch rolled back counts nothing).
    """

    messages: int = 0
    """Messages settled (stored, duplicate or rejected)."""
    batches: int = 0
    """Batches committed."""
    envelopes: int = 0
    """Envelopes stored."""
    readings: int = 0
    """Readings stored."""
    alarm_events: int = 0
    """Alarm events stored (a replayed event already stored is not counted)."""
    alarm_events_replayed: int = 0
    """Alarm events of new batches that were already stored (same fingerprint and seq)."""
    alarm_instances_changed: int = 0
    duplicates: int = 0
    """Envelopes whose batch id was already stored."""
    status_updates: int = 0
    outdated_statuses: int = 0
    """Statuses of an older connection of their gateway than the one applied (not applied)."""
    rejections: Counter[str] = field(default_factory=Counter)
    """Rejected messages by reason code."""
    storage_failures: int = 0
    """Batches that could not be stored (raised; nothing of them kept)."""
    write_seconds_total: float = 0.0
    """Time spent in the database transactions of committed batches."""
    write_seconds_last: float = 0.0
    write_seconds_max: float = 0.0
