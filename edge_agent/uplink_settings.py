"""The `uplink:` section of the gateway config: the cloud broker, TLS files, batching, timeouts.

One model, `UplinkSettings`: the config file's `uplink:` mapping is validated into it (the keys are
its field names) and the uplink runs with it. Validation of the model itself does no I/O; the TLS
files it names are checked by `tls_problems` (the config loader calls it, so `edge-agent check`
refuses a missing or unreadable file, or one that is not PEM, with the line of its key), and read
again by `ssl_context` when the uplink connects, whose error names the file.
"""

from __future__ import annotations

import os
import random
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
)

from core.durations import seconds_if_duration
from core.types import ENVELOPE_LIMITS

MAX_BATCH_ITEMS: Final = min(ENVELOPE_LIMITS.max_readings, ENVELOPE_LIMITS.max_alarm_events)
"""Records of one batch: an envelope may carry this many readings, or alarm events, or a mix."""
MAX_BATCH_BYTES: Final = ENVELOPE_LIMITS.max_bytes // 2
"""Record bytes of one batch. The outbox fills a batch up to this (or takes one larger record
alone), so an envelope holds at most this, or one record, plus its header and a comma per record.
Records are written within the envelope's string limits, which keep the largest (an alarm event
with every string and evidence entry full) near 200 KB; half the envelope limit leaves room for
it, so a gateway never builds an envelope over `ENVELOPE_LIMITS.max_bytes`."""
MAX_PEM_BYTES: Final = 4 * 1024 * 1024
"""A TLS file larger than this is refused before OpenSSL reads it (a CA bundle is about 200 KB)."""

Number = Annotated[float, Strict(), AllowInfNan(allow_inf_nan=False)]
"""A finite number written as one: not `true`, not a quoted string, not `.inf` or `.nan`."""
Seconds = Annotated[Number, BeforeValidator(seconds_if_duration)]
"""Seconds, written as a number or a duration (`200ms`, `30s`, `1m`)."""

