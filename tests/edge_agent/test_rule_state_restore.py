"""The agent restores its rule state at start: fresh when there is none, warned when it is damaged."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.metrics import Metric
from core.types import AlarmState, Reading
from edge_agent.app import Agent
from edge_agent.config import load_config
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
        "devices:\n  - {id: sd-1, codec: lorawan.milesight.gs524n, kind: smoke, dev_eui: '0011223344556677'}\n"
        "sources:\n  mqtt: {host: 127.0.0.1, port: 1883, chirpstack: {application_id: '+'}}\n"
        "rules: [rules.yaml]\nuplink: {host: 127.0.0.1, port: 1883}\n"
    )
    agent = Agent(load_config(config), config)
    agent.state_dir.mkdir(parents=True)
    return agent


def test_first_start_is_fresh_and_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agent = _agent(tmp_path)
    caplog.set_level(logging.INFO, logger="edge_agent.app")
    engine = agent._restore_engine(load_rule_files([tmp_path / "rules.yaml"]))
    assert engine.snapshot()["instances"] == []
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "starting fresh" in caplog.text


def test_a_firing_alarm_survives_a_restart(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    ruleset = load_rule_files([tmp_path / "rules.yaml"])
    engine = agent._restore_engine(ruleset)
    events = engine.observe(Reading("sd-1", Metric.SMOKE, value=True, ts=T0), T0)
    assert [e.state for e in events] == [AlarmState.FIRING]
    (agent.state_dir / "rule-state.json").write_text(json.dumps(engine.snapshot()))
    restored = agent._restore_engine(ruleset)
    assert restored.snapshot()["instances"] == engine.snapshot()["instances"]


def test_damaged_state_is_reported_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = _agent(tmp_path)
    (agent.state_dir / "rule-state.json").write_text("{not json")
    engine = agent._restore_engine(load_rule_files([tmp_path / "rules.yaml"]))
    assert engine.snapshot()["instances"] == []
    assert any(r.levelno == logging.WARNING and "not restored" in r.message for r in caplog.records)
