import json
from datetime import UTC, datetime
from pathlib import Path

import yaml

from core.clock import FrozenClock
from core.metrics import Metric
from core.types import RawFrame
from edge_agent.bindings import Bindings, BindingsHolder
from edge_agent.config import EdgeConfig, parse_config
from edge_agent.dead_letter import DeadLetterStore
from edge_agent.outbox.memory import MemoryOutbox
from edge_agent.pipeline import Pipeline
from edge_agent.pushed_config import PushedConfigStore
from edge_agent.remote_config import RemoteConfigHandler, plan_payload, restore_pushed
from firmware_adapters.registry import CODECS
from rules.engine import RuleEngine
from rules.spec import parse_rules

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
CONFIG = """\
gateway: {id: gw-1}
sources:
  mqtt: {host: 127.0.0.1, zigbee2mqtt: {}}
devices:
  - {id: smoke-1, codec: zigbee2mqtt.generic.exposes, kind: smoke, friendly_name: kitchen}
"""
WITH_HALL = (
    CONFIG
    + "  - {id: smoke-2, codec: zigbee2mqtt.generic.exposes, kind: smoke, friendly_name: hall}\n"
)
SMOKE_RULE = "rules:\n  - id: smoke\n    match: {metric: smoke, kinds: [smoke]}\n    equals: true\n    severity: critical\n"
HALL_AND_WARNING = yaml.safe_dump(
    {"config": WITH_HALL, "rules": SMOKE_RULE.replace("critical", "warning")}
).encode()
"""A payload adding the hall detector and making the smoke rule a warning."""


class Reconfigured:
    """Records what the handler asked the agent to apply beyond devices and rules."""

    def __init__(self) -> None:
        self.calls: list[tuple[EdgeConfig, EdgeConfig]] = []

    async def __call__(self, old: EdgeConfig, new: EdgeConfig) -> list[str]:
        self.calls.append((old, new))
        return [key for key in ("sources", "pipeline") if getattr(old, key) != getattr(new, key)]


def make_handler(
    tmp_path: Path, store: PushedConfigStore | None = None
) -> tuple[RemoteConfigHandler, Pipeline, MemoryOutbox, BindingsHolder]:
    config = parse_config(CONFIG, "edge.yaml")
    bindings = BindingsHolder(Bindings.build(config.devices))
    clock = FrozenClock(T0)
    engine = RuleEngine(parse_rules(SMOKE_RULE), bindings.current.infos(), site="gw-1")
    outbox = MemoryOutbox()
    pipeline = Pipeline(
        gateway_id="gw-1",
        codecs=CODECS,
        engine=engine,
        outbox=outbox,
        dead_letters=DeadLetterStore(tmp_path / "dead.sqlite3"),
        clock=clock,
    )
    handler = RemoteConfigHandler(
        config=config,
        config_path=tmp_path / "edge.yaml",
        engine=engine,
        bindings=bindings,
        pipeline=pipeline,
        clock=clock,
        reconfigure=Reconfigured(),
        store=store,
    )
    return handler, pipeline, outbox, bindings


def smoke_frame(device: str) -> RawFrame:
    return RawFrame(
        "z2m", "zigbee2mqtt.generic.exposes", b'{"smoke": true}', T0, {"device_id": device}
    )


async def test_bad_rules_are_rejected_with_every_error_and_the_old_rules_stay(
    tmp_path: Path,
) -> None:
    handler, pipeline, outbox, _ = make_handler(tmp_path)
    bad = "rules:\n  - id: x\n    match: {metric: smoke}\n    above: 3\n  - id: y\n    match: {metric: nope}\n    equals: true\n"
    report = await handler(json.dumps({"rules": bad}).encode())
    assert report["accepted"] is False
    errors = report["errors"]
    assert isinstance(errors, list)
    assert len(errors) == 2
    assert all(str(e).startswith("config-topic:rules:") for e in errors)
    await pipeline.process([smoke_frame("smoke-1")])
    assert (await outbox.stats()).alarm_depth == 1  # the old smoke rule still fires


async def test_devices_and_rules_apply_without_restart_and_repeats_are_unchanged(
    tmp_path: Path,
) -> None:
    handler, pipeline, outbox, bindings = make_handler(tmp_path)
    payload = HALL_AND_WARNING
    report = await handler(payload)
    assert report["accepted"] is True
    assert report["applied"] == ["devices", "rules"]
    assert bindings.current.by_friendly_name["hall"].id == "smoke-2"
    await pipeline.process([smoke_frame("smoke-2")])
    batch = await outbox.begin(100)
    assert batch is not None
    assert [(e.device_id, e.severity.value) for e in batch.alarm_events] == [("smoke-2", "warning")]
    assert [r.metric for r in batch.readings] == [Metric.SMOKE]
    again = await handler(payload)
    assert again == {"accepted": True, "changed": False, "digest": report["digest"]}


async def test_changes_that_need_a_restart_are_refused(tmp_path: Path) -> None:
    handler, _, _, bindings = make_handler(tmp_path)
    moved = CONFIG.replace("gw-1", "gw-2") + "uplink: {host: 10.0.0.9}\noutbox: {path: other.db}\n"
    report = await handler(json.dumps({"config": moved}).encode())
    assert report["accepted"] is False
    assert report["errors"] == [
        "config-topic:config: gateway: changing it needs a restart",
        "config-topic:config: uplink: changing it needs a restart",
        "config-topic:config: outbox.path: changing it needs a restart",
    ]
    assert "kitchen" in bindings.current.by_friendly_name
    assert (await handler(b"just text"))["accepted"] is False
    latin1 = await handler("rules: caf\xe9".encode("latin-1"))
    assert latin1["errors"] == ["config-topic:1: not UTF-8 text (byte 10)"]
    assert (await handler(b""))["accepted"] is True