FileKey = Literal["ca_file", "cert_file", "key_file"]
TlsKey = Literal["tls", FileKey, "password_file"]
_FILE_KEYS: Final[tuple[FileKey, ...]] = ("ca_file", "cert_file", "key_file")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class BackoffSettings(_Model):
    """Jittered exponential backoff between reconnect attempts."""

    initial_s: Seconds = Field(default=0.5, gt=0, le=60)
    """Delay before the first reconnect attempt."""
    max_s: Seconds = Field(default=60.0, gt=0, le=3600)
    """The longest delay between two attempts."""
    factor: Number = Field(default=2.0, ge=1, le=10)
    """Each delay is this many times the one before, up to `max_s`."""
    jitter: Number = Field(default=0.5, ge=0, le=1)
    """Fraction of the delay that is random: delay * (1 - jitter * U[0, 1))."""

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before reconnect attempt number `attempt` (0 for the first retry)."""
        base = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        return base * (1 - self.jitter * rng.random())


@dataclass(frozen=True, slots=True)
class TlsProblem:
    """What is wrong with one TLS setting: its key in the `uplink:` section and why."""

    key: TlsKey
    message: str

    def __str__(self) -> str:
        return f"uplink.{self.key}: {self.message}"


class UplinkTlsError(OSError):
    """The uplink's TLS files cannot be used; each problem names its key and file.

    An `OSError`, so the uplink treats it like any failed connection: it logs it and retries with
    backoff (the file may be restored meanwhile).
    """

    def __init__(self, problems: list[TlsProblem]) -> None:
        """Keep every problem; the message lists them."""
        self.problems = tuple(problems)
        super().__init__("; ".join(str(problem) for problem in self.problems))


class _EncryptedKeyError(Exception):
    """OpenSSL asked for the password of an encrypted private key (a daemon cannot type one)."""


def _no_password() -> bytes:
    raise _EncryptedKeyError


MAX_PASSWORD_FILE_BYTES: Final = 4096
"""Bytes read of a password file (its first line is the password)."""


class UplinkSettings(_Model):
    """Where and how the gateway publishes its outbox: the `uplink:` section of the config file."""

    host: str = "127.0.0.1"
    """The cloud broker's address."""
    port: StrictInt = Field(default=8883, gt=0, lt=65_536)
    """The cloud broker's port (8883: MQTT over TLS)."""
    client_id: str = ""
    """Stable MQTT client id for the persistent session; empty means `steward-<gateway id>`."""
    keepalive_s: StrictInt = Field(default=30, ge=2, le=3600)
    """MQTT keepalive with the cloud broker."""
    tls: StrictBool = False
    """Connect over TLS, trusting `ca_file`; with `cert_file` and `key_file`, as that client."""
    ca_file: str | None = Field(default=None, min_length=1)
    """PEM file of the CA certificates to trust; relative to the config file's directory."""
    cert_file: str | None = Field(default=None, min_length=1)
    """PEM file of the gateway's client certificate (with `key_file`)."""
    key_file: str | None = Field(default=None, min_length=1)
    """PEM file of the client certificate's private key, unencrypted (a daemon cannot type a
    password: keep it readable only by the agent's user)."""
    username: str | None = Field(default=None, min_length=1, max_length=128)
    """MQTT user name; with `password_file` and no name, the gateway id (the user name that
    `cloud-ingest gateways add` registers)."""
    password_file: str | None = Field(default=None, min_length=1)
    """File whose first line is the MQTT password (`cloud-ingest gateways add` prints it once);
    relative to the config file's directory; keep it readable only by the agent's user."""
    batch_max: StrictInt = Field(default=500, ge=1, le=MAX_BATCH_ITEMS)
    """Records of one batch (one envelope)."""
    batch_max_bytes: StrictInt = Field(default=256 * 1024, ge=1024, le=MAX_BATCH_BYTES)
    """Record bytes of one batch; a single record larger than this still goes alone."""
    batch_wait_s: Seconds = Field(default=0.2, ge=0, le=60)
    """How long to wait for a full batch after the first record arrived (alarms never wait)."""
    publish_timeout_s: Seconds = Field(default=10.0, gt=0, le=600)
    """No PUBACK within this time means the broker is gone (e.g. frozen): reconnect."""
    connect_timeout_s: Seconds = Field(default=10.0, gt=0, le=600)
    """A connection attempt that takes longer is abandoned and retried."""
    backoff: BackoffSettings = BackoffSettings()
    """Delays between reconnect attempts to the cloud broker."""

    @classmethod
    def from_config(cls, config: UplinkSettings, base_dir: Path | None = None) -> UplinkSettings:
        """The settings the uplink runs with: `config.resolved(base_dir)`."""
        return config.resolved(base_dir)

    def resolved(self, base_dir: Path | None) -> UplinkSettings:
        """A copy whose relative TLS file names are taken from `base_dir` (none: unchanged)."""
        if base_dir is None:
            return self
        update: dict[str, object] = {
            key: str(path)
            for key in _FILE_KEYS
            if (path := self.tls_path(key, base_dir)) is not None
        }
        password = self.password_path(base_dir)
        if password is not None:
            update["password_file"] = str(password)
        return self.model_copy(update=update)

    def password_path(self, base_dir: Path | None = None) -> Path | None:
        """The password file, a relative name taken from `base_dir` when given."""
        if self.password_file is None:
            return None
        path = Path(self.password_file)
        return base_dir / path if base_dir is not None and not path.is_absolute() else path

    def credential_problems(self, base_dir: Path | None = None) -> list[TlsProblem]:
        """What is wrong with the password file: unreadable, or no password on its first line."""
        try:
            self.password(base_dir)
        except UplinkTlsError as err:
            return list(err.problems)
        return []

    def password(self, base_dir: Path | None = None) -> str | None:
        """The MQTT password: the first line of `password_file` (None without one).

        Raises:
            UplinkTlsError: naming the key and file when it cannot be read or holds no password.
        """
        path = self.password_path(base_dir)
        if path is None:
            return None
        problem = _unreadable(path)
        if problem is None:
            try:
                first = path.read_bytes()[:MAX_PASSWORD_FILE_BYTES].split(b"\n", 1)[0].strip()
                if not first:
                    problem = "holds no password on its first line"
                else:
                    return first.decode()
            except OSError as err:
                problem = f"cannot read: {err.strerror or err}"
            except UnicodeDecodeError:
                problem = "the password is not UTF-8 text"
        raise UplinkTlsError([TlsProblem("password_file", f"{path}: {problem}")])

    def tls_path(self, key: FileKey, base_dir: Path | None = None) -> Path | None:
        """The file named by `key`, a relative name taken from `base_dir` when given."""
        name: str | None = getattr(self, key)
        if name is None:
            return None
        path = Path(name)
        return base_dir / path if base_dir is not None and not path.is_absolute() else path

    def tls_problems(self, base_dir: Path | None = None, *, files: bool = True) -> list[TlsProblem]:
        """Every problem of the TLS settings; with `files`, also of the files they name.

        `tls: true` needs `ca_file`; `cert_file` and `key_file` come together; no file is named
        without `tls: true`. Each named file (relative names taken from `base_dir`) must be a
        readable regular file of PEM: CA certificates, the client certificate, and its private
        key, unencrypted and matching the certificate.
        """
        problems = self._setting_problems()
        if not self.tls or not files:
            return problems
        return problems + _client_context(self, base_dir)[0]

    def _setting_problems(self) -> list[TlsProblem]:
        problems: list[TlsProblem] = []
        if not self.tls:
            return [
                TlsProblem(key, "a TLS file, but tls is false: set tls: true, or remove it")
                for key in _FILE_KEYS
                if getattr(self, key) is not None
            ]
        if self.ca_file is None:
            problems.append(TlsProblem("tls", "true needs ca_file (the CA certificates to trust)"))
        if self.cert_file is not None and self.key_file is None:
            problems.append(TlsProblem("cert_file", "needs key_file (the certificate's key)"))
        if self.key_file is not None and self.cert_file is None:
            problems.append(TlsProblem("key_file", "needs cert_file (the key's certificate)"))
        return problems

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client SSL context (None without TLS), reading the files.

        Raises:
            UplinkTlsError: naming each key and file that cannot be used.
        """
        if not self.tls:
            return None
        problems = self._setting_problems()
        if problems:
            raise UplinkTlsError(problems)
        problems, ctx = _client_context(self, None)
        if problems or ctx is None:
            raise UplinkTlsError(problems)
        return ctx


def _client_context(
    settings: UplinkSettings, base_dir: Path | None
) -> tuple[list[TlsProblem], ssl.SSLContext | None]:
    """Build the client context from the named files: the problems, or the context."""
    problems: list[TlsProblem] = []
    paths: dict[FileKey, Path] = {
        key: path for key in _FILE_KEYS if (path := settings.tls_path(key, base_dir)) is not None
    }
    for key, path in paths.items():
        problem = _unreadable(path)
        if problem is not None:
            problems.append(TlsProblem(key, f"{path}: {problem}"))
    ca = paths.get("ca_file")
    if problems or ca is None:
        return problems, None
    ctx: ssl.SSLContext | None = None
    try:
        ctx = ssl.create_default_context(cafile=str(ca))
    except ssl.SSLError as err:
        problems.append(TlsProblem("ca_file", f"{ca}: not PEM CA certificates ({_reason(err)})"))
    except OSError as err:
        problems.append(TlsProblem("ca_file", f"{ca}: cannot read: {err.strerror or err}"))
    cert, private_key = paths.get("cert_file"), paths.get("key_file")
    if cert is not None and private_key is not None:
        _load_client(ctx, cert, private_key, problems)
    return problems, (None if problems else ctx)


def _unreadable(path: Path) -> str | None:  # noqa: PLR0911 - one answer per check
    """Why `path` cannot be read as a TLS file, or None."""
    if "\x00" in str(path):
        return "cannot read: a file name cannot hold a NUL character"
    try:
        info = path.stat()
    except OSError as err:
        return f"cannot read: {err.strerror or err}"
    if stat.S_ISDIR(info.st_mode):
        return "cannot read: is a directory, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "cannot read: not a regular file"
    if info.st_size > MAX_PEM_BYTES:
        return f"cannot read: larger than {MAX_PEM_BYTES // (1024 * 1024)} MiB"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        return f"cannot read: {err.strerror or err}"
    os.close(fd)
    return None


def _load_client(
    ctx: ssl.SSLContext | None, cert: Path, key: Path, problems: list[TlsProblem]
) -> None:
    """Load the client certificate and key into `ctx` (a throwaway one when None)."""
    try:  # the certificate alone first, so that a problem is put on the right key
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(cert))
    except ssl.SSLError as err:
        problems.append(TlsProblem("cert_file", f"{cert}: not a PEM certificate ({_reason(err)})"))
        return
    except OSError as err:
        problems.append(TlsProblem("cert_file", f"{cert}: cannot read: {err.strerror or err}"))
        return
    try:
        (ctx or ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)).load_cert_chain(
            str(cert), str(key), password=_no_password
        )
    except _EncryptedKeyError:
        problems.append(
            TlsProblem("key_file", f"{key}: the key is encrypted; the agent needs it unencrypted")
        )
    except ssl.SSLError as err:
        problems.append(
            TlsProblem(
                "key_file",
                f"{key}: not the PEM private key of cert_file {cert} ({_reason(err)})",
            )
        )
    except OSError as err:
        problems.append(TlsProblem("key_file", f"{key}: cannot read: {err.strerror or err}"))


def _reason(err: ssl.SSLError) -> str:
    reason = getattr(err, "reason", None)
    return str(reason).lower().replace("_", " ") if reason else "bad PEM data"
