"""Window rules: a threshold rule whose condition compares an aggregate of the device's recent samples."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rules.kinds.threshold import ThresholdEvaluator
from rules.state import evaluate

if TYPE_CHECKING:
    from rules.compiled import Events, Host
    from rules.fields import Window
    from rules.models import ThresholdRule
    from rules.spec import LoadedRule
    from rules.state import Instance
    from rules.windows import SampleWindow


class WindowEvaluator(ThresholdEvaluator):
    """Judges an aggregate of the window instead of the last value.

    The aggregates are `mean`, `min`, `max`, `rate`, `count_true`, `forecast_hours` and `mad_score`.
    While pending or active the rule is re-judged on every tick, so a window that empties clears
    without new samples.
    """

    kind: ClassVar[str] = "window"

    __slots__ = ("spec",)

    def __init__(self, loaded: LoadedRule, rule: ThresholdRule, spec: Window) -> None:
        super().__init__(loaded, rule)
        self.spec = spec
        self.horizon = spec.over
        self.evidence["agg"] = spec.agg
        self.evidence["window_s"] = spec.over

    def observe(  # noqa: PLR0917 - the hot path passes what it holds, positionally
        self,
        host: Host,
        device_id: str,
        subject: str,
        value: float | bool,  # noqa: ARG002, FBT001 - already in the window
        window: SampleWindow | None,
        t: float,
        out: Events,
    ) -> None:
        """Judge the window's aggregate once it has enough samples."""
        if window is None or not self.in_active_hours(t):
            return
        measured = self.measure(window, t)
        if measured is not None:
            super().observe(host, device_id, subject, measured, window, t, out)

    def on_tick(self, host: Host, inst: Instance, t: float, out: Events) -> None:
        """Re-judge the window as time moves (samples leave it)."""
        if not self.in_active_hours(t) or self.metric is None:
            return
        window = host.state.windows.get(inst.subject, self.metric)
        measured = self.measure(window, t) if window is not None else None
        if measured is None:
            return
        inst.value = measured
        emit = evaluate(inst, self, self.test(measured), self.clear(measured), t)
        if emit is not None:
            out.append(host.emit(inst, self, emit, t))

    def measure(self, window: SampleWindow, t: float) -> float | None:
        """The aggregate at `t`, or `None` with too few samples (or too short a span)."""
        spec = self.spec
        ts, values = window.span(self.window_start(t))
        if len(values) < spec.min_samples or (spec.min_span and ts[-1] - ts[0] < spec.min_span):
            return None
        from rules.windows import aggregate  # noqa: PLC0415 - numpy loads with the first window

        return aggregate(
            spec.agg,
            ts,
            values,
            target=spec.target,
            reset_drop=spec.reset_drop,
            min_samples=spec.min_samples,
        )

    def window_start(self, t: float) -> float:
        """The earliest sample time the rule looks at when evaluated at `t`."""
        start = t - self.spec.over
        if self.active_hours is not None:
            period = self.active_hours.period_start(self.local(t))
            if period is not None:
                start = max(start, period.timestamp())
        return start
