"""The uplink over mutual TLS with a per-gateway ACL (PKI generated here with `cryptography`)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.envelope_json import loads
from core.metrics import Metric
from core.types import Envelope, Reading
from edge_agent.outbox.memory import MemoryOutbox
from edge_agent.uplink import Uplink, UplinkTopics
from edge_agent.uplink_settings import BackoffSettings, UplinkSettings
from simulators.fixtures_services import MosquittoFactory
from simulators.services import Mosquitto

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 22, tzinfo=UTC)


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path

    def cert(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def context(self, name: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if name is not None:
            crt, key = self.cert(name)
            ctx.load_cert_chain(str(crt), str(key))
        return ctx


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_pki(directory: Path, clients: tuple[str, ...]) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, and one client certificate per CN."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "steward test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(directory / "ca.crt", ca_key, ca)
    for name in ("server", *clients):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if name == "server":
            san = x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            )
            builder = builder.add_extension(san, critical=False)
        _write(directory / f"{name}.crt", key, builder.sign(ca_key, hashes.SHA256()))
    (directory / "ca.key").unlink()
    return Pki(directory, directory / "ca.crt")


@pytest.fixture
def tls_broker(tmp_path: Path, mosquitto_factory: MosquittoFactory) -> tuple[Mosquitto, Pki]:
    pki = make_pki(tmp_path, ("gw1", "gw2", "ingest"))
    acl = tmp_path / "acl"
    acl.write_text("pattern readwrite steward/v1/%u/#\nuser ingest\ntopic read steward/v1/#\n")
    broker = mosquitto_factory(
        [
            f"cafile {pki.ca}",
            f"certfile {tmp_path / 'server.crt'}",
            f"keyfile {tmp_path / 'server.key'}",
            "require_certificate true",
            "use_identity_as_username true",
            f"acl_file {acl}",
        ]
    )
    return broker, pki


@contextlib.asynccontextmanager
async def ingest(broker: Mosquitto, pki: Pki) -> AsyncIterator[list[Envelope]]:
    got: list[Envelope] = []

    async def listen(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            got.append(loads(message.payload))

    async with aiomqtt.Client(
        broker.host, broker.port, identifier="ingest", tls_context=pki.context("ingest")
    ) as client:
        await client.subscribe("steward/v1/+/up", qos=1)
        task = asyncio.create_task(listen(client))
        try:
            yield got
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def uplink_settings(broker: Mosquitto, pki: Pki, name: str) -> UplinkSettings:
    crt, key = pki.cert(name)
    return UplinkSettings(
        host=broker.host,
        port=broker.port,
        tls=True,
        ca_file=str(pki.ca),
        cert_file=str(crt),
        key_file=str(key),
        publish_timeout_s=2,
        connect_timeout_s=2,
        batch_wait_s=0.01,
        backoff=BackoffSettings(initial_s=0.05, max_s=0.2),
    )


async def wait_for(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} in time")
        await asyncio.sleep(0.02)


async def test_mutual_tls_delivers_and_acl_confines_the_gateway(
    tls_broker: tuple[Mosquitto, Pki],
) -> None:
    broker, pki = tls_broker
    async with ingest(broker, pki) as got:
        outbox = MemoryOutbox()
        await outbox.put([Reading("bin-1", Metric.FILL_PCT, float(n), T0) for n in range(20)])
        uplink = Uplink(uplink_settings(broker, pki, "gw1"), outbox, gateway_id="gw1")
        task = asyncio.create_task(uplink.run())
        try:
            await wait_for(lambda: sum(len(e.readings) for e in got) == 20, "delivery")
        finally:
            uplink.stop()
            await task
        assert {e.gateway_id for e in got} == {"gw1"}
        assert [r.value for e in got for r in e.readings] == [float(n) for n in range(20)]

        # gw2's certificate may not publish into gw1's namespace (MQTT 3.1.1: silently dropped).
        spoof = MemoryOutbox()
        await spoof.put([Reading("bin-9", Metric.FILL_PCT, 99.0, T0)])
        intruder = Uplink(uplink_settings(broker, pki, "gw2"), spoof, gateway_id="gw1")
        task = asyncio.create_task(intruder.run())
        try:
            await wait_for(lambda: intruder.counters.records_sent == 1, "spoof sent")
        finally:
            intruder.stop()
            await task
        # A legitimate publish after the spoofed one arrives; the spoofed one never does.
        await outbox.put([Reading("bin-1", Metric.FILL_PCT, 20.0, T0)])
        uplink = Uplink(uplink_settings(broker, pki, "gw1"), outbox, gateway_id="gw1")
        task = asyncio.create_task(uplink.run())
        try:
            await wait_for(lambda: sum(len(e.readings) for e in got) == 21, "second delivery")
        finally:
            uplink.stop()
            await task
        assert all(r.device_id == "bin-1" for e in got for r in e.readings)


async def test_connection_without_client_certificate_is_refused(
    tls_broker: tuple[Mosquitto, Pki],
) -> None:
    broker, pki = tls_broker
    settings = UplinkSettings(
        host=broker.host,
        port=broker.port,
        tls=True,
        ca_file=str(pki.ca),
        connect_timeout_s=1,
        backoff=BackoffSettings(initial_s=0.05, max_s=0.1),
    )
    outbox = MemoryOutbox()
    await outbox.put([Reading("bin-1", Metric.FILL_PCT, 1.0, T0)])
    uplink = Uplink(settings, outbox, gateway_id="gw1")
    task = asyncio.create_task(uplink.run())
    try:
        await wait_for(lambda: uplink.counters.connect_failures >= 3, "refusals")
    finally:
        uplink.stop()
        await task
    assert uplink.counters.records_sent == 0
    assert (await outbox.stats()).depth == 1
    assert UplinkTopics.for_gateway("gw1").up == "steward/v1/gw1/up"
