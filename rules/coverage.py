"""Rule coverage: does every metric a device reports have a rule, and can every rule ever match?

`coverage(ruleset, devices, reported)` is pure: it takes the rules, what the gateway knows of each
device (kind, location, labels, derived readings) and the metrics each device reports (its codec's
declaration, given by the caller), and returns findings of two kinds:

- `unwatched`: a device reports a metric (or derives one) that no rule matches for it, and no
  `not_alarmed` entry of the rule files says that metric is deliberately only telemetry. A metric
  a binding derives another from (a bin's `distance_mm`, turned into `fill_pct`) counts as used.
- `unmatched`: a rule of the site's own files that no configured device can ever trigger, because
  none passes its `match` or none reports its metric (a rule on `fill_pct` where the bins report
  only `distance_mm`); a no-data rule that no device with an expected interval passes.
- `inactive`: the same for a rule of a shipped pack (`shipped` files). The default pack covers every
  device the project supports; a compound without meters simply has no use for the meter rules.

`edge-agent check` prints the first two as warnings (`--strict`: errors), `inactive` with `--verbose`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from core.derived import sources, targets
from core.metrics import Metric
from core.site import DeviceInfo
from rules.compiled import CompiledRule
from rules.kinds import compile_rule
from rules.models import CompositeRule, NoDataRule
from rules.spec import LoadedRule, RuleSet


@dataclass(frozen=True, slots=True)
class Finding:
    """One gap in the coverage; `where` is `file:line` of the rule, or the device id."""

    kind: Literal["unwatched", "unmatched", "inactive"]
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def device_metrics(info: DeviceInfo, reported: frozenset[Metric]) -> frozenset[Metric]:
    """What reaches the rules of a device: what it reports plus what its binding derives."""
    return reported | targets(info.derive)


def coverage(
    ruleset: RuleSet,
    devices: Mapping[str, DeviceInfo],
    reported: Mapping[str, frozenset[Metric]],
    shipped: Collection[str] = (),
) -> list[Finding]:
    """Return every unwatched metric (per device) and every rule that can never match.

    `shipped` names the rule files (as in `LoadedRule.source`) of shipped packs.
    """
    compiled = [(loaded, compile_rule(loaded)) for loaded in ruleset.rules]
    findings: list[Finding] = []
    for device_id, info in sorted(devices.items()):
        metrics = device_metrics(info, reported.get(device_id, frozenset()))
        used = sources(info.derive)
        for metric in sorted(metrics - used):
            if any(entry.covers(metric, info.kind) for entry in ruleset.not_alarmed):
                continue
            if any(_watches(rule, device_id, info, metric) for _, rule in compiled):
                continue
            findings.append(
                Finding(
                    "unwatched",
                    device_id,
                    f"reports {metric.value} ({info.kind.value}, {info.codec_id or 'no codec'}) "
                    "and no rule watches it; add a rule, derive what the rules watch from it, "
                    "or list it under not_alarmed with a reason",
                )
            )
    for loaded, rule in compiled:
        reason = _never_matches(loaded, rule, devices, reported)
        if reason:
            kind: Literal["unmatched", "inactive"] = (
                "inactive" if loaded.source in shipped else "unmatched"
            )
            findings.append(Finding(kind, f"{loaded.source}:{loaded.line}", f"{rule.id}: {reason}"))
    return findings


def _watches(rule: CompiledRule, device_id: str, info: DeviceInfo, metric: Metric) -> bool:
    return rule.metric is metric and rule.matches(device_id, info)


def _never_matches(
    loaded: LoadedRule,
    rule: CompiledRule,
    devices: Mapping[str, DeviceInfo],
    reported: Mapping[str, frozenset[Metric]],
) -> str:
    """Why no configured device can trigger the rule, or `""` if one can."""
    candidates = [(d, info) for d, info in devices.items() if rule.matches(d, info)]
    if not candidates:
        return f"no configured device passes its match {_describe(loaded)}"
    if isinstance(loaded.rule, NoDataRule):
        if any(info.expected_interval_s for _, info in candidates):
            return ""
        return "no device it matches declares expected_interval_s, so none can be silent"
    metric = rule.metric
    if metric is not None and not any(
        metric in device_metrics(info, reported.get(d, frozenset())) for d, info in candidates
    ):
        return f"no configured device it matches {_describe(loaded)} reports {metric.value}"
    if isinstance(loaded.rule, CompositeRule) and not any(
        rule.subject(d, info) is not None for d, info in candidates
    ):
        return f"no device it matches has a location down to the {loaded.rule.scope} level"
    return ""


def _describe(loaded: LoadedRule) -> str:
    match = loaded.rule.match
    parts = []
    if match.kinds:
        parts.append(f"kinds {', '.join(k.value for k in match.kinds)}")
    if match.devices:
        parts.append(f"devices {', '.join(match.devices)}")
    if match.labels:
        parts.append(f"labels {match.labels}")
    if match.location.parts:
        parts.append(f"location {match.location}")
    return f"({'; '.join(parts)})" if parts else "(any device)"
