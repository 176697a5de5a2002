"""The `uplink:` section: one model from the file to the uplink, its TLS files checked at load.

A TLS setting that cannot work is a config error on the line of its key, so `edge-agent check`
refuses it before `run` would; a file that disappears later is named in the uplink's log.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_agent.cli import main
from edge_agent.config import load_config, parse_config
from edge_agent.config_errors import ConfigError
from edge_agent.outbox.memory import MemoryOutbox
from edge_agent.uplink import Uplink
from edge_agent.uplink_settings import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ITEMS,
    BackoffSettings,
    UplinkSettings,
)
from simulators.services import Mosquitto

HEAD = "gateway: {id: gw-01}\nuplink:\n  host: cloud.example\n"
"""Lines 1-3; the keys a test adds start at line 4."""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password)
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def make_pki(directory: Path) -> None:
    """`ca.crt`, and `gw.crt` / `gw.key` signed by it, plus `other.key` (matching no certificate)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test CA"))
        .issuer_name(_name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    gw_key = ec.generate_private_key(ec.SECP256R1())
    gw = (
        x509.CertificateBuilder()
        .subject_name(_name("gw-01"))
        .issuer_name(_name("test CA"))
        .public_key(gw_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "gw.crt").write_bytes(gw.public_bytes(serialization.Encoding.PEM))
    (directory / "gw.key").write_bytes(_pem_key(gw_key))
    (directory / "other.key").write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
    (directory / "locked.key").write_bytes(_pem_key(gw_key, b"secret"))


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    make_pki(tmp_path / "tls")
    return tmp_path


def load_errors(config_dir: Path, uplink_lines: str) -> list[str]:
    path = config_dir / "edge.yaml"
    path.write_text(HEAD + uplink_lines)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(issue) for issue in caught.value.issues]


def test_mutual_tls_with_relative_paths_loads_and_the_uplink_gets_absolute_ones(
    config_dir: Path,
) -> None:
    path = config_dir / "edge.yaml"
    path.write_text(
        HEAD + "  tls: true\n  ca_file: tls/ca.crt\n  cert_file: tls/gw.crt\n"
        "  key_file: tls/gw.key\n  batch_max: 250\n  batch_wait_s: 500ms\n"
    )
    config = load_config(path)
    assert config.uplink.ca_file == "tls/ca.crt"  # as written: a pushed copy compares equal
    assert (config.uplink.batch_max, config.uplink.batch_wait_s) == (250, 0.5)
    running = config.uplink.resolved(path.parent)
    assert running.tls_path("ca_file") == config_dir / "tls" / "ca.crt"
    assert running.ssl_context() is not None


def test_tls_without_ca_file_is_an_error_on_the_tls_line(config_dir: Path) -> None:
    errors = load_errors(config_dir, "  port: 8883\n  tls: true\n")
    assert errors == [
        (
            f"{config_dir / 'edge.yaml'}:5: uplink.tls: true needs ca_file "
            "(the CA certificates to trust)"
        )
    ]


def test_a_missing_ca_file_is_named_with_its_line(config_dir: Path) -> None:
    errors = load_errors(config_dir, "  tls: true\n  ca_file: tls/missing.crt\n")
    missing = config_dir / "tls" / "missing.crt"
    assert errors == [
        (
            f"{config_dir / 'edge.yaml'}:5: uplink.ca_file: {missing}: cannot read: "
            "No such file or directory"
        )
    ]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a certificate\n", "not PEM CA certificates"),
        (b"", "not PEM CA certificates"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not PEM CA"),
    ],
)
def test_a_ca_file_that_is_not_pem_is_an_error(
    config_dir: Path, content: bytes, reason: str
) -> None:
    (config_dir / "tls" / "junk.crt").write_bytes(content)
    (error,) = load_errors(config_dir, "  tls: true\n  ca_file: tls/junk.crt\n")
    assert error.startswith(f"{config_dir / 'edge.yaml'}:5: uplink.ca_file: ")
    assert reason in error
    assert str(config_dir / "tls" / "junk.crt") in error


