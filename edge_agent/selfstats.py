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

    def count_decode_error(self, codec_id: str, reason: str, n: int = 1) -> None:
        """Add `n` decode errors of `codec_id` for `reason`."""
        if n:
            self.decode_errors[codec_id, reason] += n

    @property
    def decode_errors_total(self) -> int:
        """All decode errors, every codec and reason."""
        return sum(self.decode_errors.values())

    def readings(self, gateway_id: str, now: datetime, outbox: OutboxStats | None) -> list[Reading]:
        """Return the counters as readings of the gateway itself at `now`.

        The per-(codec, reason) decode error counts carry `edge_agent:<codec>:<reason>` as their
        `codec_id`, the only label a reading has room for.
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
        if outbox is not None:
            out.append(reading(Metric.OUTBOX_DEPTH, outbox.depth))
            out.append(reading(Metric.OUTBOX_DROPPED_TOTAL, outbox.dropped_telemetry))
        return out
