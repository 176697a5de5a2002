"""What every LoRaWAN codec shares: fPort checks and radio-quality readings from frame metadata.

LoRaWAN frames come from the ChirpStack source: either built by
`firmware_adapters.chirpstack.frame_from_up_event` (payload = the device bytes; `fport`, `rssi`, `snr`
in `RawFrame.meta`) or holding the whole `up` event JSON with `meta["topic"]` (`chirpstack_aware`). A codec checks the port when it is known
(a frame without `fport`, e.g. from `edge-agent decode` without `--fport`, is taken as the uplink
port) and appends `rssi_dbm` / `snr_db` readings when the metadata carries them.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Final

from core.metrics import Metric, quality_of
from core.types import DecodeResult, RawFrame, Reading
from firmware_adapters.chirpstack import frame_from_up_event, parse_up_event
from firmware_adapters.codec import Decoder
from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.fields import Decoded, FieldError

UP_EVENT_SUFFIX = "/event/up"
RADIO_METRICS: Final[frozenset[Metric]] = frozenset({Metric.RSSI_DBM, Metric.SNR_DB})
"""What `radio_readings` (so `finish`) adds: part of every LoRaWAN codec's declared `metrics`."""


def fport_of(frame: RawFrame, codec_id: str, allowed: Collection[int]) -> int | None:
    """Return the frame's fPort (None when unknown), raising `unknown_port` if it is not allowed."""
    text = frame.meta.get("fport")
    if text is None or text == "":
        return None
    try:
        port = int(text)
    except ValueError:
        raise DecodeError(
            codec_id, DecodeReason.MALFORMED, f"fport {text!r} is not a number", frame.payload
        ) from None
    if port not in allowed:
        raise DecodeError(
            codec_id,
            DecodeReason.UNKNOWN_PORT,
            f"fport {port} not in {sorted(allowed)}",
            frame.payload,
        )
    return port


def radio_readings(frame: RawFrame, codec_id: str) -> list[Reading]:
    """Readings of `rssi_dbm` and `snr_db` from the frame's metadata, where present and numeric."""
    out: list[Reading] = []
    for key, metric in (("rssi", Metric.RSSI_DBM), ("snr", Metric.SNR_DB)):
        text = frame.meta.get(key)
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isfinite(value):
            out.append(
                Reading(
                    frame.device_id,
                    metric,
                    value,
                    frame.received_at,
                    quality_of(metric, value),
                    codec_id,
                )
            )
    return out


def finish(frame: RawFrame, codec_id: str, decoded: Decoded) -> DecodeResult:
    """Build the codec's result: the decoded values plus radio quality."""
    return decoded.result(frame, codec_id, radio_readings(frame, codec_id))


def field_error(codec_id: str, err: FieldError, frame: RawFrame) -> DecodeError:
    """Turn a field's complaint into the codec's `DecodeError`."""
    return DecodeError(codec_id, err.reason, err.detail, frame.payload)


def require_length(frame: RawFrame, codec_id: str, sizes: Collection[int]) -> None:
    """Raise `truncated` (too short) or `length` (other sizes) unless the payload has one of `sizes`."""
    n = len(frame.payload)
    if n in sizes:
        return
    reason = DecodeReason.TRUNCATED if n < min(sizes) else DecodeReason.LENGTH
    raise DecodeError(
        codec_id,
        reason,
        f"{n} bytes; expected {' or '.join(map(str, sorted(sizes)))}",
        frame.payload,
    )


def unwrap_up_event(frame: RawFrame, codec_id: str) -> RawFrame:
    """The device payload inside a frame that carries a whole ChirpStack `up` event.

    The frame keeps its device id, source and receive time; the event adds `fport`, `rssi`, `snr`...
    """
    try:
        event = parse_up_event(frame.payload)
    except DecodeError as err:
        raise DecodeError(codec_id, err.reason, err.detail, frame.payload) from None
    inner = frame_from_up_event(
        event, frame.codec_id, frame.received_at, frame.device_id, frame.source_id
    )
    return RawFrame(
        inner.source_id,
        inner.codec_id,
        inner.payload,
        inner.received_at,
        {**frame.meta, **inner.meta},
    )


def chirpstack_aware(codec_id: str, decode: Decoder) -> Decoder:
    """Let a LoRaWAN decoder also take frames holding a whole ChirpStack `up` event.

    A source that passes the event through untouched marks the frame with its MQTT topic
    (`meta["topic"]` ending in `/event/up`) and has no `fport` yet; such a frame is unwrapped with
    `unwrap_up_event` first. Frames built by `frame_from_up_event` (payload = the device bytes, `fport`
    set) pass straight through, whatever topic they carry.
    """

    def run(frame: RawFrame) -> DecodeResult:
        if "fport" not in frame.meta and frame.meta.get("topic", "").endswith(UP_EVENT_SUFFIX):
            frame = unwrap_up_event(frame, codec_id)
        return decode(frame)

    run.__doc__ = decode.__doc__
    return run
