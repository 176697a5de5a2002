import json
from datetime import UTC, datetime
from pathlib import Path

import yaml

from core.clock import FrozenClock
from core.metrics import Metric
from core.types import RawFrame
from edge_agent.bindings import Bindings, BindingsHolder
from edge_agent.config import parse_config
from edge_agent.dead_letter import DeadLetterStore
from edge_agent.outbox.memory import MemoryOutbox
from edge_agent.pipeline import Pipeline
from edge_agent.remote_config import RemoteConfigHandler
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
SMOKE_RULE = "rules:\n  - id: smoke\n    match: {metric: smoke, kinds: [smoke]}\n    equals: true\n    severity: critical\n"


def make_handler(
    tmp_path: Path,
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
    new_config = (
        CONFIG
        + "  - {id: smoke-2, codec: zigbee2mqtt.generic.exposes, kind: smoke, friendly_name: hall}\n"
    )
    payload = yaml.safe_dump(
        {"config": new_config, "rules": SMOKE_RULE.replace("critical", "warning")}
    ).encode()
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
    moved = CONFIG.replace("gw-1", "gw-2").replace("127.0.0.1", "10.0.0.9")
    report = await handler(json.dumps({"config": moved}).encode())
    assert report["accepted"] is False
    assert report["errors"] == [
        "config-topic:config: gateway: changing it needs a restart",
        "config-topic:config: sources: changing it needs a restart",
    ]
    assert "kitchen" in bindings.current.by_friendly_name
    assert (await handler(b"just text"))["accepted"] is False
    assert (await handler(b""))["accepted"] is True
