"""Gateway identity: hashes, `cloud-ingest gateways` commands, and the files against real Mosquitto."""

from __future__ import annotations

import asyncio
import base64
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from cloud_ingest.cli import main
from cloud_ingest.gateways.mosquitto_files import acl_text, password_text, write_private
from cloud_ingest.gateways.secrets import (
    mosquitto_hash,
    mosquitto_verify,
    token_hash,
    token_matches,
)
from cloud_ingest.gateways.service import GatewayConflictError, GatewayError, add_gateway
from cloud_ingest.infra.db import create_engine
from simulators.services import Mosquitto

# Written by `mosquitto_passwd -b FILE gw-1 secret` (Mosquitto 2.0.11).
KNOWN = "$7$101$J9hAJo2bD7Gtu7/r$eHRVbz6+RZGViBlLhdLz8qrlsrwMKIkfrkeezP1QxjnNx55gyDwa1Tbi1nD2MB60gMYKLRWE6ncK+teSp6omYg=="


# --- hashing ------------------------------------------------------------------------------------


def test_mosquitto_hash_reproduces_mosquitto_passwd() -> None:
    salt = base64.b64decode(KNOWN.split("$")[3])
    assert mosquitto_hash("secret", salt=salt) == KNOWN
    assert mosquitto_verify("secret", KNOWN)
    assert not mosquitto_verify("Secret", KNOWN)


def test_mosquitto_hash_format_and_fresh_salt() -> None:
    first, second = mosquitto_hash("pw"), mosquitto_hash("pw")
    assert first != second
    empty, seven, iterations, salt, digest = first.split("$")
    assert (empty, seven, iterations) == ("", "7", "101")
    assert len(base64.b64decode(salt, validate=True)) == 12
    assert len(base64.b64decode(digest, validate=True)) == 64
    assert mosquitto_verify("pw", first)
    assert mosquitto_verify("pw", second)


@pytest.mark.parametrize("stored", ["", "plain", "$6$abc$def", "$7$x$AAAA$AAAA", "$7$101$!!$AAAA"])
def test_mosquitto_verify_refuses_other_formats(stored: str) -> None:
    assert not mosquitto_verify("pw", stored)


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd missing")
def test_our_hash_verifies_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    file = tmp_path / "pw"
    file.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(file), "gw-9", "hunter2"], check=True)
    user, stored = file.read_text().strip().split(":", 1)
    assert user == "gw-9"
    assert mosquitto_verify("hunter2", stored)
    assert not mosquitto_verify("hunter3", stored)


def test_token_hash_is_sha256_hex() -> None:
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert token_matches("abc", token_hash("abc"))
    assert not token_matches("abd", token_hash("abc"))


# --- service and commands -----------------------------------------------------------------------


