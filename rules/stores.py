"""What an engine remembers between calls, one store per concern, each with its part of a snapshot.

- `EngineState`: all of it: alarm instances, sequence numbers, counters and the stores below;
- `WindowStore`: the sample window of each (device, metric) that a window rule reads;
- `HitLog`: a composite rule's recent triggers per scope, and each device's last condition;
- `LastHeard`: when each device was last heard from, and when the engine started (no-data);
- `rules.silences.SilenceBook`: the silences in force.

`rules.snapshot` writes and reads them; no store knows of rules beyond their ids.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.metrics import Metric
from rules.silences import SilenceBook
from rules.state import Instance

if TYPE_CHECKING:
    from rules.windows import SampleWindow

Key = tuple[str, str]
"""(rule id, subject): one alarm instance, or one composite rule's scope."""


class WindowStore:
    """The sample window of each (device, metric), as long as the longest window rule on it."""

    __slots__ = ("_by_device",)

    def __init__(self) -> None:
        self._by_device: dict[str, dict[Metric, SampleWindow]] = {}

    def window(self, device_id: str, metric: Metric, horizon: float) -> SampleWindow:
        """The window of a device's metric, created on first use; it keeps `horizon` seconds."""
        per_device = self._by_device.get(device_id)
        if per_device is None:
            per_device = self._by_device[device_id] = {}
        window = per_device.get(metric)
        if window is None:
            # numpy (through rules.windows) loads only once a window rule sees a sample.
            from rules.windows import SampleWindow  # noqa: PLC0415

            window = per_device[metric] = SampleWindow(horizon)
        window.horizon_s = horizon
        return window

    def get(self, device_id: str, metric: Metric) -> SampleWindow | None:
        """The window of a device's metric, if it has one."""
        per_device = self._by_device.get(device_id)
        return per_device.get(metric) if per_device is not None else None

    def to_json(self) -> list[dict[str, Any]]:
        """Every window's samples, for a snapshot."""
        return [
            {"device": device, "metric": metric.value, "horizon": w.horizon_s, "samples": w.dump()}
            for device, per_metric in self._by_device.items()
            for metric, w in per_metric.items()
        ]

    def load_json(self, items: Iterable[Any]) -> None:
        """Read back what `to_json` wrote."""
        for item in items:
            window = self.window(
                str(item["device"]), Metric(item["metric"]), float(item["horizon"])
            )
            for ts, value in zip(*item["samples"], strict=True):
                window.append(float(ts), float(value))


class HitLog:
    """Composite rules' recent triggers per (rule, scope), and each (rule, device)'s last condition.

    The last condition of a device tells a rising edge from a held one, for `min_events`.
    """

    __slots__ = ("edges", "hits")

    def __init__(self) -> None:
        self.hits: dict[Key, deque[tuple[float, str]]] = {}
        self.edges: dict[Key, bool] = {}

    def forget(self, keep: Callable[[str], bool]) -> None:
        """Drop the triggers of every rule whose id `keep` refuses."""
        for key in [k for k in self.hits if not keep(k[0])]:
            del self.hits[key]

    def to_json(self) -> tuple[list[dict[str, Any]], list[list[Any]]]:
        """The triggers and the edges, for a snapshot."""
        hits = [
            {"rule": rule_id, "scope": scope, "hits": [[t, d] for t, d in hits]}
            for (rule_id, scope), hits in self.hits.items()
        ]
        edges = [[rule_id, device, state] for (rule_id, device), state in self.edges.items()]
        return hits, edges

    def load_json(self, hits: Iterable[Any], edges: Iterable[Any], rule_ids: set[str]) -> None:
        """Read back what `to_json` wrote; triggers of rules not in `rule_ids` are dropped."""
        for item in hits:
            if item["rule"] in rule_ids:
                self.hits[(item["rule"], item["scope"])] = deque(
                    (float(t), str(d)) for t, d in item["hits"]
                )
        for rule_id, device, state in edges:
            self.edges[(str(rule_id), str(device))] = bool(state)


class LastHeard:
    """When each device was last heard from, and when the engine first ticked.

    A device never heard from counts as heard at the first tick, so a gateway that restarts does
    not declare every device silent at once.
    """

    __slots__ = ("last_seen", "started")

    def __init__(self) -> None:
        self.last_seen: dict[str, float] = {}
        self.started: float | None = None

    def silent(self, device_id: str, interval_s: float | None, factor: float, t: float) -> bool:
        """Whether a device with that expected interval has been silent for over `factor` of it."""
        if not interval_s:
            return False
        last = self.last_seen.get(device_id, self.started if self.started is not None else t)
        return t - last > interval_s * factor

    def silent_for(self, device_id: str, t: float) -> float:
        """Seconds since the device was last heard from at `t` (-1 if it never was)."""
        last = self.last_seen.get(device_id)
        return round(t - last, 3) if last is not None else -1.0

    def load_json(self, started: Any, last_seen: Any) -> None:  # noqa: ANN401 - JSON values
        """Read back the `started` and `last_seen` of a snapshot."""
        self.started = started
        self.last_seen.update({str(k): float(v) for k, v in (last_seen or {}).items()})


@dataclass(slots=True, eq=False)
class EngineState:
    """Everything an engine holds between calls; the objects stay, their contents change."""

    instances: dict[Key, Instance] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)
    """The last sequence number of each fingerprint."""
    counters: Counter[str] = field(default_factory=Counter)
    windows: WindowStore = field(default_factory=WindowStore)
    hits: HitLog = field(default_factory=HitLog)
    heard: LastHeard = field(default_factory=LastHeard)
    silences: SilenceBook = field(default_factory=SilenceBook)