@pytest.mark.timeout(60)  # a guard against a hang, not a measurement
def test_a_directory_or_a_device_is_not_a_ca_file(config_dir: Path) -> None:
    errors = load_errors(config_dir, "  tls: true\n  ca_file: tls\n")
    assert errors[0].endswith("cannot read: is a directory, not a file")
    errors = load_errors(config_dir, "  tls: true\n  ca_file: /dev/zero\n")
    assert errors[0].endswith("/dev/zero: cannot read: not a regular file")


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (
            "  cert_file: tls/gw.crt\n",
            6,
            "uplink.cert_file: needs key_file (the certificate's key)",
        ),
        ("  key_file: tls/gw.key\n", 6, "uplink.key_file: needs cert_file (the key's certificate)"),
    ],
)
def test_a_certificate_without_its_key_or_a_key_without_its_certificate_is_an_error(
    config_dir: Path, lines: str, line: int, message: str
) -> None:
    errors = load_errors(config_dir, "  tls: true\n  ca_file: tls/ca.crt\n" + lines)
    assert errors == [f"{config_dir / 'edge.yaml'}:{line}: {message}"]


@pytest.mark.parametrize(
    ("cert", "key", "line", "expected"),
    [
        ("tls/gw.crt", "tls/other.key", 7, "uplink.key_file: "),
        ("tls/gw.crt", "tls/ca.crt", 7, "uplink.key_file: "),
        ("tls/gw.key", "tls/gw.key", 6, "uplink.cert_file: "),
        ("tls/gw.crt", "tls/locked.key", 7, "the key is encrypted"),
    ],
)
def test_a_client_pair_that_openssl_cannot_load_is_put_on_the_right_key(
    config_dir: Path, cert: str, key: str, line: int, expected: str
) -> None:
    lines = f"  tls: true\n  ca_file: tls/ca.crt\n  cert_file: {cert}\n  key_file: {key}\n"
    (error,) = load_errors(config_dir, lines)
    assert error.startswith(f"{config_dir / 'edge.yaml'}:{line}: ")
    assert expected in error


def test_every_tls_problem_is_reported_at_once(config_dir: Path) -> None:
    errors = load_errors(
        config_dir, "  tls: true\n  ca_file: tls/nope.crt\n  key_file: tls/nope.key\n"
    )
    assert [error.split(": ")[1] for error in errors] == [
        "uplink.ca_file",
        "uplink.key_file",
        "uplink.key_file",
    ]
    assert "needs cert_file" in errors[1] or "needs cert_file" in errors[2]


def test_a_tls_file_without_tls_is_an_error(config_dir: Path) -> None:
    errors = load_errors(config_dir, "  tls: false\n  ca_file: tls/ca.crt\n")
    assert errors == [
        (
            f"{config_dir / 'edge.yaml'}:5: uplink.ca_file: a TLS file, but tls is false: "
            "set tls: true, or remove it"
        )
    ]


def test_batches_are_capped_by_the_envelope_limits_at_load(config_dir: Path) -> None:
    errors = load_errors(
        config_dir,
        f"  batch_max: {MAX_BATCH_ITEMS + 1}\n  batch_max_bytes: {MAX_BATCH_BYTES + 1}\n",
    )
    assert [error.split(": ")[1] for error in errors] == [
        "uplink.batch_max",
        "uplink.batch_max_bytes",
    ]


def test_timeouts_and_backoff_take_durations() -> None:
    config = parse_config(
        HEAD + "  publish_timeout_s: 15s\n  connect_timeout_s: 1m\n"
        "  backoff: {initial_s: 250ms, max_s: 2m}\n",
        "edge.yaml",
    )
    assert (config.uplink.publish_timeout_s, config.uplink.connect_timeout_s) == (15, 60)
    assert (config.uplink.backoff.initial_s, config.uplink.backoff.max_s) == (0.25, 120)


def test_text_without_a_base_directory_checks_settings_but_not_files() -> None:
    lines = "  tls: true\n  ca_file: /nowhere/ca.crt\n"
    assert parse_config(HEAD + lines, "pushed").uplink.ca_file == "/nowhere/ca.crt"
    with pytest.raises(ConfigError, match=r"pushed:4: uplink\.tls: true needs ca_file"):
        parse_config(HEAD + "  tls: true\n", "pushed")


