"""What every LoRaWAN codec shares: fPort checks and radio-quality readings from frame metadata.

LoRaWAN frames come from the ChirpStack source (`firmware_adapters.chirpstack.frame_from_up_event`),
which puts `fport`, `rssi` and `snr` into `RawFrame.meta`. A codec checks the port when it is known
(a frame without `fport`, e.g. from `edge-agent decode` without `--fport`, is taken as the uplink
port) and appends `rssi_dbm` / `snr_db` readings when the metadata carries them.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from core.metrics import Metric, quality_of
from core.types import DecodeResult, RawFrame, Reading
from firmware_adapters.errors import DecodeError, DecodeReason
from firmware_adapters.fields import Decoded, FieldError


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
