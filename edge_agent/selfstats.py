"""The gateway's own counters, published as readings of the gateway device (Telegraf selfstat)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from core.metrics import Metric
from core.types import Reading
from edge_agent.outbox.base import OutboxStats

SELF_CODEC = "edge_agent"
"""`codec_id` of self-statistics readings; per-codec error counts use `edge_agent:<codec>:<reason>`."""


@dataclass(slots=True)
class PipelineStats:
    """Counters of frames, decode errors, alarms and drops since the agent started."""

    frames_in: int = 0
    frames_dropped: int = 0
    alarms: int = 0
    store_failures: int = 0
    """Outbox writes that failed and were retried (disk full, I/O error)."""
    decode_errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Keyed by (codec id, reason); framer garbage counts here too."""
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Messages a source received but could not route to a device, keyed by (source, reason)."""
    broker_dropped: dict[str, int] = field(default_factory=dict)
    """The local broker's own count of messages it dropped (queue full), by source, as last seen."""

    def count_decode_error(self, codec_id: str, reason: str, n: int = 1) -> None:
        """Add `n` decode errors of `codec_id` for `reason`."""
        if n:
            self.decode_errors[codec_id, reason] += n

    def count_skipped(self, source: str, reason: str, n: int = 1) -> None:
        """Add `n` messages `source` received and could not route, for `reason`."""
        if n:
            self.skipped[source, reason] += n

    @property
    def decode_errors_total(self) -> int:
        """All decode errors, every codec and reason."""
        return sum(self.decode_errors.values())

    def readings(self, gateway_id: str, now: datetime, outbox: OutboxStats | None) -> list[Reading]:
        """Return the counters as readings of the gateway itself at `now`.

        The per-(codec, reason) decode error counts carry `edge_agent:<codec>:<reason>` as their
        `codec_id`, the only label a reading has room for; the per-(source, reason) skip counts
        `edge_agent:<source>:<reason>`; the local broker's dropped count `edge_agent:<source>`.
        """

        def reading(metric: Metric, value: float, codec_id: str = SELF_CODEC) -> Reading:
            return Reading(gateway_id, metric, float(value), now, codec_id=codec_id)

        out = [
            reading(Metric.FRAMES_IN_TOTAL, self.frames_in),
            reading(Metric.FRAMES_DROPPED_TOTAL, self.frames_dropped),
            reading(Metric.ALARMS_TOTAL, self.alarms),
            reading(Metric.DECODE_ERRORS_TOTAL, self.decode_errors_total),
        ]
        out.extend(
            reading(Metric.DECODE_ERRORS_TOTAL, count, f"{SELF_CODEC}:{codec}:{reason}")
            for (codec, reason), count in sorted(self.decode_errors.items())
        )
        out.append(reading(Metric.FRAMES_SKIPPED_TOTAL, sum(self.skipped.values())))
        out.extend(
            reading(Metric.FRAMES_SKIPPED_TOTAL, count, f"{SELF_CODEC}:{source}:{reason}")
            for (source, reason), count in sorted(self.skipped.items())
        )
        out.extend(
            reading(Metric.LOCAL_BROKER_DROPPED_TOTAL, count, f"{SELF_CODEC}:{source}")
            for source, count in sorted(self.broker_dropped.items())
        )
        if outbox is not None:
            out.append(reading(Metric.OUTBOX_DEPTH, outbox.depth))
            out.append(reading(Metric.OUTBOX_DROPPED_TOTAL, outbox.dropped_telemetry))
        return out