def test_check_refuses_what_run_would_die_of(
    config_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_dir / "edge.yaml"
    path.write_text(HEAD + "  tls: true\n  ca_file: tls/ca.pem\n")
    assert main(["check", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:5: uplink.ca_file: {config_dir / 'tls' / 'ca.pem'}: cannot read" in err


async def test_a_tls_file_gone_after_start_is_named_in_the_uplink_log(
    config_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = UplinkSettings(
        port=1,
        tls=True,
        ca_file="tls/ca.crt",
        cert_file="tls/gw.crt",
        key_file="tls/gw.key",
        backoff=BackoffSettings(initial_s=0.01, max_s=0.02),
    ).resolved(config_dir)
    (config_dir / "tls" / "gw.key").unlink()
    uplink = Uplink(settings, MemoryOutbox(), gateway_id="gw-01")
    caplog.set_level(logging.WARNING, logger="edge_agent.uplink")
    task = asyncio.create_task(uplink.run())
    try:
        async with asyncio.timeout(5):
            while uplink.counters.connect_failures < 2:  # noqa: ASYNC110 - polling a counter
                await asyncio.sleep(0.01)
    finally:
        uplink.stop()
        await task
    gone = config_dir / "tls" / "gw.key"
    assert any(
        f"uplink cannot connect (uplink.key_file: {gone}: cannot read: No such file or directory)"
        in record.getMessage()
        for record in caplog.records
    ), [record.getMessage() for record in caplog.records]


def test_a_password_file_is_checked_at_load(config_dir: Path) -> None:
    file = config_dir / "secret" / "mqtt.pw"
    missing = load_errors(config_dir, "  password_file: secret/mqtt.pw\n")
    reason = "cannot read: No such file or directory"
    assert missing == [f"{config_dir / 'edge.yaml'}:4: uplink.password_file: {file}: {reason}"]
    file.parent.mkdir()
    file.write_text("\n")
    empty = load_errors(config_dir, "  password_file: secret/mqtt.pw\n")
    assert empty[0].endswith("mqtt.pw: holds no password on its first line")
    file.write_text("s3cret \nignored\n")
    (config_dir / "edge.yaml").write_text(HEAD + "  password_file: secret/mqtt.pw\n")
    settings = UplinkSettings.from_config(load_config(config_dir / "edge.yaml").uplink, config_dir)
    assert settings.password() == "s3cret"
    assert settings.password_file == str(file)


async def test_the_uplink_logs_in_with_the_credentials_the_cloud_registered(
    tmp_path: Path,
) -> None:
    # The password and ACL files as `cloud-ingest gateways passwd|acl` write them.
    from cloud_ingest.gateways.mosquitto_files import acl_text, password_text  # noqa: PLC0415
    from cloud_ingest.gateways.secrets import mosquitto_hash  # noqa: PLC0415

    (tmp_path / "mqtt.pw").write_text("gw-secret\n")
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    passwd.write_text(
        password_text([("gw-01", mosquitto_hash("gw-secret")), ("reader", mosquitto_hash("r"))])
    )
    acl.write_text(acl_text(["gw-01"], ingest_user="reader"))
    broker = Mosquitto(["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"])
    broker.start()
    try:
        outbox = MemoryOutbox()
        settings = UplinkSettings(
            port=broker.port,
            password_file="mqtt.pw",  # noqa: S106 - a file name
            batch_wait_s=0,
        ).resolved(tmp_path)
        uplink = Uplink(settings, outbox, gateway_id="gw-01")
        task = asyncio.create_task(uplink.run())
        try:
            async with asyncio.timeout(10):
                while not uplink.counters.connected:  # noqa: ASYNC110 - polling a counter
                    await asyncio.sleep(0.02)
        finally:
            uplink.stop()
            await task
        wrong = Uplink(
            UplinkSettings(
                port=broker.port,
                username="gw-01",
                password_file=str(tmp_path / "acl"),
                backoff=BackoffSettings(initial_s=0.01, max_s=0.02),
            ),
            MemoryOutbox(),
            gateway_id="gw-01",
        )
        task = asyncio.create_task(wrong.run())
        try:
            async with asyncio.timeout(10):
                while wrong.counters.connect_failures < 1:  # noqa: ASYNC110 - polling a counter
                    await asyncio.sleep(0.02)
            assert not wrong.counters.connected
        finally:
            wrong.stop()
            await task
    finally:
        broker.stop()


def test_a_file_name_with_a_nul_is_a_problem_not_a_crash() -> None:
    name = "pw\x00"
    settings = UplinkSettings(tls=True, ca_file="ca\x00.pem", password_file=name)
    assert [str(p) for p in settings.tls_problems()] == [
        "uplink.ca_file: ca\x00.pem: cannot read: a file name cannot hold a NUL character"
    ]
    assert [str(p) for p in settings.credential_problems()] == [
        "uplink.password_file: pw\x00: cannot read: a file name cannot hold a NUL character"
    ]