def test_add_stores_only_hashes_and_refuses_a_duplicate(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/s.db"

    async def scenario() -> None:
        from cloud_ingest import migrations  # noqa: PLC0415
        from cloud_ingest.infra.schema import gateways  # noqa: PLC0415

        engine = create_engine(url)
        try:
            await migrations.upgrade(engine)
            creds = await add_gateway(engine, "gw-1", company="Acme", site="d/s")
            with pytest.raises(GatewayConflictError, match="already exists"):
                await add_gateway(engine, "gw-1", company="Acme")
            async with engine.connect() as conn:
                row = (await conn.execute(gateways.select())).one()
            assert row.company == "Acme"
            assert row.site == "d/s"
            assert creds.mqtt_password not in str(tuple(row))
            assert creds.http_token not in str(tuple(row))
            assert mosquitto_verify(creds.mqtt_password, row.password_hash)
            assert row.token_hash == token_hash(creds.http_token)
            rotated = await add_gateway(engine, "gw-1", company=None, rotate=True)
            async with engine.connect() as conn:
                after = (await conn.execute(gateways.select())).one()
            assert after.company == "Acme"
            assert mosquitto_verify(rotated.mqtt_password, after.password_hash)
            assert not mosquitto_verify(creds.mqtt_password, after.password_hash)
            assert after.token_hash == token_hash(rotated.http_token) != row.token_hash
            with pytest.raises(GatewayConflictError, match="add it first"):
                await add_gateway(engine, "gw-2", company="Acme", rotate=True)
            for bad in ("", "a/b", "a+b", "#", "a b", "a:b", "-a", "x" * 129):
                with pytest.raises(GatewayError):
                    await add_gateway(engine, bad, company="Acme")
            with pytest.raises(GatewayError, match="empty segment"):
                await add_gateway(engine, "gw-3", company="Acme", site="a//b")
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_add_takes_over_a_gateway_registered_on_first_sight(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/s.db"

    async def scenario() -> None:
        from datetime import UTC, datetime  # noqa: PLC0415

        from cloud_ingest import migrations  # noqa: PLC0415
        from cloud_ingest.infra.schema import gateways  # noqa: PLC0415

        engine = create_engine(url)
        try:
            await migrations.upgrade(engine)
            async with engine.begin() as conn:
                await conn.execute(
                    gateways.insert().values(id="gw-1", created_at=datetime.now(UTC))
                )
            creds = await add_gateway(engine, "gw-1", company="Acme")
            async with engine.connect() as conn:
                row = (await conn.execute(gateways.select())).one()
            assert row.company == "Acme"
            assert mosquitto_verify(creds.mqtt_password, row.password_hash)
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def _cli(args: list[str], db: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([*args, "--db", db])
    out, err = capsys.readouterr()
    return code, out, err


def _credentials(out: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in out.splitlines() if line.startswith(("mqtt", "http")))
    return {key.strip(): value.strip() for key, value in pairs}


def test_cli_add_list_rotate_duplicate_and_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("STEWARD_DATABASE_URL", "STEWARD_MQTT_URL"):
        monkeypatch.delenv(name, raising=False)
    db = f"sqlite:///{tmp_path}/c.db"
    code, out, _ = _cli(["gateways", "add", "gw-1", "--company", "Acme"], db, capsys)
    assert code == 0
    first = _credentials(out)
    assert first["mqtt username"] == "gw-1"
    assert len(first["mqtt password"]) >= 40
    assert len(first["http token"]) >= 40

    code, _, err = _cli(["gateways", "add", "gw-1", "--company", "Acme"], db, capsys)
    assert code == 1
    duplicate = (
        "cloud-ingest gateways add: error: gateway 'gw-1' already exists; "
        "use --rotate to issue new credentials"
    )
    assert err.strip().splitlines() == [duplicate]
    code, out, _ = _cli(["gateways", "add", "gw-1", "--rotate"], db, capsys)
    assert code == 0
    second = _credentials(out)
    assert second["mqtt password"] != first["mqtt password"]
    assert second["http token"] != first["http token"]

    for args in (
        ["gw/2", "--company", "A"],
        ["gw-2"],
        ["gw-2", "--company", "A", "--site", "a//b"],
    ):
        code, _, err = _cli(["gateways", "add", *args], db, capsys)
        assert code == 2
        assert len(err.strip().splitlines()) == 1
        assert err.startswith("cloud-ingest gateways add: error: ")

    code, out, _ = _cli(["gateways", "list"], db, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "COMPANY", "STATUS", "LAST", "SEEN", "CREDENTIALS"]
    assert lines[1].split() == ["gw-1", "Acme", "unknown", "never", "yes"]
    assert len(lines) == 2


def test_cli_writes_private_files_and_refuses_clashing_ingest_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path}/c.db"
    assert _cli(["gateways", "add", "gw-1", "--company", "Acme"], db, capsys)[0] == 0
    secret = tmp_path / "ingest.secret"
    secret.write_text("s3cret\n")
    pw, acl = tmp_path / "pw", tmp_path / "acl"
    args = ["gateways", "passwd", str(pw), "--ingest-user", "ing"]
    code, out, _ = _cli([*args, "--ingest-password-file", str(secret)], db, capsys)
    assert code == 0
    assert "s3cret" not in out
    users = dict(line.split(":", 1) for line in pw.read_text().splitlines())
    assert set(users) == {"gw-1", "ing"}
    assert mosquitto_verify("s3cret", users["ing"])
    assert stat.S_IMODE(pw.stat().st_mode) == 0o600
    code, out, _ = _cli(["gateways", "acl", str(acl), "--ingest-user", "ing"], db, capsys)
    assert code == 0
    assert stat.S_IMODE(acl.stat().st_mode) == 0o600
    assert "user gw-1\n" in acl.read_text()
    assert "user ing\n" in acl.read_text()
    code, _, err = _cli(["gateways", "passwd", str(pw), "--ingest-user", "gw-1"], db, capsys)
    assert code == 2
    assert "also a gateway id" in err
    code, _, err = _cli(["gateways", "acl", str(tmp_path / "none" / "acl")], db, capsys)
    assert code == 1
    assert err.count("\n") == 1


def test_every_gateways_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("add", "list", "passwd", "acl"):
        with pytest.raises(SystemExit) as exit_:
            main(["gateways", command, "--help"])
        assert exit_.value.code == 0
        assert "usage: cloud-ingest gateways " + command in capsys.readouterr().out


def test_write_private_replaces_a_file_atomically(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


# --- against real Mosquitto ---------------------------------------------------------------------


class Client:
    """A paho MQTT 5 client that records its CONNACK reason and the messages it receives."""

    def __init__(self, broker: Mosquitto, user: str, password: str, client_id: str) -> None:
        self.connack: ReasonCode | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.subscribed = threading.Event()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: self.subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._connected.wait(5), "no CONNACK"

    def _on_connect(
        self, _c: object, _u: object, _f: object, reason: ReasonCode, _p: object
    ) -> None:
        self.connack = reason
        self._connected.set()

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        self.messages.append((message.topic, bytes(message.payload)))

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(5), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, dict[str, str]]]:
    """A broker with our password and ACL files; a test-only `pusher` may write config topics."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed")
    passwords = {"gw-a": "pass-a", "gw-b": "pass-b", "ingest": "pass-i", "pusher": "pass-p"}
    pw, acl = tmp_path / "passwd", tmp_path / "acl"
    write_private(pw, password_text((u, mosquitto_hash(p)) for u, p in passwords.items()))
    pusher = "user pusher\ntopic write steward/v1/+/config\n"
    write_private(acl, acl_text(["gw-a", "gw-b"], "ingest") + pusher)
    broker = Mosquitto(["allow_anonymous false", f"password_file {pw}", f"acl_file {acl}"])
    broker.start()
    try:
        yield broker, passwords
    finally:
        broker.stop()


def _wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_acl_confines_each_gateway_to_its_own_topics(
    locked_broker: tuple[Mosquitto, dict[str, str]],
) -> None:
    broker, pw = locked_broker
    ingest = Client(broker, "ingest", pw["ingest"], "ingest-1")
    gw_a = Client(broker, "gw-a", pw["gw-a"], "gw-a")
    pusher = Client(broker, "pusher", pw["pusher"], "pusher")
    try:
        assert ingest.connack is not None
        assert not ingest.connack.is_failure
        assert gw_a.connack is not None
        assert not gw_a.connack.is_failure
        ingest.subscribe("$share/ingest/steward/v1/+/up")
        ingest.subscribe("steward/v1/+/status")
        gw_a.subscribe("steward/v1/gw-b/config")  # acknowledged, but delivers nothing
        gw_a.subscribe("steward/v1/gw-a/config")

        gw_a.publish("steward/v1/gw-b/up", b"forged")
        gw_a.publish("steward/v1/gw-b/status", b"forged")
        gw_a.publish("steward/v1/gw-a/up", b"own")
        gw_a.publish("steward/v1/gw-a/status", b"online")
        pusher.publish("steward/v1/gw-b/config", b"for b", retain=True)
        pusher.publish("steward/v1/gw-a/config", b"for a", retain=True)

        _wait_for(lambda: len(ingest.messages) >= 2 and bool(gw_a.messages))
        time.sleep(0.3)  # anything wrongly routed would have arrived by now
        assert sorted(ingest.messages) == [
            ("steward/v1/gw-a/status", b"online"),
            ("steward/v1/gw-a/up", b"own"),
        ]
        assert gw_a.messages == [("steward/v1/gw-a/config", b"for a")]
    finally:
        for client in (ingest, gw_a, pusher):
            client.close()


def test_wrong_password_and_unknown_user_are_refused_at_connect(
    locked_broker: tuple[Mosquitto, dict[str, str]],
) -> None:
    broker, pw = locked_broker
    for user, password in (("gw-a", pw["gw-b"]), ("gw-c", "anything"), ("gw-a", "")):
        client = Client(broker, user, password, f"probe-{user}")
        try:
            assert client.connack is not None
            assert client.connack.is_failure
        finally:
            client.close()
