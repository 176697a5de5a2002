"""What the intake hands on: one message as received, and the handler that stores a batch of them.

The contract between a transport (the MQTT consumer, the HTTP endpoint) and the ingest service, in
the manner of Telegraf's buffer transaction: a transport acknowledges a message to its sender only
after the handler returned for the batch that held it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message from a gateway, as the transport received it (nothing parsed yet)."""

    topic: str
    """The MQTT topic (`steward/v1/<gateway>/up`, `.../status`); for HTTP, the topic the same
    message would have had, built from the authenticated gateway's id."""
    payload: bytes
    received_at: datetime
    """When the transport received it (tz-aware, UTC)."""


class MessageHandler(Protocol):
    """Stores a batch of messages: telemetry, alarm events, status, or a dead letter for each.

    Returning means every message of the batch is settled: stored, recognised as a duplicate, or
    rejected with its reason and kept as a dead letter, all committed. The transport then
    acknowledges the whole batch. Raising means the batch could not be settled (the database is
    down): nothing of it may be acknowledged, and the transport offers the same messages again
    later. A handler never raises for a bad message, only for a failure of its own storage.

    A batch holds messages in the order the transport received them (so in publish order per
    gateway). Delivery is at least once: a message may come again, in a later batch or after a
    restart, even after the handler settled it (its acknowledgement was lost with the
    connection), so settling must be idempotent.
    """

    async def __call__(self, batch: Sequence[Incoming]) -> None:
        """Settle every message of `batch`, or raise and settle none."""
        ...
