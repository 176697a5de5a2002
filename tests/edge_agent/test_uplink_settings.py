"""Uplink settings: backoff bounds, TLS file pairs, and mapping from the gateway config file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_agent.config import UplinkConfig
from edge_agent.uplink_settings import BackoffSettings, TlsSettings, UplinkSettings


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = BackoffSettings(initial_s=0.5, max_s=8, factor=2, jitter=0.5)
    rng = random.Random(7)  # noqa: S311 - jitter, not cryptography
    for attempt in range(12):
        base = min(8.0, 0.5 * 2**attempt)
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert max(delays) - min(delays) > base * 0.3  # really jittered
    assert backoff.delay(10_000, rng) <= 8


def test_tls_cert_and_key_come_together() -> None:
    with pytest.raises(ValidationError, match="together"):
        TlsSettings(ca=Path("ca.crt"), cert=Path("gw.crt"))
    assert TlsSettings(ca=Path("ca.crt")).cert is None


def test_from_config_resolves_relative_certificate_paths(tmp_path: Path) -> None:
    config = UplinkConfig(
        host="cloud.example",
        port=8883,
        tls=True,
        ca_file="pki/ca.crt",
        cert_file="/etc/steward/gw.crt",
        key_file="pki/gw.key",
        batch_max=250,
        batch_wait_s=0.5,
    )
    settings = UplinkSettings.from_config(config, tmp_path)
    assert settings.tls == TlsSettings(
        ca=tmp_path / "pki/ca.crt", cert=Path("/etc/steward/gw.crt"), key=tmp_path / "pki/gw.key"
    )
    assert (settings.host, settings.port, settings.batch_max_items) == ("cloud.example", 8883, 250)
    assert settings.batch_max_wait_s == 0.5
    assert UplinkSettings.from_config(UplinkConfig(tls=False)).tls is None
    with pytest.raises(ValueError, match="ca_file"):
        UplinkSettings.from_config(UplinkConfig(tls=True))


def test_settings_reject_nonsense() -> None:
    with pytest.raises(ValidationError):
        UplinkSettings(publish_timeout_s=0)
    with pytest.raises(ValidationError):
        UplinkSettings(port=70_000)
    with pytest.raises(ValidationError):
        UplinkSettings.model_validate({"host": "h", "unknown": 1})
