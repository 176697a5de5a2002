"""Shared value types that cross package boundaries: frames, readings, alarm events, envelopes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final
from uuid import UUID

from core.metrics import Metric, Quality

SCHEMA_VERSION: Final = 1
"""Current version of the uplink envelope; every change is recorded in docs/envelope.md."""

Scalar = str | int | float | bool
"""A plain JSON value used in attributes, evidence and frame metadata."""


@dataclass(frozen=True, slots=True)
class EnvelopeLimits:
    """Size limits of one envelope, part of its format (docs/envelope.md, "Limits").

    A reader refuses an envelope over any of them and a writer refuses to write a record over
    them, so a gateway never sends what the cloud refuses. Lengths count characters of the decoded
    string. A gateway keeps each envelope under `max_bytes` by capping its batches (at most
    `max_bytes // 2` of records, whatever the largest record is: `edge_agent/uplink_settings.py`).
    """

    max_bytes: int = 2 * 1024 * 1024
    """UTF-8 bytes of one envelope, checked before parsing."""
    max_readings: int = 10_000
    max_alarm_events: int = 10_000
    max_depth: int = 32
    """Arrays and objects inside one another, the envelope object counting as 1."""
    max_integer_digits: int = 19
    """Integers are 64-bit signed: a literal of more digits is refused before it is converted."""
    gateway_id: int = 128
    device_id: int = 256
    codec_id: int = 256
    fingerprint: int = 1024
    rule_id: int = 256
    location: int = 1024
    description: int = 4096
    rule_version: int = 64
    category: int = 128
    """A work order's category."""
    suppressed_items: int = 16
    suppressed_chars: int = 64
    evidence_items: int = 64
    evidence_key_chars: int = 128
    evidence_text_chars: int = 256
    """A string value in evidence."""
    name_chars: int = 64
    """Anything else written as a string: times, the batch id, metric, state and other names."""


ENVELOPE_LIMITS: Final = EnvelopeLimits()
"""The limits of the current envelope version."""


@dataclass(frozen=True, slots=True)
class RawFrame:
    """Bytes as a source received them, before any decoding.

    `meta` carries what the transport knew (topic, fPort, device id, slave id, RSSI); sources stamp
    `received_at` and never decode.
    """

    source_id: str
    codec_id: str
    payload: bytes
    received_at: datetime
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def device_id(self) -> str:
        """The device the frame belongs to, as the source bound it (falls back to the source id)."""
        return self.meta.get("device_id", self.source_id)


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement of one canonical metric of one device at one time.

    The unit is implied by the metric; conversion happens in the codec.
    """

    device_id: str
    metric: Metric
    value: float | bool
    ts: datetime
    quality: Quality = Quality.GOOD
    codec_id: str = ""
    derived_from: Metric | None = None
    """The metric this reading was derived from on the gateway (`core.derived`), if any."""


_READING_SLOTS: Final = tuple(
    Reading.__dict__[name].__set__
    for name in ("device_id", "metric", "value", "ts", "quality", "codec_id", "derived_from")
)


def new_reading(  # noqa: PLR0917 - one argument per field, as the constructor
    device_id: str,
    metric: Metric,
    value: float | bool,  # noqa: FBT001 - a reading's value may be a boolean
    ts: datetime,
    quality: Quality,
    codec_id: str,
    derived_from: Metric | None = None,
) -> Reading:
    """The `Reading` the constructor would build, about three times faster.

    A frozen dataclass sets each field through `object.__setattr__`; this sets the slots
    directly. For the parsers that build readings by the hundred thousand per second; the
    result compares, hashes and prints as the constructor's.
    """
    reading: Reading = object.__new__(Reading)
    s_device, s_metric, s_value, s_ts, s_quality, s_codec, s_derived = _READING_SLOTS
    s_device(reading, device_id)
    s_metric(reading, metric)
    s_value(reading, value)
    s_ts(reading, ts)
    s_quality(reading, quality)
    s_codec(reading, codec_id)
    s_derived(reading, derived_from)
    return reading


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """What a codec made of one frame: readings, warnings and non-metric attributes.

    Attributes are device facts that are not measurements (firmware version, serial number, the
    event code of a panel message); they never carry a canonical metric.
    """

    readings: tuple[Reading, ...]
    warnings: tuple[str, ...] = ()
    attributes: Mapping[str, Scalar] = field(default_factory=dict)


class AlarmState(StrEnum):
    """State of one alarm instance (rule x device) on the gateway.

    `RESOLVED` is never held: it is the state carried by the event that reports a return to NORMAL
    from FIRING or RECOVERING, re-sent for a few minutes so the cloud cannot miss it.
    """

    NORMAL = "normal"
    PENDING = "pending"
    FIRING = "firing"
    RECOVERING = "recovering"
    NO_DATA = "no_data"
    FAULT = "fault"
    RESOLVED = "resolved"


class Severity(StrEnum):
    """How urgent an alarm is; ordered from least to most urgent."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """A number that orders severities (higher is more urgent)."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK: Final = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class Priority(StrEnum):
    """Priority of the work order an alarm opens; ordered from least to most urgent.

    The only names a rule's `work_order.priority` and an envelope's alarm event may carry.
    """

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


@dataclass(frozen=True, slots=True)
class WorkOrderHint:
    """What kind of work order an alarm should open in the cloud."""

    category: str
    priority: Priority


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One change (or re-send) of an alarm instance, as the gateway reports it.

    `fingerprint` is `site/device/rule`; `seq` grows by one for every event of that fingerprint, so the
    cloud can drop duplicates and spot gaps. `description` is the rule's human description, so the
    event can be read without looking the rule up. `valid_until` bounds how long a FIRING event
    stays true without a re-send. `suppressed` names active suppressions (silence, maintenance
    window, parent inhibition, disarmed schedule): suppression is a flag, not a state.
    """

    fingerprint: str
    seq: int
    state: AlarmState
    severity: Severity
    starts_at: datetime
    at: datetime
    rule_id: str
    device_id: str
    location: str = ""
    description: str = ""
    valid_until: datetime | None = None
    value: float | bool | None = None
    evidence: Mapping[str, Scalar] = field(default_factory=dict)
    suppressed: tuple[str, ...] = ()
    work_order: WorkOrderHint | None = None
    rule_version: str = ""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One uplink batch from a gateway: readings and alarm events under one batch id."""

    gateway_id: str
    batch_id: UUID
    sent_at: datetime
    readings: tuple[Reading, ...] = ()
    alarm_events: tuple[AlarmEvent, ...] = ()
    schema_version: int = SCHEMA_VERSION