async def test_a_hostile_payload_is_refused_with_its_line_not_a_crash(tmp_path: Path) -> None:
    handler, _, _, _ = make_handler(tmp_path)

    async def refusal(payload: bytes) -> str:
        report = await handler(payload)
        assert report["accepted"] is False
        errors = report["errors"]
        assert isinstance(errors, list)
        return str(errors[0])

    deep = await refusal(b"rules: " + b"[" * 5000 + b"]" * 5000)
    assert deep.startswith("config-topic:1: ")
    assert "nest" in deep
    assert (await refusal(b"version: 1\nrules: !!int abc\n")).startswith("config-topic:2: ")
    assert "over the" in await refusal(b"rules: '" + b"x" * (5 * 1024 * 1024) + b"'")


async def test_sources_and_pipeline_are_handed_to_the_agent_to_apply(tmp_path: Path) -> None:
    handler, _, _, _ = make_handler(tmp_path)
    changed = CONFIG.replace(
        "zigbee2mqtt: {}", "zigbee2mqtt: {}, chirpstack: {application_id: '7'}"
    )
    changed += "pipeline: {batch_size: 50}\n"
    report = await handler(json.dumps({"config": changed}).encode())
    assert report["accepted"] is True
    assert report["applied"] == ["sources", "pipeline"]
    reconfigured = handler.reconfigure
    assert isinstance(reconfigured, Reconfigured)
    [(old, new)] = reconfigured.calls
    assert old.sources.mqtt is not None
    assert old.sources.mqtt.chirpstack is None
    assert new.sources.mqtt is not None
    assert new.sources.mqtt.chirpstack is not None
    assert new.pipeline.batch_size == 50
    assert handler.config == new


async def test_an_accepted_payload_is_kept_and_applied_again_at_start(tmp_path: Path) -> None:
    store = PushedConfigStore(tmp_path / "pushed-config.json")
    handler, _, _, _ = make_handler(tmp_path, store)
    payload = HALL_AND_WARNING
    report = await handler(payload)
    assert report["accepted"] is True

    base = parse_config(CONFIG, "edge.yaml")
    config, rules, pushed = restore_pushed(store, base, tmp_path / "edge.yaml", T0)
    assert pushed is not None
    assert pushed.digest == report["digest"]
    assert [d.id for d in config.devices] == ["smoke-1", "smoke-2"]
    assert rules is not None
    assert [r.rule.severity.value for r in rules.rules] == ["warning"]
    # The agent starts with it applied; the retained message arriving again changes nothing.
    restarted, *_ = make_handler(tmp_path, store)
    restarted.applied = pushed
    assert (await restarted(payload))["changed"] is False


async def test_a_kept_payload_that_no_longer_fits_the_files_is_not_applied(
    tmp_path: Path,
) -> None:
    store = PushedConfigStore(tmp_path / "pushed-config.json")
    handler, _, _, _ = make_handler(tmp_path, store)
    assert (
        await handler(json.dumps({"config": CONFIG + "pipeline: {linger_s: 0.01}\n"}).encode())
    )["accepted"]
    # The installer moved the gateway to another uplink in its file since.
    base = parse_config(CONFIG + "uplink: {host: 10.0.0.9}\n", "edge.yaml")
    config, rules, pushed = restore_pushed(store, base, tmp_path / "edge.yaml", T0)
    assert (config, rules, pushed) == (base, None, None)
    (tmp_path / "pushed-config.json").write_text("{not json")
    assert restore_pushed(store, base, tmp_path / "edge.yaml", T0) == (base, None, None)


async def test_clearing_the_retained_config_goes_back_to_the_gateways_files(
    tmp_path: Path,
) -> None:
    store = PushedConfigStore(tmp_path / "pushed-config.json")
    handler, pipeline, outbox, bindings = make_handler(tmp_path, store)
    extra = (
        CONFIG
        + "  - {id: smoke-2, codec: zigbee2mqtt.generic.exposes, kind: smoke, friendly_name: hall}\n"
    )
    assert (await handler(json.dumps({"config": extra}).encode()))["accepted"]
    assert "hall" in bindings.current.by_friendly_name
    report = await handler(b"")
    assert report["accepted"] is True
    assert report["changed"] is True
    assert report["applied"] == ["devices", "rules"]
    assert "hall" not in bindings.current.by_friendly_name
    assert not (tmp_path / "pushed-config.json").exists()
    await pipeline.process([smoke_frame("smoke-1")])
    assert (await outbox.stats()).alarm_depth == 0  # the file config names no rule files
    assert (await handler(b""))["changed"] is False


def test_pushed_rules_run_in_the_site_time_zone(tmp_path: Path) -> None:
    config = parse_config("gateway: {id: gw-01, timezone: Asia/Shanghai}\n", "edge.yaml")
    rules = (
        "rules:\n  - id: night\n    description: x\n    match: {metric: intrusion}\n"
        '    equals: true\n    armed: "22:00-06:00"\n'
    )
    plan = plan_payload(json.dumps({"rules": rules}).encode(), config, tmp_path / "edge.yaml")
    assert plan.errors == []
    assert plan.rules is not None
    assert [loaded.timezone for loaded in plan.rules.rules] == ["Asia/Shanghai"]
