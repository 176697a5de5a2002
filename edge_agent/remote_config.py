"""Config pushed by the cloud on the retained `config` topic: validate, apply without restart, report.

The payload is a YAML (or JSON) mapping with any of:
- `rules`: rule file text (a string) or the rule file as a mapping;
- `config`: a whole gateway config (text or mapping). Only `devices`, `actions` and `rules` may
  differ from the running config (and devices only in what needs no new source: Modbus polling
  does); changing anything else needs a restart and is refused.

Everything is validated before anything is applied; on any error the running config and rules stay
and the report lists every error (`accepted: false`). The same payload arriving again (the topic is
retained, so every reconnect redelivers it) is reported as unchanged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import yaml

from core.clock import Clock
from edge_agent.bindings import Bindings, BindingsHolder
from edge_agent.config import EdgeConfig, parse_config, resolve_rule_paths
from edge_agent.config_errors import ConfigError
from edge_agent.local_actions import LocalActions
from edge_agent.pipeline import Pipeline
from rules.engine import RuleEngine
from rules.errors import RuleFileError
from rules.spec import RuleSet, load_rule_files, parse_rules

_LOG = logging.getLogger(__name__)
_LIVE_SECTIONS: Final = frozenset({"devices", "actions", "rules"})
PUSHED_RULES_NAME: Final = "config-topic:rules"
PUSHED_CONFIG_NAME: Final = "config-topic:config"


@dataclass(slots=True)
class Plan:
    """What a pushed payload would change, once it is fully validated."""

    config: EdgeConfig | None = None
    rules: RuleSet | None = None
    errors: list[str] = field(default_factory=list)


class RemoteConfigHandler:
    """The uplink's `on_config` callback: validates, applies and reports a pushed config."""

    def __init__(
        self,
        *,
        config: EdgeConfig,
        config_path: Path,
        engine: RuleEngine,
        bindings: BindingsHolder,
        pipeline: Pipeline,
        clock: Clock,
        actions: LocalActions | None = None,
        on_applied: Callable[[EdgeConfig, RuleSet | None], None] | None = None,
    ) -> None:
        """Hold what a pushed config may change."""
        self.config = config
        self.config_path = config_path
        self.engine = engine
        self.bindings = bindings
        self.pipeline = pipeline
        self.clock = clock
        self.actions = actions
        self.on_applied = on_applied
        self.applied_digest = ""
        self.accepted = 0
        self.rejected = 0

    async def __call__(self, payload: bytes) -> dict[str, object]:
        """Handle one message of the config topic and return the report to publish."""
        digest = hashlib.sha256(payload).hexdigest()[:16]
        if not payload.strip():
            return {"accepted": True, "changed": False, "digest": digest, "note": "empty payload"}
        if digest == self.applied_digest:
            return {"accepted": True, "changed": False, "digest": digest}
        plan = self.plan(payload)
        if plan.errors:
            self.rejected += 1
            _LOG.warning("pushed config %s rejected: %s", digest, "; ".join(plan.errors))
            return {"accepted": False, "digest": digest, "errors": plan.errors}
        applied = await self.apply(plan)
        self.applied_digest = digest
        self.accepted += 1
        _LOG.info("pushed config %s applied: %s", digest, ", ".join(applied) or "no change")
        return {"accepted": True, "changed": bool(applied), "digest": digest, "applied": applied}

    def plan(self, payload: bytes) -> Plan:
        """Validate a payload completely without changing anything."""
        plan = Plan()
        try:
            doc = yaml.safe_load(payload)
        except yaml.YAMLError as err:
            plan.errors.append(f"payload: not YAML/JSON: {err}")
            return plan
        if not isinstance(doc, dict) or not doc.keys() & {"rules", "config"}:
            plan.errors.append("payload: expected a mapping with 'rules' and/or 'config'")
            return plan
        unknown = sorted(str(k) for k in doc if k not in {"rules", "config", "version"})
        if unknown:
            plan.errors.append(f"payload: unknown keys {unknown}")
        if "config" in doc:
            self._plan_config(doc["config"], plan)
        if "rules" in doc:
            try:
                plan.rules = parse_rules(_text(doc["rules"]), PUSHED_RULES_NAME)
            except RuleFileError as err:
                plan.errors.extend(err.errors)
        return plan

    def _plan_config(self, raw: object, plan: Plan) -> None:
        try:
            new = parse_config(_text(raw), PUSHED_CONFIG_NAME)
        except ConfigError as err:
            plan.errors.extend(str(issue) for issue in err.issues)
            return
        old_dump = self.config.model_dump()
        new_dump = new.model_dump()
        for key in sorted(old_dump):
            if key not in _LIVE_SECTIONS and old_dump[key] != new_dump[key]:
                plan.errors.append(f"{PUSHED_CONFIG_NAME}: {key}: changing it needs a restart")
        old_polls = {d.id: d.modbus for d in self.config.devices if d.modbus is not None}
        new_polls = {d.id: d.modbus for d in new.devices if d.modbus is not None}
        if old_polls != new_polls:
            plan.errors.append(
                f"{PUSHED_CONFIG_NAME}: devices: changing Modbus polling needs a restart"
            )
        plan.config = new
        if new.rules != self.config.rules and plan.rules is None:
            try:
                plan.rules = load_rule_files(resolve_rule_paths(new, self.config_path))
            except RuleFileError as err:
                plan.errors.extend(err.errors)

    async def apply(self, plan: Plan) -> list[str]:
        """Apply a validated plan; return the names of what changed."""
        applied: list[str] = []
        if plan.config is not None:
            if plan.config.devices != self.config.devices:
                bindings = Bindings.build(plan.config.devices)
                self.bindings.replace(bindings)
                self.engine.set_devices(bindings.infos())
                applied.append("devices")
            if plan.config.actions != self.config.actions and self.actions is not None:
                self.actions.replace(plan.config.actions)
                applied.append("actions")
            self.config = plan.config
        if plan.rules is not None:
            events = self.engine.replace_rules(plan.rules, self.clock.now())
            await self.pipeline.store_events(events)
            applied.append("rules")
        if self.on_applied is not None:
            self.on_applied(self.config, plan.rules)
        return applied


def _text(raw: object) -> str:
    if isinstance(raw, str):
        return raw
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
