"""Config pushed by the cloud on the retained `config` topic: validate, apply without restart, report.

The payload is a YAML (or JSON) mapping, UTF-8, with any of:
- `rules`: rule file text (a string) or the rule file as a mapping;
- `config`: a whole gateway config (text or mapping). What it may change while the agent runs:
  `devices` (Modbus polling included), `rules`, `actions`, `sources`, `pipeline` and the outbox
  limits. The gateway's identity (`gateway`), `state_dir`, the outbox file and the `uplink` are
  refused: a pushed uplink that cannot connect would cut the gateway off from the very channel a
  fix would come by, so it is changed on the gateway itself.

Everything is validated before anything is applied; on any error the running config and rules stay
and the report lists every error (`accepted: false`). An accepted payload is kept in the state
directory (`pushed_config.PushedConfigStore`) and applied again at the next start, before any source
runs. The same payload arriving again (the topic is retained, so every reconnect redelivers it) is
reported as unchanged. An empty payload (the retained message cleared) goes back to the gateway's
own files.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import yaml

from core.clock import Clock
from core.yaml_located import MAX_FILE_BYTES, YamlError, decode_text, load_located
from edge_agent.bindings import Bindings, BindingsHolder
from edge_agent.config import EdgeConfig, load_rules, parse_config
from edge_agent.config_errors import ConfigError
from edge_agent.pipeline import Pipeline
from edge_agent.pushed_config import PushedConfigStore, PushedPayload
from rules.engine import RuleEngine
from rules.errors import RuleFileError
from rules.spec import RuleSet, parse_rules

_LOG = logging.getLogger(__name__)
_FIXED_SECTIONS: Final = ("gateway", "state_dir", "uplink")
PUSHED_RULES_NAME: Final = "config-topic:rules"
PUSHED_CONFIG_NAME: Final = "config-topic:config"
PAYLOAD_NAME: Final = "config-topic"

Reconfigure = Callable[[EdgeConfig, EdgeConfig], Awaitable[list[str]]]
"""Applies what changed from the first config to the second beyond devices and rules (sources,
local actions, pipeline, outbox limits); returns the names of the sections it changed."""


@dataclass(slots=True)
class Plan:
    """What a pushed payload would change, once it is fully validated."""

    config: EdgeConfig | None = None
    rules: RuleSet | None = None
    errors: list[str] = field(default_factory=list)


def digest_of(payload: bytes) -> str:
    """The short id of a payload, as reports name it."""
    return hashlib.sha256(payload).hexdigest()[:16]


def plan_payload(payload: bytes, running: EdgeConfig, config_path: Path) -> Plan:
    """Validate a payload completely against the running config, without changing anything."""
    plan = Plan()
    if len(payload) > MAX_FILE_BYTES:
        plan.errors.append(
            f"payload: {len(payload)} bytes, over the {MAX_FILE_BYTES} a file may have"
        )
        return plan
    try:
        doc = load_located(decode_text(payload, PAYLOAD_NAME), PAYLOAD_NAME).data
    except YamlError as err:
        plan.errors.extend(str(issue) for issue in err.issues)
        return plan
    if not isinstance(doc, dict) or not doc.keys() & {"rules", "config"}:
        plan.errors.append("payload: expected a mapping with 'rules' and/or 'config'")
        return plan
    unknown = sorted(str(k) for k in doc if k not in {"rules", "config", "version"})
    if unknown:
        plan.errors.append(f"payload: unknown keys {unknown}")
    if "rules" in doc:
        try:
            plan.rules = parse_rules(
                _text(doc["rules"]), PUSHED_RULES_NAME, timezone=running.gateway.timezone
            )
        except RuleFileError as err:
            plan.errors.extend(err.errors)
    if "config" in doc:
        _plan_config(doc["config"], running, config_path, plan)
    return plan


def _plan_config(raw: object, running: EdgeConfig, config_path: Path, plan: Plan) -> None:
    try:
        new = parse_config(_text(raw), PUSHED_CONFIG_NAME)
    except ConfigError as err:
        plan.errors.extend(str(issue) for issue in err.issues)
        return
    for key in _FIXED_SECTIONS:
        if getattr(running, key) != getattr(new, key):
            plan.errors.append(f"{PUSHED_CONFIG_NAME}: {key}: changing it needs a restart")
    if running.outbox.path != new.outbox.path:
        plan.errors.append(f"{PUSHED_CONFIG_NAME}: outbox.path: changing it needs a restart")
    plan.config = new
    if new.rules != running.rules and plan.rules is None:
        try:
            plan.rules = load_rules(new, config_path)
        except RuleFileError as err:
            plan.errors.extend(err.errors)


class RemoteConfigHandler:
    """The uplink's `on_config` callback: validates, applies, keeps and reports a pushed config."""

    def __init__(
        self,
        *,
        config: EdgeConfig,
        config_path: Path,
        engine: RuleEngine,
        bindings: BindingsHolder,
        pipeline: Pipeline,
        clock: Clock,
        reconfigure: Reconfigure,
        base_config: EdgeConfig | None = None,
        store: PushedConfigStore | None = None,
        applied: PushedPayload | None = None,
    ) -> None:
        """Hold what a pushed config may change.

        `config` is the running config; `base_config` the one from the gateway's file (the same
        unless `applied`, a stored payload, was applied at start).
        """
        self.config = config
        self.base_config = base_config or config
        self.config_path = config_path
        self.engine = engine
        self.bindings = bindings
        self.pipeline = pipeline
        self.clock = clock
        self.reconfigure = reconfigure
        self.store = store
        self.applied = applied
        self.accepted = 0
        self.rejected = 0

    async def __call__(self, payload: bytes) -> dict[str, object]:
        """Handle one message of the config topic and return the report to publish."""
        digest = digest_of(payload)
        if not payload.strip():
            return await self._revert(digest)
        if self.applied is not None and digest == self.applied.digest:
            return {"accepted": True, "changed": False, "digest": digest}
        plan = self.plan(payload)
        if plan.errors:
            self.rejected += 1
            _LOG.warning("pushed config %s rejected: %s", digest, "; ".join(plan.errors))
            return {"accepted": False, "digest": digest, "errors": plan.errors}
        applied = await self.apply(plan)
        self._keep(PushedPayload(digest, payload, self.clock.now().isoformat()))
        self.accepted += 1
        _LOG.info("pushed config %s applied: %s", digest, ", ".join(applied) or "no change")
        return {"accepted": True, "changed": bool(applied), "digest": digest, "applied": applied}

    def plan(self, payload: bytes) -> Plan:
        """Validate a payload completely without changing anything."""
        return plan_payload(payload, self.config, self.config_path)

    async def apply(self, plan: Plan) -> list[str]:
        """Apply a validated plan; return the names of what changed."""
        applied: list[str] = []
        if plan.config is not None:
            old = self.config
            if plan.config.devices != old.devices:
                bindings = Bindings.build(plan.config.devices)
                self.bindings.replace(bindings)
                self.engine.set_devices(bindings.infos())
                self.pipeline.set_derivations(bindings.derivations())
                applied.append("devices")
            self.config = plan.config
            applied += await self.reconfigure(old, plan.config)
        if plan.rules is not None:
            events = self.engine.replace_rules(plan.rules, self.clock.now())
            await self.pipeline.store_events(events)
            applied.append("rules")
        return applied

    def _keep(self, pushed: PushedPayload | None) -> None:
        self.applied = pushed
        if self.store is None:
            return
        try:
            if pushed is None:
                self.store.clear()
            else:
                self.store.save(pushed)
        except OSError as err:
            # Applied, but not kept: the retained message brings it back after a restart.
            _LOG.warning("pushed config not kept in %s: %s", self.store.path, err)

    async def _revert(self, digest: str) -> dict[str, object]:
        """The retained config was cleared: run on the gateway's own files again."""
        if self.applied is None:
            return {"accepted": True, "changed": False, "digest": digest, "note": "empty payload"}
        plan = Plan(config=self.base_config)
        try:
            plan.rules = load_rules(self.base_config, self.config_path)
        except RuleFileError as err:
            self.rejected += 1
            return {"accepted": False, "digest": digest, "errors": err.errors}
        applied = await self.apply(plan)
        self._keep(None)
        _LOG.info("pushed config cleared: back to %s", self.config_path)
        return {
            "accepted": True,
            "changed": True,
            "digest": digest,
            "applied": applied,
            "note": "back to the gateway's own config and rule files",
        }


def restore_pushed(
    store: PushedConfigStore, base: EdgeConfig, config_path: Path, at: datetime
) -> tuple[EdgeConfig, RuleSet | None, PushedPayload | None]:
    """At start: the stored payload applied to the file config, if it is still valid.

    Returns the config to run, the pushed rules (None: the config's rule files) and the payload
    that was applied (None if there was none or it no longer validates: then it is logged and the
    gateway runs on its files until the retained message arrives again).
    """
    pushed = store.load()
    if pushed is None:
        return base, None, None
    plan = plan_payload(pushed.payload, base, config_path)
    if plan.errors:
        _LOG.warning(
            "pushed config %s (accepted %s) not applied at %s: %s",
            pushed.digest,
            pushed.at,
            at.isoformat(),
            "; ".join(plan.errors),
        )
        return base, None, None
    _LOG.info("pushed config %s (accepted %s) applied", pushed.digest, pushed.at)
    return plan.config or base, plan.rules, pushed


def _text(raw: object) -> str:
    if isinstance(raw, str):
        return raw
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
