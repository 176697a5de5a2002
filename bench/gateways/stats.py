"""Delivery statistics of one run: loss, duplicates, per-device reordering, latency percentiles.

Pure functions over numpy arrays. A message is identified by (device index, sequence number). The
sender records when it sent each message; the receiver records, in arrival order, which message each
forwarded reading carried and when it arrived. Times are `time.monotonic_ns()` values, which are
comparable between processes on one Linux machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

SEQ_SPAN: Final = 1 << 32
"""Keys are `device * SEQ_SPAN + seq`; sequence numbers stay below 2**32."""

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Sent:
    """What the load generator sent: one entry per message, in send order."""

    device: IntArray
    seq: IntArray
    sent_ns: IntArray


@dataclass(frozen=True)
class Received:
    """What the receiver saw: one entry per forwarded reading, in arrival order."""

    device: IntArray
    seq: IntArray
    recv_ns: IntArray


@dataclass(frozen=True)
class Delivery:
    """How a run's messages arrived."""

    sent: int
    delivered: int
    """Distinct sent messages that arrived at least once."""
    lost: int
    duplicates: int
    """Arrivals of a message beyond its first."""
    unknown: int
    """Arrivals that match no sent message (e.g. merged or rewritten values)."""
    reordered: int
    """First arrivals whose sequence number is below one already seen for the same device."""
    late: int
    """Delivered messages whose latency exceeded the bound given to `analyse`."""
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float

    @property
    def loss_ratio(self) -> float:
        """Lost / sent (0 for an empty run)."""
        return self.lost / self.sent if self.sent else 0.0

    @property
    def reorder_ratio(self) -> float:
        """Reordered / delivered (0 when nothing arrived)."""
        return self.reordered / self.delivered if self.delivered else 0.0

    @property
    def on_time_loss_ratio(self) -> float:
        """(Lost + late) / sent: what did not arrive in time."""
        return (self.lost + self.late) / self.sent if self.sent else 0.0

    def as_dict(self) -> dict[str, float]:
        """Every figure, ratios included, for the JSON results."""
        out: dict[str, float] = {k: float(v) for k, v in asdict(self).items()}
        out["loss_ratio"] = self.loss_ratio
        out["reorder_ratio"] = self.reorder_ratio
        out["on_time_loss_ratio"] = self.on_time_loss_ratio
        return out


def keys_of(device: IntArray, seq: IntArray) -> IntArray:
    """Message keys of parallel device and sequence arrays."""
    return device.astype(np.int64) * SEQ_SPAN + seq.astype(np.int64)


def count_reordered(device: IntArray, seq: IntArray) -> int:
    """Readings (in arrival order) whose seq is below an earlier reading's seq of the same device."""
    if device.size == 0:
        return 0
    order = np.argsort(device, kind="stable")
    keys = keys_of(device[order], seq[order])
    running = np.maximum.accumulate(keys)
    return int(np.count_nonzero(keys < running))


def percentile_ms(values_ns: IntArray, q: float) -> float:
    """The q-th percentile of nanosecond values, in milliseconds (NaN for no values)."""
    if values_ns.size == 0:
        return float("nan")
    return float(np.percentile(values_ns, q)) / 1e6


def analyse(sent: Sent, received: Received, late_after_ns: int | None = None) -> Delivery:
    """Compare what was sent with what arrived.

    Args:
        sent: the generator's record.
        received: the receiver's record, in arrival order.
        late_after_ns: messages with a longer latency are counted as `late` (still delivered).

    Returns:
        The run's delivery figures.
    """
    sent_keys = keys_of(sent.device, sent.seq)
    order = np.argsort(sent_keys)
    sorted_keys = sent_keys[order]
    recv_keys = keys_of(received.device, received.seq)
    pos = np.searchsorted(sorted_keys, recv_keys)
    pos_clipped = np.minimum(pos, max(sorted_keys.size - 1, 0))
    known = (
        (sorted_keys[pos_clipped] == recv_keys)
        if sorted_keys.size
        else np.zeros(recv_keys.size, dtype=bool)
    )
    known_keys = recv_keys[known]
    _, first_index = np.unique(known_keys, return_index=True)
    first_index.sort()
    firsts = np.flatnonzero(known)[first_index]
    delivered = int(firsts.size)
    sent_ns_of_first = sent.sent_ns[order][pos_clipped[firsts]]
    latency = received.recv_ns[firsts] - sent_ns_of_first
    late = int(np.count_nonzero(latency > late_after_ns)) if late_after_ns else 0
    return Delivery(
        sent=int(sent_keys.size),
        delivered=delivered,
        lost=int(np.unique(sent_keys).size) - delivered,
        duplicates=int(known_keys.size) - delivered,
        unknown=int(recv_keys.size - known_keys.size),
        reordered=count_reordered(received.device[firsts], received.seq[firsts]),
        late=late,
        latency_p50_ms=percentile_ms(latency, 50),
        latency_p99_ms=percentile_ms(latency, 99),
        latency_max_ms=float(latency.max()) / 1e6 if latency.size else float("nan"),
    )


def alarm_latencies(
    sent: Sent, alarms: Received, is_alarm_message: npt.NDArray[np.bool_]
) -> IntArray:
    """Latency (ns) of each FIRING alarm, matched in order to the alarming messages of its device.

    The k-th FIRING event of a device answers the k-th alarming message (`is_alarm_message`) that
    device sent; events beyond the messages sent are ignored.
    """
    out: list[int] = []
    for device in np.unique(alarms.device):
        sent_times = sent.sent_ns[(sent.device == device) & is_alarm_message]
        arrived = alarms.recv_ns[alarms.device == device]
        n = min(sent_times.size, arrived.size)
        out.extend((arrived[:n] - sent_times[:n]).tolist())
    return np.array(out, dtype=np.int64)
