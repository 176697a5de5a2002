"""`deploy/server/`: the cloud's example files, run for real where this machine can run them.

- `cloud.example.yaml` and `cloud.example.env` load with the settings loader the CLI uses;
- `mosquitto-steward.conf` runs a real Mosquitto (only ports and paths moved to a scratch
  directory; a CA and the server certificate made here) with the password and ACL files written
  by `steward-broker-files.sh`, i.e. by `cloud-ingest gateways passwd` and `gateways acl`:
  gateways log in over TLS and are confined to their own topics, the ingest user receives on the
  loopback listener through the shared subscription;
- the systemd units pass `systemd-analyze verify` (when it is installed);
- `steward-backup.sh` keeps the newest sets, and its dump restores into a new database (the
  restore drill of docs/deploy-server.md) with the gateways in it;
- `nginx-steward.conf` passes `nginx -t` (when nginx is installed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import ipaddress
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ingest_server import IngestServer, envelope, until, up_message, upgrade_database
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from cloud_ingest.cli import main
from cloud_ingest.infra.config import Settings, load_settings
from core.types import ENVELOPE_LIMITS
from simulators.services import Postgres, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "deploy" / "server"
CLOUD_INGEST = Path(sys.prefix) / "bin" / "cloud-ingest"
INGEST_USER = "steward-ingest"


def _env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines of an EnvironmentFile (comments and blank lines skipped)."""
    pairs = (
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {name.strip(): value.strip() for name, value in pairs}


def _example_config(tmp_path: Path) -> Path:
    """`cloud.example.yaml` with its one file reference (the InfluxDB token) pointing at a file."""
    token = tmp_path / "influx-token"
    token.write_text("a-token\n")
    text = (SERVER / "cloud.example.yaml").read_text()
    assert "/etc/steward/influx-token" in text
    config = tmp_path / "cloud.yaml"
    config.write_text(text.replace("/etc/steward/influx-token", str(token)))
    return config


def _unit_environment(unit: str) -> dict[str, str]:
    """The `Environment=` assignments of a unit file."""
    pairs: dict[str, str] = {}
    for line in (SERVER / unit).read_text().splitlines():
        if line.startswith("Environment="):
            for item in line.removeprefix("Environment=").split():
                name, value = item.split("=", 1)
                pairs[name] = value
    return pairs


# --- settings ----------------------------------------------------------------------------------


def test_the_example_settings_load_with_the_secrets_of_the_env_file(tmp_path: Path) -> None:
    secrets = _env_file(SERVER / "cloud.example.env")
    unit = _unit_environment("cloud-ingest@.service")
    client_id = unit["STEWARD_MQTT_CLIENT_ID"].replace("%l", "app1").replace("%i", "8001")
    environ = {**secrets, "STEWARD_MQTT_CLIENT_ID": client_id}
    settings = load_settings(config_file=_example_config(tmp_path), environ=environ)

    assert settings.database_url == "postgresql+asyncpg://steward@127.0.0.1:5432/steward"
    assert not settings.runs_migrations
    consumer = settings.consumer_settings()
    assert (consumer.host, consumer.port, consumer.tls) == ("127.0.0.1", 1883, False)
    assert consumer.username == INGEST_USER
    # The file's URL has no password: this one comes from STEWARD_MQTT_URL of the env file.
    assert consumer.password == secrets["STEWARD_MQTT_URL"].split(":")[2].split("@")[0]
    assert consumer.client_id == "steward-ingest-app1-8001"
    assert settings.require_registration
    assert settings.telemetry_store == "influx"
    assert settings.influx_token_value() == "a-token"
    assert settings.notify_smtp_password == secrets["STEWARD_NOTIFY_SMTP_PASSWORD"]
    assert settings.console_secure_cookies
    # Every STEWARD_ variable the examples set names a setting; PGPASSWORD is libpq's and asyncpg's.
    steward = {name for name in {*secrets, *unit} if name.startswith("STEWARD_")}
    assert {name.removeprefix("STEWARD_").lower() for name in steward} <= set(Settings.model_fields)
    assert set(secrets) - steward == {"PGPASSWORD"}


def test_the_example_settings_hold_no_secret() -> None:
    text = (SERVER / "cloud.example.yaml").read_text()
    assert not re.search(r"^\s*\w*(password|_token)\s*:", text, re.MULTILINE)
    assert "change-me" not in text
    assert "@127.0.0.1:1883" in text
    assert ":" not in text.split("mqtt://", 1)[1].split("@", 1)[0]  # a user, no password


# --- Mosquitto with TLS and the generated files -------------------------------------------------


@dataclass(frozen=True)
class Broker:
    """The example broker running in a scratch directory."""

    tls_port: int
    plain_port: int
    ca: Path
    passwords: dict[str, str]
    workdir: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_pem(path: Path, item: x509.Certificate | ec.EllipticCurvePrivateKey) -> None:
    if isinstance(item, x509.Certificate):
        path.write_bytes(item.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            item.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def _make_certificates(directory: Path) -> None:
    """`ca.crt`; `server.crt`/`.key` for localhost and 127.0.0.1 and `client.crt`/`.key` (a
    gateway's), both signed by the CA."""
    now = dt.datetime.now(dt.UTC)
    ca_key, server_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Steward test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = _key()
    client = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw-a")]))
        .issuer_name(ca_name)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    _write_pem(directory / "ca.crt", ca)
    for name, cert, key in (("server", server, server_key), ("client", client, client_key)):
        _write_pem(directory / f"{name}.crt", cert)
        _write_pem(directory / f"{name}.key", key)
        (directory / f"{name}.key").chmod(0o600)


def _credentials(out: str) -> str:
    """The MQTT password from the output of `cloud-ingest gateways add`."""
    for line in out.splitlines():
        if line.startswith("mqtt password"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no MQTT password in {out!r}")


def _moved(text: str, replacements: dict[str, str]) -> str:
    """`text` with each key replaced; each must be there (the guide names these paths)."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is not in mosquitto-steward.conf"
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The example broker; gateways gw-a and gw-b added, the broker's files written by the script."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed")
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("STEWARD_")]:
            patch.delenv(name)
        yield from _broker(tmp_path_factory.mktemp("broker"))


def _broker(tmp_path: Path) -> Iterator[Broker]:
    work = tmp_path / "broker"
    work.mkdir()
    _make_certificates(work)
    db = f"sqlite:///{tmp_path}/steward.db"
    passwords = {}
    for gateway in ("gw-a", "gw-b"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["gateways", "add", gateway, "--company", "Acme", "--db", db]) == 0
        passwords[gateway] = _credentials(out.getvalue())
    passwords[INGEST_USER] = "ingest-secret"
    (tmp_path / "mqtt-ingest.password").write_text("ingest-secret\n")
    (tmp_path / "cloud.env").write_text(f"STEWARD_DATABASE_URL={db}\n")
    script = subprocess.run(
        [
            "bash",
            str(SERVER / "steward-broker-files.sh"),
            "--cloud-ingest",
            str(CLOUD_INGEST),
            "--config",
            str(_example_config(tmp_path)),
            "--env",
            str(tmp_path / "cloud.env"),
            "--dir",
            str(work),
            "--ingest-password",
            str(tmp_path / "mqtt-ingest.password"),
            "--owner",
            str(os.geteuid()),
            "--no-reload",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert script.returncode == 0, script.stderr
    assert (work / "passwd").read_text().count("\n") == 3
    with _mosquitto(work) as (tls_port, plain_port):
        yield Broker(tls_port, plain_port, work / "ca.crt", passwords, work)


@contextlib.contextmanager
def _mosquitto(work: Path, *, state: str = "state", **lines: str) -> Iterator[tuple[int, int]]:
    """Run `mosquitto-steward.conf` with its files in `work` (its persistence in `work/state`);
    `lines` replace lines of the file. Yields the TLS port and the loopback port."""
    tls_port, plain_port = free_port(), free_port()
    (work / state).mkdir()
    conf = _moved(
        (SERVER / "mosquitto-steward.conf").read_text(),
        {
            "/etc/mosquitto/certs/": f"{work}/",
            "/etc/mosquitto/steward/": f"{work}/",
            "/var/lib/mosquitto/": f"{work}/{state}/",
            "/run/mosquitto/": f"{work}/{state}/",
            "\nlistener 8883\n": f"\nlistener {tls_port}\n",
            "\nlistener 1883 127.0.0.1\n": f"\nlistener {plain_port} 127.0.0.1\n",
            **{f"\n{old}\n": f"\n{new}\n" for old, new in lines.items()},
        },
    )
    if os.geteuid() == 0:
        conf += "user root\n"  # as root, Mosquitto would become `mosquitto`, locked out of tmp_path
    (work / state / "mosquitto.conf").write_text(conf)
    log = work / state / "mosquitto.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            ["mosquitto", "-c", str(work / state / "mosquitto.conf")],
            stdout=log_file,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_port(tls_port, proc, 10, log)
        wait_for_port(plain_port, proc, 10, log)
        yield tls_port, plain_port
    finally:
        proc.terminate()
        proc.wait(10)


class Client:
    """A paho MQTT 5 client that records its CONNACK reason and the messages it receives."""

    def __init__(
        self, port: int, user: str, password: str, *, ca: Path | None, cert: Path | None = None
    ) -> None:
        self.connack: ReasonCode | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.subscribed = threading.Event()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{user}-{port}", protocol=mqtt.MQTTv5
        )
        if ca is not None:
            key = None if cert is None else str(cert.with_suffix(".key"))
            self.client.tls_set(
                ca_certs=str(ca), certfile=None if cert is None else str(cert), keyfile=key
            )
        self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._connected.wait(5), "no CONNACK"

    def _on_connect(
        self, _c: object, _u: object, _f: object, reason: ReasonCode, _p: object
    ) -> None:
        self.connack = reason
        self._connected.set()

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        self.messages.append((message.topic, bytes(message.payload)))

    @property
    def accepted(self) -> bool:
        """Whether the broker accepted the CONNECT."""
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(5), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_gateways_log_in_over_tls_and_publish_only_under_their_own_id(broker: Broker) -> None:
    pw = broker.passwords
    ingest = Client(broker.plain_port, INGEST_USER, pw[INGEST_USER], ca=None)
    gw_a = Client(broker.tls_port, "gw-a", pw["gw-a"], ca=broker.ca)
    gw_b = Client(broker.tls_port, "gw-b", pw["gw-b"], ca=broker.ca)
    try:
        assert ingest.accepted
        assert gw_a.accepted
        assert gw_b.accepted
        ingest.subscribe("$share/ingest/steward/v1/+/up")
        ingest.subscribe("steward/v1/+/status")
        gw_a.publish("steward/v1/gw-b/up", b"forged by a")
        gw_a.publish("steward/v1/gw-b/status", b"forged by a")
        gw_a.publish("steward/v1/gw-a/up", b"from a")
        gw_a.publish("steward/v1/gw-a/status", b"online")
        gw_b.publish("steward/v1/gw-b/up", b"from b")

        _wait_for(lambda: len(ingest.messages) >= 3)
        time.sleep(0.3)  # anything wrongly routed would have arrived by now
        assert sorted(ingest.messages) == [
            ("steward/v1/gw-a/status", b"online"),
            ("steward/v1/gw-a/up", b"from a"),
            ("steward/v1/gw-b/up", b"from b"),
        ]
    finally:
        for client in (ingest, gw_a, gw_b):
            client.close()


def test_the_gateway_listener_refuses_plain_mqtt_bad_passwords_and_strangers(
    broker: Broker,
) -> None:
    pw = broker.passwords
    for user, password in (("gw-a", pw["gw-b"]), ("gw-c", "anything"), ("gw-a", "")):
        client = Client(broker.tls_port, user, password, ca=broker.ca)
        try:
            assert client.connack is not None
            assert client.connack.is_failure, user
        finally:
            client.close()
    anonymous = Client(broker.plain_port, "", "", ca=None)
    try:
        assert not anonymous.accepted
    finally:
        anonymous.close()
    plain = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="plain", protocol=mqtt.MQTTv5)
    plain.username_pw_set("gw-a", pw["gw-a"])
    plain.connect("127.0.0.1", broker.tls_port)
    plain.loop(timeout=1.0)
    plain.loop(timeout=1.0)
    assert not plain.is_connected()  # a TLS listener: no CONNACK to plain MQTT
    stranger = ssl.create_default_context()  # the system's CAs do not know our CA
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", broker.tls_port), timeout=5) as sock,
    ):
        stranger.wrap_socket(sock, server_hostname="localhost")


def test_require_certificate_makes_a_client_certificate_a_second_factor(broker: Broker) -> None:
    with _mosquitto(
        broker.workdir,
        state="with-certificates",
        **{"#require_certificate true": "require_certificate true"},
    ) as (tls_port, _):
        with_cert = Client(
            tls_port,
            "gw-a",
            broker.passwords["gw-a"],
            ca=broker.ca,
            cert=broker.workdir / "client.crt",
        )
        try:
            assert with_cert.accepted
        finally:
            with_cert.close()
        without = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="no-cert", protocol=mqtt.MQTTv5
        )
        without.tls_set(ca_certs=str(broker.ca))
        without.username_pw_set("gw-a", broker.passwords["gw-a"])
        with contextlib.suppress(ssl.SSLError, OSError):
            without.connect("127.0.0.1", tls_port)
            without.loop(timeout=1.0)
            without.loop(timeout=1.0)
        assert not without.is_connected()


def test_the_broker_files_are_private_and_name_each_gateway(broker: Broker) -> None:
    acl = (broker.workdir / "acl").read_text()
    assert "user gw-a\ntopic write steward/v1/gw-a/up\n" in acl
    assert f"user {INGEST_USER}\ntopic read steward/v1/+/up\n" in acl
    for name in ("passwd", "acl"):
        assert (broker.workdir / name).stat().st_mode & 0o077 == 0


# --- systemd ------------------------------------------------------------------------------------

UNITS = (
    "cloud-ingest@.service",
    "cloud-ingest.target",
    "cloud-ingest-migrate.service",
    "steward-backup.service",
    "steward-backup.timer",
)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_systemd_units_pass_verify(tmp_path: Path) -> None:
    for unit in UNITS:
        text = (SERVER / unit).read_text()
        text = text.replace("/opt/steward/venv/bin/cloud-ingest", str(CLOUD_INGEST))
        text = text.replace("/opt/steward/bin/steward-backup.sh", str(SERVER / "steward-backup.sh"))
        (tmp_path / unit).write_text(text)
    (tmp_path / "cloud-ingest@8001.service").symlink_to("cloud-ingest@.service")
    names = [f"./{unit}" for unit in UNITS if unit != "cloud-ingest@.service"]
    result = subprocess.run(
        ["systemd-analyze", "verify", "./cloud-ingest@8001.service", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_each_instance_has_its_port_and_its_own_client_id() -> None:
    unit = (SERVER / "cloud-ingest@.service").read_text()
    assert "Type=exec" in unit
    assert "serve --config /etc/steward/cloud.yaml --port %i" in unit
    assert "EnvironmentFile=/etc/steward/cloud.env" in unit
    assert "%i" in _unit_environment("cloud-ingest@.service")["STEWARD_MQTT_CLIENT_ID"]
    migrate = (SERVER / "cloud-ingest-migrate.service").read_text()
    assert "db upgrade --config /etc/steward/cloud.yaml" in migrate
    assert "[Install]" not in migrate  # a deployment step, never started at boot


# --- backups ------------------------------------------------------------------------------------


def _backup(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SERVER / "steward-backup.sh"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("script", ["steward-backup.sh", "steward-broker-files.sh"])
def test_the_scripts_parse(script: str) -> None:
    assert subprocess.run(["bash", "-n", str(SERVER / script)], check=False).returncode == 0


def test_backup_keeps_the_newest_sets_and_drops_incomplete_ones(tmp_path: Path) -> None:
    dest, conf = tmp_path / "backups", tmp_path / "etc-steward"
    conf.mkdir()
    (conf / "cloud.yaml").write_text("log_level: info\n")
    old = ["20260101T000000Z", "20260102T000000Z", "20260103T000000Z"]
    for name in [*old, "20260104T000000Z.partial", "unrelated"]:
        (dest / name).mkdir(parents=True)
    result = _backup(
        "--dest", str(dest), "--keep", "2", "--no-postgres", "--no-influx", "--files", str(conf)
    )
    assert result.returncode == 0, result.stderr
    kept = {path.name for path in dest.iterdir()}
    (new,) = kept - {"20260103T000000Z", "unrelated"}
    assert re.fullmatch(r"\d{8}T\d{6}Z", new)
    assert len(kept) == 3  # the newest old set, the new one, and what is not a set
    assert sorted(path.name for path in (dest / new).iterdir()) == ["SHA256SUMS", "files.tar.gz"]
    assert (dest / new).stat().st_mode & 0o077 == 0
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dest / new, check=False)
    assert check.returncode == 0
    listing = subprocess.run(
        ["tar", "-tzf", str(dest / new / "files.tar.gz")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{str(conf).lstrip('/')}/cloud.yaml" in listing.splitlines()
    for bad in (["--keep", "0"], ["--files", "relative/path"], ["--bogus"]):
        refused = _backup("--dest", str(dest), "--no-postgres", "--no-influx", *bad)
        assert refused.returncode != 0, bad
    assert {path.name for path in dest.iterdir()} == kept


@pytest.mark.skipif(shutil.which("pg_restore") is None, reason="pg_restore not installed")
def test_the_postgres_dump_restores_into_a_new_database(
    tmp_path: Path,
    postgres_server: Postgres,
    postgres_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    assert main(["db", "upgrade", "--db", postgres_url]) == 0
    assert main(["gateways", "add", "gw-lotus", "--company", "Acme", "--db", postgres_url]) == 0
    capsys.readouterr()
    libpq = {
        "PGHOST": postgres_server.host,
        "PGPORT": str(postgres_server.port),
        "PGUSER": postgres_server.user,
    }
    dest = tmp_path / "backups"
    result = _backup(
        "--dest",
        str(dest),
        "--database",
        database,
        "--no-influx",
        "--files",
        str(SERVER),
        env=libpq,
    )
    assert result.returncode == 0, result.stderr
    (dump,) = dest.glob("*/postgres.dump")

    postgres_server.create_database(f"{database}_restored")
    restore = subprocess.run(
        ["pg_restore", "--no-owner", "-d", f"{database}_restored", str(dump)],
        env={**os.environ, **libpq},
        capture_output=True,
        text=True,
        check=False,
    )
    assert restore.returncode == 0, restore.stderr
    restored = f"{postgres_url}_restored"
    assert main(["db", "upgrade", "--db", restored]) == 0  # already at the newest revision
    capsys.readouterr()
    assert main(["gateways", "list", "--db", restored]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed[1:]] == ["gw-lotus"]
    assert listed[1].split()[-1] == "yes"  # its credential hashes came back too


# --- nginx --------------------------------------------------------------------------------------


def test_nginx_lets_a_whole_envelope_through_and_streams_unbuffered() -> None:
    conf = (SERVER / "nginx-steward.conf").read_text()
    (limit,) = re.findall(r"client_max_body_size (\d+)k;", conf)
    assert ENVELOPE_LIMITS.max_bytes < int(limit) * 1024 < ENVELOPE_LIMITS.max_bytes * 1.1
    stream = conf.split("location = /api/v1/stream {", 1)[1].split("}", 1)[0]
    assert "proxy_buffering off;" in stream
    assert "proxy_read_timeout 1h;" in stream
    upstream = conf.split("upstream steward_ingest {", 1)[1].split("}", 1)[0]
    assert re.findall(r"server 127\.0\.0\.1:(\d+)", upstream) == ["8001", "8002", "8003"]


@dataclass(frozen=True)
class Nginx:
    """The example site, moved to a scratch directory: its main file and its ports."""

    conf: Path
    https_port: int
    internal_port: int


def _nginx(tmp_path: Path, instances: list[int] | None = None) -> Nginx:
    """`nginx-steward.conf` with its ports, paths and (given `instances`) upstream moved."""
    if not (tmp_path / "server.crt").exists():
        _make_certificates(tmp_path)
    https_port, internal_port = free_port(), free_port()
    moves = {
        "/etc/nginx/tls/steward.crt": str(tmp_path / "server.crt"),
        "/etc/nginx/tls/steward.key": str(tmp_path / "server.key"),
        "/var/log/nginx/": f"{tmp_path}/",
        "listen 80;": f"listen 127.0.0.1:{free_port()};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen 9180;": f"listen 127.0.0.1:{internal_port};",
    }
    if instances is not None:
        for example, port in zip((8001, 8002, 8003), [*instances, None, None, None], strict=False):
            line = f"    server 127.0.0.1:{example} max_fails=1 fail_timeout=5s;\n"
            moves[line] = "" if port is None else line.replace(str(example), str(port))
        moves["(?<instance>80[0-9][0-9])"] = "(?<instance>[0-9]+)"
    site = _moved((SERVER / "nginx-steward.conf").read_text(), moves)
    site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
    (tmp_path / "steward.conf").write_text(site)
    temp = "".join(
        f"{kind}_temp_path {tmp_path}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = tmp_path / "nginx.conf"
    # As root, the workers would run as nobody, locked out of tmp_path.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log {tmp_path}/access.log;\n{temp}include {tmp_path}/steward.conf;\n}}\n"
    )
    return Nginx(conf, https_port, internal_port)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")
def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    nginx = _nginx(tmp_path)
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(nginx.conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _printed(out: str, label: str) -> str:
    """The value of the line `label: value` a `cloud-ingest ... add` command printed."""
    for line in out.splitlines():
        if line.startswith(f"{label}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {label!r} in {out!r}")


class StreamReader(threading.Thread):
    """Reads `GET /api/v1/stream` through nginx, line by line, until told to stop."""

    def __init__(self, client: httpx.Client, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.client, self.url, self.token = client, url, token
        self.lines: list[str] = []
        self.status = 0
        self.stop = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with (
            contextlib.suppress(httpx.TransportError),  # nginx stopping ends the stream
            self.client.stream("GET", self.url, headers=headers, timeout=30) as response,
        ):
            self.status = response.status_code
            for line in response.iter_lines():
                self.lines.append(line)
                if self.stop.is_set():
                    return


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")
def test_gateway_to_console_through_the_tls_broker_and_nginx(
    tmp_path: Path, broker: Broker, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An instance on PostgreSQL behind the example nginx (beside one that is down), consuming
    from the example broker: a gateway's alarm over TLS reaches the live stream through nginx."""
    upgrade_database(postgres_url)  # the deployment step before any instance starts
    assert main(["users", "add", "ops", "--role", "admin", "--db", postgres_url]) == 0
    token = _printed(capsys.readouterr().out, "api token")
    assert main(["gateways", "add", "gw-h", "--company", "Acme", "--db", postgres_url]) == 0
    http_token = _printed(capsys.readouterr().out, "http token")
    mqtt_url = f"mqtt://{INGEST_USER}:{broker.passwords[INGEST_USER]}@127.0.0.1:{broker.plain_port}"
    server = IngestServer(tmp_path, db_url=postgres_url, mqtt_url=mqtt_url, client_id="it-1")
    server.start()
    restarting = free_port()  # a second instance in the upstream, down as during its restart
    nginx = _nginx(tmp_path, [restarting, server.port])
    log = tmp_path / "nginx.out"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            ["nginx", "-p", str(tmp_path), "-c", str(nginx.conf), "-g", "daemon off;"],
            stdout=log_file,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
        )
    gateway = Client(broker.tls_port, "gw-a", broker.passwords["gw-a"], ca=broker.ca)
    tls = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    public = f"https://127.0.0.1:{nginx.https_port}"
    try:
        wait_for_port(nginx.https_port, proc, 10, log)
        with httpx.Client(verify=tls) as client:
            internal = f"http://127.0.0.1:{nginx.internal_port}"
            assert client.get(f"{internal}/{server.port}/readyz").json()["status"] == "ok"
            assert "steward_ingest_" in client.get(f"{internal}/{server.port}/metrics").text
            assert client.get(f"{internal}/{restarting}/readyz").status_code == 502
            for _ in range(4):  # least_conn tries the instance that is down, then the other
                assert client.get(f"{public}/healthz").status_code == 200
            assert client.get(f"{public}/metrics").status_code == 404

            stream = StreamReader(client, f"{public}/api/v1/stream", token)
            stream.start()
            until(lambda: ": connected" in stream.lines, 5, "the stream's first line via nginx")
            gateway.publish(*up_message(envelope("gw-a", 1)))
            until(lambda: "event: alarm" in stream.lines, 10, "the alarm on the stream via nginx")
            stream.stop.set()
            assert stream.status == 200

            headers = {"Authorization": f"Bearer {http_token}", "Content-Type": "application/json"}
            over = b" " * (ENVELOPE_LIMITS.max_bytes + 10_000)
            refused = client.post(f"{public}/api/v1/ingest", content=over, headers=headers)
            assert refused.status_code == 413
            assert refused.headers["content-type"] == "application/problem+json"  # the instance's
            far_over = b" " * (3 * 1024 * 1024)
            refused = client.post(f"{public}/api/v1/ingest", content=far_over, headers=headers)
            assert refused.status_code == 413
            assert "nginx" in refused.text  # refused before it reached an instance
    finally:
        gateway.close()
        proc.terminate()
        proc.wait(10)
        server.stop()
