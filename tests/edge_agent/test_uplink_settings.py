"""Uplink settings: backoff bounds, TLS file pairs, and paths taken from the config's directory."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_agent.uplink_settings import BackoffSettings, UplinkSettings, UplinkTlsError


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
    alone = UplinkSettings(tls=True, ca_file="ca.crt", cert_file="gw.crt")
    assert [str(p) for p in alone.tls_problems(files=False)] == [
        "uplink.cert_file: needs key_file (the certificate's key)"
    ]
    with pytest.raises(UplinkTlsError, match=r"uplink\.cert_file: needs key_file"):
        alone.ssl_context()
    assert UplinkSettings(tls=True, ca_file="ca.crt").tls_problems(files=False) == []


def test_resolved_takes_relative_certificate_paths_from_the_config_directory(
    tmp_path: Path,
) -> None:
    config = UplinkSettings(
        host="cloud.example",
        port=8883,
        tls=True,
        ca_file="pki/ca.crt",
        cert_file="/etc/steward/gw.crt",
        key_file="pki/gw.key",
        batch_max=250,
        batch_wait_s=0.5,
    )
    settings = config.resolved(tmp_path)
    assert settings.tls_path("ca_file") == tmp_path / "pki/ca.crt"
    assert settings.tls_path("cert_file") == Path("/etc/steward/gw.crt")
    assert settings.tls_path("key_file") == tmp_path / "pki/gw.key"
    assert (settings.host, settings.port, settings.batch_max) == ("cloud.example", 8883, 250)
    assert settings.batch_wait_s == 0.5
    assert UplinkSettings.from_config(config, tmp_path) == settings
    assert config.resolved(None) == config
    assert UplinkSettings(tls=False).ssl_context() is None
    with pytest.raises(UplinkTlsError, match=r"uplink\.tls: true needs ca_file"):
        UplinkSettings(tls=True).ssl_context()


def test_settings_reject_nonsense() -> None:
    with pytest.raises(ValidationError):
        UplinkSettings(publish_timeout_s=0)
    with pytest.raises(ValidationError):
        UplinkSettings(port=70_000)
    with pytest.raises(ValidationError):
        UplinkSettings.model_validate({"host": "h", "unknown": 1})
