r"""The channels a delivery goes out through, behind one interface: `Channel.send(message)`.

- `WebhookChannel` (kind `webhook`): POSTs the delivery's JSON document to `target`. With a
  secret it signs it: `X-Steward-Timestamp: <unix seconds>` and
  `X-Steward-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. A receiver
  recomputes the HMAC over the timestamp header, a dot and the raw body bytes, compares it in
  constant time, and refuses a timestamp more than a few minutes from its clock (a replayed
  request keeps its old timestamp, and changing the timestamp breaks the signature).
  `X-Steward-Delivery` carries the delivery id: the same id twice is the same notification
  (a retry after a lost answer), so receivers can drop repeats.
- `RobotChannel` (kind `robot`): a WeCom/DingTalk-style group robot: a markdown message to the
  robot's webhook URL. Style `dingtalk` (default) sends `{"msgtype": "markdown", "markdown":
  {"title", "text"}}` and, with a secret, adds DingTalk's `timestamp` (ms) and `sign` (base64
  HMAC-SHA256 of `"<timestamp>\n<secret>"` keyed with the secret) query parameters; style
  `wecom` sends `{"msgtype": "markdown", "markdown": {"content"}}`. An answer with a non-zero
  `errcode` is a failure.
- `EmailChannel` (kind `email`): a plain-text mail to `target` (addresses separated by commas)
  over SMTP (stdlib `smtplib` in a thread), STARTTLS optional; the server comes from the
  channel's options or the settings (`SmtpSettings`), the password from the channel's secret.

A failed send raises `DeliveryError` with a short reason, which the worker logs on the delivery.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import smtplib
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Final, Protocol

import httpx

KINDS: Final = ("webhook", "robot", "email")
ROBOT_STYLES: Final = ("dingtalk", "wecom")
SIGNATURE_HEADER: Final = "X-Steward-Signature"
TIMESTAMP_HEADER: Final = "X-Steward-Timestamp"
DELIVERY_HEADER: Final = "X-Steward-Delivery"
_ERROR_MAX: Final = 500
_PORT_END: Final = 65_536


class DeliveryError(Exception):
    """A send that did not go through; the message says why (kept on the delivery)."""


@dataclass(frozen=True, slots=True)
class Message:
    """What a channel sends: the delivery id and its JSON document (see `outbox.payload_of`)."""

    delivery_id: int
    payload: Mapping[str, object]

    @property
    def title(self) -> str:
        """The notification's title."""
        return str(self.payload.get("title", ""))

    @property
    def body(self) -> str:
        """The notification's text."""
        return str(self.payload.get("body", ""))

    def headline(self) -> str:
        """`[severity] title` for subjects and robot titles."""
        return f"[{self.payload.get('severity', '')}] {self.title}"

    def markdown(self) -> str:
        """The notification as markdown (robots)."""
        lines = [f"### {self.headline()}", "", self.body, ""]
        location = self.payload.get("location")
        if location:
            lines.append(f"- location: {location}")
        lines.append(f"- topic: {self.payload.get('topic', '')}")
        created = self.payload.get("created_at")
        if created:
            lines.append(f"- time: {created}")
        return "\n".join(lines)

    def text(self) -> str:
        """The notification as plain text (e-mail)."""
        lines = [self.body, ""]
        for key in ("topic", "severity", "location", "created_at"):
            value = self.payload.get(key)
            if value:
                lines.append(f"{key}: {value}")
        return "\n".join(lines) + "\n"


class Channel(Protocol):
    """Sends one message; raises `DeliveryError` when it did not go through."""

    async def send(self, message: Message) -> None:
        """Send `message` (the whole attempt, time-limited by the channel)."""
        ...


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_MAX else text[: _ERROR_MAX - 1] + "…"


def body_bytes(payload: Mapping[str, object]) -> bytes:
    """The exact JSON bytes a webhook sends (and signs)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Steward-Signature` value: `sha256=` and the hex HMAC of `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    r"""DingTalk's `sign`: base64 HMAC-SHA256(secret, "<timestamp>\n<secret>"), not URL-quoted."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


