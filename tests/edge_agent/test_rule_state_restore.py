"""The agent keeps its rule state in the outbox: fresh at first, restored after a restart, stored
with the alarm events it numbers, warned about when damaged, and taken over from an older file."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.clock import FrozenClock
from core.metrics import Metric
from core.types import AlarmState, RawFrame, Reading
from edge_agent.app import LEGACY_RULE_STATE_FILE, Agent
from edge_agent.config import load_config
from edge_agent.dead_letter import DeadLetterStore
from edge_agent.outbox.sqlite import SqliteOutbox
from edge_agent.pipeline import Pipeline
from firmware_adapters.registry import CODECS
from rules.engine import RuleEngine
from rules.spec import load_rule_files

T0 = datetime(2026, 11, 22, 8, tzinfo=UTC)
RULES = (
    "rules:\n  - id: smoke\n    match: {metric: smoke}\n    equals: true\n    severity: critical\n"
)


def _agent(tmp_path: Path) -> Agent:
    (tmp_path / "rules.yaml").write_text(RULES)
    config = tmp_path / "edge.yaml"
    config.write_text(
        f"gateway: {{id: gw-1, site: hp/nj}}\nstate_dir: {tmp_path / 'state'}\n"
        "devices:\n  - {id: sd-1, codec: zigbee2mqtt.generic.exposes, kind: smoke, friendly_name: sd}\n"
        "sources:\n  mqtt: {host: 127.0.0.1, port: 1883, zigbee2mqtt: {}}\n"
        "rules: [rules.yaml]\nuplink: {host: 127.0.0.1, port: 1883}\n"
    )
    agent = Agent(load_config(config), config)
    agent.state_dir.mkdir(parents=True)
    return agent


def _smoke_frame() -> RawFrame:
    return RawFrame(
        "z2m", "zigbee2mqtt.generic.exposes", b'{"smoke": true}', T0, {"device_id": "sd-1"}
    )


def test_first_start_is_fresh_and_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agent = _agent(tmp_path)
    caplog.set_level(logging.INFO, logger="edge_agent.app")
    engine = agent._restore_engine(load_rule_files([tmp_path / "rules.yaml"]), None)
    assert engine.snapshot()["instances"] == []
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "starting fresh" in caplog.text


async def test_alarm_events_and_the_state_numbering_them_are_stored_together(
    tmp_path: Path,
) -> None:
    agent = _agent(tmp_path)
    ruleset = load_rule_files([tmp_path / "rules.yaml"])
    engine = RuleEngine(ruleset, agent.bindings.current.infos(), site="gw-1")
    outbox = await SqliteOutbox.create(tmp_path / "outbox.sqlite3")

    def snapshot() -> str:
        return json.dumps(engine.snapshot(), sort_keys=True)

    pipeline = Pipeline(
        gateway_id="gw-1",
        codecs=CODECS,
        engine=engine,
        outbox=outbox,
        dead_letters=DeadLetterStore(tmp_path / "dead.sqlite3"),
        clock=FrozenClock(T0),
        snapshot=snapshot,
    )
    try:
        assert await outbox.saved_state() is None
        await pipeline.process([_smoke_frame()])
        saved = await outbox.saved_state()
        assert saved == snapshot()  # written in the transaction of the FIRING event
        await pipeline.save_state()  # unchanged: nothing to write
        await outbox.close()
        outbox = await SqliteOutbox.create(tmp_path / "outbox.sqlite3")
        restored = agent._restore_engine(ruleset, await outbox.saved_state())
        assert restored.snapshot()["instances"] == engine.snapshot()["instances"]
        events = restored.observe(Reading("sd-1", Metric.SMOKE, value=False, ts=T0), T0)
        assert [(e.state, e.seq) for e in events] == [(AlarmState.RESOLVED, 2)]
    finally:
        await outbox.close()


def test_damaged_state_is_reported_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = _agent(tmp_path)
    engine = agent._restore_engine(load_rule_files([tmp_path / "rules.yaml"]), "{not json")
    assert engine.snapshot()["instances"] == []
    assert any(r.levelno == logging.WARNING and "not restored" in r.message for r in caplog.records)


def test_the_file_an_older_release_kept_is_taken_over(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    ruleset = load_rule_files([tmp_path / "rules.yaml"])
    engine = agent._restore_engine(ruleset, None)
    engine.observe(Reading("sd-1", Metric.SMOKE, value=True, ts=T0), T0)
    (agent.state_dir / LEGACY_RULE_STATE_FILE).write_text(json.dumps(engine.snapshot()))
    restored = agent._restore_engine(ruleset, None)
    assert restored.snapshot()["instances"] == engine.snapshot()["instances"]
