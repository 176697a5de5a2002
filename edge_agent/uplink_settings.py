"""Settings of the MQTT uplink to the cloud broker (validated with pydantic, no I/O)."""

from __future__ import annotations

import random
import ssl
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.types import ENVELOPE_LIMITS
from edge_agent.config import UplinkConfig

MAX_BATCH_ITEMS = min(ENVELOPE_LIMITS.max_readings, ENVELOPE_LIMITS.max_alarm_events)
"""Records of one batch: an envelope may carry this many readings, or alarm events, or a mix."""
MAX_BATCH_BYTES = ENVELOPE_LIMITS.max_bytes // 2
"""Record bytes of one batch. The outbox fills a batch up to this (or takes one larger record
alone), so an envelope holds at most this, or one record, plus its header and a comma per record.
Records are written within the envelope's string limits, which keep the largest (an alarm event
with every string and evidence entry full) near 200 KB; half the envelope limit leaves room for
it, so a gateway never builds an envelope over `ENVELOPE_LIMITS.max_bytes`."""


class TlsSettings(BaseModel):
    """TLS towards the cloud broker: the CA to trust and the gateway's client certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca: Path
    cert: Path | None = None
    key: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls cert and key are given together or not at all")
        return self

    def context(self) -> ssl.SSLContext:
        """Build a client SSL context (reads the files; raises `OSError`/`ssl.SSLError`)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if self.cert is not None and self.key is not None:
            ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


class BackoffSettings(BaseModel):
    """Jittered exponential backoff between reconnect attempts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_s: float = Field(default=0.5, gt=0, le=60)
    max_s: float = Field(default=60.0, gt=0, le=3600)
    factor: float = Field(default=2.0, ge=1, le=10)
    jitter: float = Field(default=0.5, ge=0, le=1)
    """Fraction of the delay that is random: delay * (1 - jitter * U[0, 1))."""

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before reconnect attempt number `attempt` (0 for the first retry)."""
        base = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        return base * (1 - self.jitter * rng.random())


class UplinkSettings(BaseModel):
    """Where and how the gateway publishes its outbox."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8883, gt=0, lt=65_536)
    tls: TlsSettings | None = None
    keepalive_s: int = Field(default=30, ge=2, le=3600)
    client_id: str = ""
    """Stable MQTT client id for the persistent session; empty means `steward-<gateway id>`."""
    batch_max_items: int = Field(default=500, ge=1, le=MAX_BATCH_ITEMS)
    batch_max_bytes: int = Field(default=256 * 1024, ge=1024, le=MAX_BATCH_BYTES)
    """Record bytes of one batch; a single record larger than this still goes alone."""
    batch_max_wait_s: float = Field(default=0.2, ge=0, le=60)
    """How long to wait for a full batch after the first record arrived (alarms never wait)."""
    publish_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """No PUBACK within this time means the broker is gone (e.g. frozen): reconnect."""
    connect_timeout_s: float = Field(default=10.0, gt=0, le=600)
    backoff: BackoffSettings = BackoffSettings()

    @classmethod
    def from_config(cls, config: UplinkConfig, base_dir: Path | None = None) -> UplinkSettings:
        """Build settings from the `uplink:` section of the gateway config file.

        Relative certificate paths are resolved against `base_dir` when it is given.
        """

        def resolve(name: str | None) -> Path | None:
            if name is None:
                return None
            path = Path(name)
            return base_dir / path if base_dir is not None and not path.is_absolute() else path

        tls = None
        if config.tls:
            ca = resolve(config.ca_file)
            if ca is None:
                raise ValueError("uplink.tls needs ca_file")
            tls = TlsSettings(ca=ca, cert=resolve(config.cert_file), key=resolve(config.key_file))
        return cls(
            host=config.host,
            port=config.port,
            tls=tls,
            keepalive_s=config.keepalive_s,
            client_id=config.client_id,
            batch_max_items=config.batch_max,
            batch_max_wait_s=config.batch_wait_s,
        )
