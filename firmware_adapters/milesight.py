"""Milesight EM/WS-series payloads: `channel_id, channel_type, data` records, little-endian, fPort 85.

Each codec declares a table `{(channel, type): Field}`; this module walks the payload once, applies
the table plus the attribute channels every device shares (`FF 01` IPSO version, `FF 09` hardware,
`FF 0A` firmware, `FF FF` TSL version, `FF 16` or `FF 08` serial number, `FF 0F` LoRaWAN class, `FF FE`
reset event, `FF 0B` device status), and encodes the same table back for the simulators.

Differences from Milesight's own decoders (SensorDecoders `e79c9d8`), on purpose:
- an unknown channel is an `unknown_type` error; the vendor decoders silently stop there and return
  what they had, which hides corrupted or unsupported frames;
- an enum byte outside the documented map is reported like the vendor decoders do (`unknown`), with
  an `undefined_value` issue and without its flag, and the rest of the frame still decodes
  (`fields.Choice`): a PIR trigger is not lost because the daylight byte is new;
- `FF FE` / `FF 0B` carry a byte the vendor decoders ignore; we report `reset_event` / `device_status`
  the same way and ignore the byte too.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.types import DecodeResult, RawFrame
from firmware_adapters.codec import Codec, DeviceClass, Encoder, vectors_beside
from firmware_adapters.errors import DecodeError, DecodeReason, EncodeError
from firmware_adapters.fields import (
    Choice,
    Decoded,
    Field,
    FieldError,
    Key,
    Skip,
    Text,
    hex_text,
    table_metrics,
)
from firmware_adapters.lorawan import (
    RADIO_METRICS,
    chirpstack_aware,
    field_error,
    finish,
    fport_of,
)

FPORT = 85
Table = Mapping[tuple[int, int], Field]


def _ipso(raw: bytes) -> str:
    return f"v{raw[0] >> 4}.{raw[0] & 0x0F}"


def _hardware(raw: bytes) -> str:
    return f"v{raw[0]:x}.{raw[1] >> 4}"


def _firmware(raw: bytes) -> str:
    return f"v{raw[0]:x}.{raw[1]:x}"


def _tsl(raw: bytes) -> str:
    return f"v{raw[0]}.{raw[1]}"


_LORAWAN_CLASS = {0: "Class A", 1: "Class B", 2: "Class C", 3: "Class CtoB"}


def _lorawan_class(raw: bytes) -> str:
    return _LORAWAN_CLASS.get(raw[0], "unknown")


def attribute_channels(sn_type: int = 0x16, sn_size: int = 8) -> dict[tuple[int, int], Field]:
    """The `FF xx` attribute channels; WS-series devices use `FF 08` with a 6-byte serial number."""
    return {
        (0xFF, 0x01): Text("ipso_version", 1, _ipso),
        (0xFF, 0x09): Text("hardware_version", 2, _hardware),
        (0xFF, 0x0A): Text("firmware_version", 2, _firmware),
        (0xFF, 0xFF): Text("tsl_version", 2, _tsl),
        (0xFF, sn_type): hex_text("sn", sn_size),
        (0xFF, 0x0F): Text("lorawan_class", 1, _lorawan_class),
        (0xFF, 0xFE): Text("reset_event", 1, lambda _raw: "reset"),
        (0xFF, 0x0B): Text("device_status", 1, lambda _raw: "on"),
    }


EM_ATTRIBUTES = attribute_channels()
WS_ATTRIBUTES = attribute_channels(0x08, 6)

POSITION = Choice("position", {0: "normal", 1: "tilt"})
"""`position` of EM-series ultrasonic sensors; tilt means the device is no longer mounted straight."""

THRESHOLD_ALARM = {0: "threshold_alarm_release", 1: "threshold_alarm"}


def decode_tlv(frame: RawFrame, codec_id: str, table: Table) -> DecodeResult:
    """Decode a Milesight channel/type payload with a codec's table."""
    return finish(frame, codec_id, walk(frame, codec_id, table))


def walk(frame: RawFrame, codec_id: str, table: Table) -> Decoded:
    """Walk the records of a payload into a `Decoded` (no readings built yet)."""
    fport_of(frame, codec_id, (FPORT,))
    buf = frame.payload
    if not buf:
        raise DecodeError(codec_id, DecodeReason.TRUNCATED, "empty payload", buf)
    out = Decoded()
    at = 0
    n = len(buf)
    while at < n:
        if at + 2 > n:
            raise DecodeError(
                codec_id, DecodeReason.TRUNCATED, f"half a channel header at {at}", buf
            )
        channel = (buf[at], buf[at + 1])
        spec = table.get(channel)
        if spec is None:
            raise DecodeError(
                codec_id,
                DecodeReason.UNKNOWN_TYPE,
                f"unknown channel {channel[0]:02x} {channel[1]:02x} at byte {at}",
                buf,
            )
        at += 2
        if at + spec.size > n:
            raise DecodeError(
                codec_id,
                DecodeReason.TRUNCATED,
                f"channel {channel[0]:02x} {channel[1]:02x} needs {spec.size} bytes, {n - at} left",
                buf,
            )
        try:
            spec.read(buf, at, out)
        except FieldError as err:
            raise field_error(codec_id, err, frame) from None
        at += spec.size
    return out


def encode_tlv(values: Mapping[str, object], table: Table) -> bytes:
    """Encode every channel of `table` whose keys are all given, widest channels first.

    A key is written once: when a narrow channel (`03 67` temperature) and a wide one (`83 67`
    temperature + alarm) could both carry it, the wide one wins if all its keys are given.
    """
    written: set[Key] = set()
    chunks: list[tuple[int, bytes]] = []
    ranked = sorted(
        ((order, channel, spec) for order, (channel, spec) in enumerate(table.items())),
        key=lambda item: -len(item[2].keys),
    )
    for order, channel, spec in ranked:
        if isinstance(spec, Skip) or not spec.keys:
            continue
        names = {k.value if not isinstance(k, str) else k for k in spec.keys}
        if any(k in written for k in spec.keys) or not _covers(values, names, spec):
            continue
        chunks.append((order, bytes(channel) + spec.write(values)))
        written.update(spec.keys)
    if not chunks:
        raise EncodeError(f"no channel can carry any of {sorted(values)}")
    return b"".join(chunk for _order, chunk in sorted(chunks))


def _covers(values: Mapping[str, object], names: set[str], spec: Field) -> bool:
    if isinstance(spec, Choice):  # a choice is written from its state name or from its flag
        return spec.attribute in values or (spec.flag is not None and spec.flag.value in values)
    return names <= values.keys()


def tlv_codec(
    codec_id: str,
    device_class: DeviceClass,
    description: str,
    table: Table,
    module_file: str,
    *,
    encode: Encoder | None = None,
) -> Codec:
    """The `Codec` of a Milesight model whose payload is fully described by its channel table.

    `encode` replaces the table encoder where a model needs more (history records, derived fields).
    The declared `metrics` are those of the table's fields plus the radio metrics.
    """

    def decode(frame: RawFrame) -> DecodeResult:
        return decode_tlv(frame, codec_id, table)

    def encode_table(values: Mapping[str, object]) -> bytes:
        return encode_tlv(values, table)

    return Codec(
        codec_id,
        device_class,
        description,
        chirpstack_aware(codec_id, decode),
        encode or encode_table,
        vectors_beside(module_file),
        metrics=table_metrics(table.values()) | RADIO_METRICS,
    )