async def _post(client: httpx.AsyncClient, url: str, **kwargs: object) -> httpx.Response:
    try:
        response = await client.post(url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as err:
        raise DeliveryError(_short(f"{type(err).__name__}: {err}")) from err
    if not response.is_success:
        raise DeliveryError(_short(f"HTTP {response.status_code}: {response.text}"))
    return response


@dataclass(slots=True)
class WebhookChannel:
    """A JSON POST, signed with HMAC-SHA256 when the channel has a secret."""

    client: httpx.AsyncClient
    url: str
    secret: str | None = None

    async def send(self, message: Message) -> None:
        """POST the document; any 2xx answer is a success."""
        body = body_bytes(message.payload)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            DELIVERY_HEADER: str(message.delivery_id),
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = webhook_signature(self.secret, timestamp, body)
        await _post(self.client, self.url, content=body, headers=headers)


@dataclass(slots=True)
class RobotChannel:
    """A group robot's webhook (DingTalk or WeCom style) receiving a markdown message."""

    client: httpx.AsyncClient
    url: str
    secret: str | None = None
    style: str = "dingtalk"

    async def send(self, message: Message) -> None:
        """POST the markdown message; a non-zero `errcode` in the answer is a failure."""
        url = self.url
        if self.style == "wecom":
            document: dict[str, object] = {
                "msgtype": "markdown",
                "markdown": {"content": message.markdown()},
            }
        else:
            document = {
                "msgtype": "markdown",
                "markdown": {"title": message.headline(), "text": message.markdown()},
            }
            if self.secret:
                timestamp = str(int(time.time() * 1000))
                query = urllib.parse.urlencode(
                    {"timestamp": timestamp, "sign": dingtalk_sign(self.secret, timestamp)}
                )
                url += ("&" if "?" in url else "?") + query
        response = await _post(self.client, url, json=document)
        try:
            answer = response.json()
        except ValueError:
            return
        if isinstance(answer, dict) and answer.get("errcode", 0) not in (0, "0"):
            raise DeliveryError(
                _short(f"robot errcode {answer.get('errcode')}: {answer.get('errmsg', '')}")
            )


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """The SMTP server e-mail channels use unless their options name another."""

    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "steward@localhost"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout_s: float = 10.0


@dataclass(slots=True)
class EmailChannel:
    """A plain-text mail over SMTP (blocking `smtplib`, run in a thread)."""

    recipients: tuple[str, ...]
    smtp: SmtpSettings

    async def send(self, message: Message) -> None:
        """Hand the mail to the SMTP server; a refusal or a network error is a failure."""
        mail = EmailMessage()
        mail["Subject"] = message.headline()
        mail["From"] = self.smtp.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(idstring=f"steward-{message.delivery_id}")
        mail["X-Steward-Delivery"] = str(message.delivery_id)
        mail.set_content(message.text())
        try:
            await asyncio.to_thread(self._send_blocking, mail)
        except (OSError, smtplib.SMTPException) as err:
            raise DeliveryError(_short(f"{type(err).__name__}: {err}")) from err

    def _send_blocking(self, mail: EmailMessage) -> None:
        s = self.smtp
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
            if s.starttls:
                smtp.starttls()
            if s.username:
                smtp.login(s.username, s.password or "")
            refused = smtp.send_message(mail, from_addr=s.sender, to_addrs=list(self.recipients))
        if refused:
            raise DeliveryError(_short(f"refused recipients: {', '.join(sorted(refused))}"))


def recipients_of(target: str) -> tuple[str, ...]:
    """The addresses of an e-mail channel's `target` (separated by commas or semicolons)."""
    parts = target.replace(";", ",").split(",")
    return tuple(p.strip() for p in parts if p.strip())


def check_channel(kind: str, target: str, options: Mapping[str, object]) -> None:
    """`ValueError` with the reason when a channel's configuration cannot work."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    if kind in ("webhook", "robot"):
        parsed = urllib.parse.urlsplit(target)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("the target of a webhook or robot is an http(s) URL")
    else:
        addresses = recipients_of(target)
        if not addresses or any("@" not in a or " " in a for a in addresses):
            raise ValueError("the target of an e-mail channel is one or more addresses")
    style = options.get("style", "dingtalk")
    if kind == "robot" and style not in ROBOT_STYLES:
        raise ValueError(f"robot style is one of {', '.join(ROBOT_STYLES)}")
    port = options.get("smtp_port")
    if port is not None and (not isinstance(port, int) or not 0 < port < _PORT_END):
        raise ValueError("smtp_port is a port number")
    starttls = options.get("starttls")
    if starttls is not None and not isinstance(starttls, bool):
        raise ValueError("starttls is true or false")


def _option(options: Mapping[str, object], key: str, default: object) -> object:
    value = options.get(key)
    return default if value is None else value


class ChannelFactory:
    """Builds the channel of a `notification_channels` row; shares one HTTP client."""

    def __init__(self, client: httpx.AsyncClient, smtp: SmtpSettings | None = None) -> None:
        """Send HTTP with `client`; mail through `smtp` unless a channel's options say otherwise."""
        self.client = client
        self.smtp = smtp or SmtpSettings()

    def channel(
        self, kind: str, target: str, secret: str | None, options: Mapping[str, object]
    ) -> Channel:
        """The channel for a row; `ValueError` if its configuration cannot work."""
        check_channel(kind, target, options)
        if kind == "webhook":
            return WebhookChannel(self.client, target, secret)
        if kind == "robot":
            return RobotChannel(self.client, target, secret, str(options.get("style", "dingtalk")))
        base = self.smtp
        smtp = SmtpSettings(
            host=str(_option(options, "smtp_host", base.host)),
            port=int(str(_option(options, "smtp_port", base.port))),
            sender=str(_option(options, "sender", base.sender)),
            username=(
                str(options["smtp_username"]) if options.get("smtp_username") else base.username
            ),
            password=secret or base.password,
            starttls=bool(_option(options, "starttls", base.starttls)),
            timeout_s=base.timeout_s,
        )
        return EmailChannel(recipients_of(target), smtp)
