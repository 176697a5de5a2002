"""SIA DC-09 alarm-panel messages over IP (unencrypted only), with the receiver's ACK/NAK/DUH replies.

Payload: one message `LF CRC 0LLL "ID"seq[Rrcvr]Lline[#acct][data][_HH:MM:SS,MM-DD-YYYY] CR` (LF
and CR optional); length and CRC-16/ARC are checked. IDs: `ADM-CID` (Contact ID `QXYZ GG CCC`
inside the brackets, mapped as in `serial.ademco.contact_id`), `SIA-DCS` (SIA event codes, see
`firmware_adapters.sia_codes`), `NULL` (link test: no readings). Encrypted messages (`"*ID"`)
raise `unsupported`: AES keys are not handled. The message timestamp (UTC) is the reading time when
present. Attributes: `id`, `sequence`, `receiver`, `line`, `account` and the event's fields.

Encoder keys: `id` (`ADM-CID`), `sequence` (int), `receiver`, `line` (`0`), `account`, `at` (aware
datetime for the timestamp); ADM-CID: the `serial.ademco.contact_id` event keys; SIA-DCS:
`sia_code` (`FA`), `zone`, `area`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from core.metrics import quality_of
from core.types import DecodeResult, RawFrame, Reading, Scalar
from firmware_adapters.codec import Codec, DeviceClass, vectors_beside
from firmware_adapters.codecs.serial.ademco_contact_id import field, qualifier_of
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError
from firmware_adapters.framing.sia_dc09 import Message, SiaDc09Framer, build_message, parse_message
from firmware_adapters.panel_events import (
    CONTACT_ID_METRICS,
    PanelEvent,
    event_attributes,
    event_readings,
)
from firmware_adapters.sia_codes import SIA_CODES, SIA_METRICS, USER_CODES, parse_sia_data

CODEC_ID = "ip.sia.dc09"
_TIME_FORMAT = "%H:%M:%S,%m-%d-%Y"


def _timestamp(message: Message, frame: RawFrame) -> datetime:
    if not message.timestamp:
        return frame.received_at
    try:
        return datetime.strptime(message.timestamp, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as err:
        raise DecodeError(
            CODEC_ID, DecodeReason.MALFORMED, f"timestamp {message.timestamp!r}", frame.payload
        ) from err


def _content(data: str) -> str:
    return data.split("|", 1)[1] if data.startswith("#") and "|" in data else data


def _adm_cid(
    message: Message, frame: RawFrame, ts: datetime
) -> tuple[list[Reading], dict[str, Scalar]]:
    digits = "".join(_content(message.data).split())
    if len(digits) != 9 or digits[0] not in "136":  # noqa: PLR2004 - QXYZ GG CCC
        raise DecodeError(
            CODEC_ID, DecodeReason.MALFORMED, f"ADM-CID data {message.data!r}", frame.payload
        )
    event = PanelEvent(message.account, digits[0], digits[1:4], digits[4:6], digits[6:9])
    return event_readings(CODEC_ID, frame.device_id, event, ts), event_attributes(event)


def _sia_dcs(
    message: Message, frame: RawFrame, ts: datetime
) -> tuple[list[Reading], dict[str, Scalar]]:
    events = parse_sia_data(_content(message.data))
    if events is None:
        raise DecodeError(
            CODEC_ID, DecodeReason.MALFORMED, f"SIA-DCS data {message.data!r}", frame.payload
        )
    readings: list[Reading] = []
    for event in events:
        _, metric, value = SIA_CODES.get(event.code, ("", None, True))
        kind = "user" if event.code in USER_CODES else "zone"
        device = f"{frame.device_id}/{kind}-{event.number}" if event.number else frame.device_id
        if metric is not None:
            readings.append(Reading(device, metric, value, ts, quality_of(metric, value), CODEC_ID))
    first = events[0]
    attributes: dict[str, Scalar] = {"event_code": first.code, "event": first.name}
    attributes |= {f"sia_{k}": v for k, v in first.modifiers.items()}
    if first.code in USER_CODES:
        attributes |= {"user": first.number, "armed": SIA_CODES[first.code][2]}
    elif first.number:
        attributes["zone"] = first.number
    return readings, attributes


def decode(frame: RawFrame) -> DecodeResult:
    """Decode one DC-09 message."""
    message = parse_message(CODEC_ID, frame.payload)
    ts = _timestamp(message, frame)
    attributes: dict[str, Scalar] = {
        "id": message.id,
        "sequence": message.sequence,
        "receiver": message.receiver,
        "line": message.line,
        "account": message.account,
    }
    if message.id == "NULL":
        return DecodeResult((), (), attributes)
    handlers = {"ADM-CID": _adm_cid, "SIA-DCS": _sia_dcs}
    handler = handlers.get(message.id)
    if handler is None:
        raise DecodeError(
            CODEC_ID, DecodeReason.UNKNOWN_TYPE, f"message id {message.id!r}", frame.payload
        )
    readings, event = handler(message, frame, ts)
    return DecodeResult(tuple(readings), (), attributes | event)


_NO_MESSAGE = Message("", "0000", "0", "0", "", "", "", "")


def _reply(kind: str, m: Message, now: datetime | None) -> bytes:
    body = f'"{kind}"{m.sequence}' + (f"R{m.receiver}" if m.receiver else "") + f"L{m.line}"
    body += (f"#{m.account}" if m.account else "") + "[]"
    if now is not None:
        body += "_" + now.astimezone(UTC).strftime(_TIME_FORMAT)
    return build_message(body)


def ack_reply(payload: bytes, now: datetime | None = None) -> bytes:
    """The ACK for a good message: its sequence, receiver, line and account echoed, `[]` data.

    Raises:
        DecodeError: `payload` is not a checked DC-09 message.
    """
    return _reply("ACK", parse_message(CODEC_ID, payload), now)


def nak_reply(now: datetime) -> bytes:
    """The NAK a receiver sends for a message it rejects (bad CRC, length or time); carries `now`.

    The body is `"NAK"0000R0L0A0[]_<now>`, the form panels and pysiaalarm use.
    """
    return _reply("NAK", Message("", "0000", "0", "0A0", "", "", "", ""), now)


def duh_reply(payload: bytes) -> bytes:
    """The DUH for a message the receiver cannot use; echoes what of it can be read, never raises."""
    try:
        message = parse_message(CODEC_ID, payload, allow_encrypted=True)
    except Exception:  # noqa: BLE001 - a reply is owed whatever the bytes are
        message = _NO_MESSAGE
    return _reply("DUH", message, None)


def reply_for(payload: bytes, now: datetime) -> bytes:
    """The reply a receiver owes: ACK when decodable, NAK on CRC/length errors, DUH otherwise."""
    try:
        CODEC.decode(RawFrame("dc09", CODEC_ID, payload, now))
    except DecodeError as err:
        if err.reason in {DecodeReason.CHECKSUM, DecodeReason.LENGTH}:
            return nak_reply(now)
        return duh_reply(payload)
    return ack_reply(payload, now)


def _text(values: Mapping[str, object], key: str, default: str, pattern: str) -> str:
    value = values.get(key, default)
    text = f"{value:03d}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
    if re.fullmatch(pattern, text) is None:
        raise EncodeError(f"{key}={value!r} does not match {pattern}")
    return text


def _data(kind: str, account: str, values: Mapping[str, object]) -> str:
    if kind == "ADM-CID":
        code = field(values, "event_code", 3, "110")
        partition, zone = field(values, "partition", 2, "00"), field(values, "zone", 3, "000")
        return f"#{account}|{qualifier_of(values, code)}{code} {partition} {zone}"
    if kind == "SIA-DCS":
        code = _text(values, "sia_code", "FA", "[A-Z]{2}")
        area = _text(values, "area", "1", "[0-9]{1,3}")
        zone = _text(values, "zone", "", "[0-9]{0,4}")
        return f"#{account}|Nri{area}/{code}{zone}"
    if kind == "NULL":
        return ""
    raise EncodeError(f"message id {kind!r} cannot be encoded")


def encode(values: Mapping[str, object]) -> bytes:
    """Build a DC-09 message from the keys in the module docstring."""
    kind = str(values.get("id", "ADM-CID"))
    account = _text(values, "account", "" if kind == "NULL" else "1234", "([0-9A-F]{3,16})?")
    data = _data(kind, account, values)
    sequence = values.get("sequence", 1)
    if not isinstance(sequence, int) or not 0 <= sequence <= 9999:  # noqa: PLR2004
        raise EncodeError(f"sequence {sequence!r} is not 0-9999")
    receiver = _text(values, "receiver", "", "[0-9A-F]{0,6}")
    line = _text(values, "line", "0", "[0-9A-F]{1,6}")
    body = f'"{kind}"{sequence:04d}' + (f"R{receiver}" if receiver else "") + f"L{line}"
    body += (f"#{account}" if account else "") + f"[{data}]"
    at = values.get("at")
    if isinstance(at, datetime):
        body += "_" + at.astimezone(UTC).strftime(_TIME_FORMAT)
    return build_message(body)


CODEC = Codec(
    id=CODEC_ID,
    device_class=DeviceClass.ALARM_PANEL,
    description="SIA DC-09 alarm-panel messages over IP (ADM-CID, SIA-DCS, NULL; unencrypted)",
    decode=decode,
    encode=encode,
    vectors=vectors_beside(__file__),
    metrics=CONTACT_ID_METRICS | SIA_METRICS,  # ADM-CID and SIA-DCS events
    framer=SiaDc09Framer,
)
