"""The gateway configuration: one YAML file, validated with pydantic, every error with file:line.

`load_config(path)` reads the file, validates the whole document, then checks what pydantic cannot
see alone (codec ids exist, device ids and bindings are unique, buses and devices referenced exist,
locations are full paths, the uplink's TLS files are readable PEM), and raises `ConfigError` listing
every issue at once. Validation reads the file and the TLS files it names; nothing else.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
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
    ValidationError,
    field_validator,
)

from core.derived import Derivation, DerivationError, parse_derivations
from core.durations import seconds_if_duration
from core.issues import Issue
from core.metrics import Metric
from core.schema_issues import schema_issues
from core.site import LEVELS, DeviceInfo, DeviceKind, SitePath
from core.types import Severity
from core.yaml_located import Located, YamlError, load_file, load_located
from core.zones import check_zone
from edge_agent.config_errors import ConfigError
from edge_agent.uplink_settings import UplinkSettings
from firmware_adapters.modbus_table import RegisterTable, TableError, parse_register_table
from rules import packs
from rules.spec import RuleSet, load_rule_files

DEFAULT_CONFIG_PATH = Path("/etc/steward/edge.yaml")
"""Where `edge-agent` looks for its configuration unless told otherwise."""

Identifier = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
Number = Annotated[float, Strict(), AllowInfNan(allow_inf_nan=False)]
"""A finite number written as one: not `true`, not a quoted string, not `.inf` or `.nan`."""
Seconds = Annotated[Number, BeforeValidator(seconds_if_duration)]
"""Seconds, written as a number or a duration (`30s`, `20m`, `1h`), as in rule files."""
PositiveSeconds = Annotated[Seconds, Field(gt=0, le=86_400)]
Port = Annotated[StrictInt, Field(gt=0, lt=65_536)]
Baudrate = Annotated[StrictInt, Field(gt=0, le=10_000_000)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class GatewayConfig(_Model):
    """Who the gateway is and where it stands."""

    id: Identifier
    """Also the gateway's MQTT user name (`cloud-ingest gateways add`), so it may not hold `:`."""
    site: str = ""
    """Where the gateway stands in the site hierarchy (`district/street/community/...`)."""
    site_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]+$", max_length=256)] | None = None
    """First part of alarm fingerprints (`site/device/rule`); defaults to the gateway id."""
    timezone: str = "UTC"
    """IANA time zone of the site (`Asia/Shanghai`): rules' time-of-day windows run in it."""

    @field_validator("site")
    @classmethod
    def _site_path(cls, value: str) -> str:
        SitePath.parse(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("id")
    @classmethod
    def _mqtt_user_name(cls, value: str) -> str:
        if ":" in value:
            msg = "':' cannot be in a gateway id: it is also the gateway's MQTT user name"
            raise ValueError(msg)
        return value


class SerialSourceConfig(_Model):
    """A serial port read as a stream of frames of one codec (e.g. a fire panel's UART)."""

    id: Identifier
    """Name of the source (also the default device its frames belong to)."""
    port: str = Field(min_length=1, description="prefer a stable /dev/serial/by-id/... path")
    baudrate: Baudrate = 9600
    """Line speed of the port."""
    codec: str
    """The codec whose framer cuts the byte stream into frames (`serial.gbt26875.3`, ...)."""
    device: Identifier | None = None
    """The device bound to frames of this port (one of `devices`); defaults to the source id."""
    reopen_max_s: PositiveSeconds = 30.0
    """Longest wait between attempts to reopen a port that disappeared."""

    @property
    def bound_device(self) -> str:
        """The id of the device frames of this port belong to."""
        return self.device or self.id


class Zigbee2MqttConfig(_Model):
    """Zigbee2MQTT on the local broker."""

    base_topic: str = "zigbee2mqtt"
    """Zigbee2MQTT's `base_topic` setting."""


class ChirpStackConfig(_Model):
    """ChirpStack v4 MQTT integration on the local broker."""

    application_id: str = "+"
    """Which application's events to follow; `+` follows all."""


class LocalMqttConfig(_Model):
    """The broker on the gateway itself (Zigbee2MQTT, ChirpStack, local actuators)."""

    host: str = "127.0.0.1"
    """The local broker's address."""
    port: Port = 1883
    """The local broker's port."""
    client_id: str = ""
    """MQTT client id on the local broker; empty: one is generated."""
    keepalive_s: StrictInt = Field(default=30, ge=5, le=3600)
    """MQTT keepalive with the local broker."""
    broker_drops: StrictBool = True
    """Follow the broker's count of dropped messages (Mosquitto `$SYS`) in the self-statistics."""
    zigbee2mqtt: Zigbee2MqttConfig | None = None
    """Follow Zigbee2MQTT (Zigbee devices bound by `friendly_name`)."""
    chirpstack: ChirpStackConfig | None = None
    """Follow ChirpStack v4's MQTT integration (LoRaWAN devices bound by `dev_eui`)."""


class ModbusBusConfig(_Model):
    """An RS-485 bus polled with Modbus RTU."""

    id: Identifier
    """Name of the bus, referred to by devices' `modbus.bus`."""
    port: str = Field(min_length=1)
    """The RS-485 adapter: prefer a stable `/dev/serial/by-id/...` path."""
    baudrate: Baudrate = 9600
    """Line speed of the bus."""
    parity: Literal["N", "E", "O"] = "N"
    """`N` none, `E` even, `O` odd."""
    stopbits: StrictInt = Field(default=1, ge=1, le=2)
    """Stop bits per character."""


class Dc09ReceiverConfig(_Model):
    """A SIA DC-09 receiver port that alarm panels report to over TCP."""

    host: str = "127.0.0.1"
    """Address to listen on (`0.0.0.0`: every interface of the gateway)."""
    port: Port = 7000
    """TCP port the panels report to."""
    codec: str = "ip.sia.dc09"
    """The codec of the panels' messages (`ip.sia.dc09`, Contact ID or SIA inside)."""


class SourcesConfig(_Model):
    """Every way bytes reach the gateway."""

    serial: tuple[SerialSourceConfig, ...] = ()
    """Serial ports read as streams of frames (fire panels, Contact ID receivers)."""
    mqtt: LocalMqttConfig | None = None
    """The broker on the gateway itself (Zigbee2MQTT, ChirpStack, local actuators)."""
    modbus: tuple[ModbusBusConfig, ...] = ()
    """RS-485 buses polled with Modbus RTU."""
    dc09: Dc09ReceiverConfig | None = None
    """A SIA DC-09 receiver for intrusion panels reporting over TCP."""


class RegisterBlock(_Model):
    """A block of registers read in one request."""

    table: Literal["holding", "input"] = "holding"
    """`holding` (function 3) or `input` (function 4) registers."""
    address: StrictInt = Field(ge=0, lt=65_536)
    """First register of the block."""
    count: StrictInt = Field(default=1, ge=1, le=125)
    """Registers read in one request (at most 125)."""


INPUT_FUNCTION: Final = 4
"""Modbus function 4 reads input registers (3: holding)."""


class ModbusBinding(_Model):
    """How a device is polled on a Modbus bus.

    `registers` lists the blocks read in one request each. A device decoded by
    `modbus.generic.table` also gives its register table here: `fields` (and `function`, 3 for
    holding or 4 for input registers), in the form of `firmware_adapters.modbus_table`; without
    `registers` it is read as one block from its first to its last register.
    """

    bus: Identifier
    """The bus the device hangs on (an `id` under `sources.modbus`)."""
    slave: StrictInt = Field(ge=1, le=247)
    """The device's Modbus address on the bus."""
    interval_s: PositiveSeconds = 10.0
    """Time between two polls of the device."""
    timeout_s: PositiveSeconds = 1.0
    """No answer within this time is a failed poll (a silent device gets a fault reading)."""
    registers: tuple[RegisterBlock, ...] = ()
    """The blocks read, one request each (optional with `fields`: then the table's span)."""
    function: Literal[3, 4] = 3
    """The registers of `fields`: 3 holding, 4 input."""
    fields: tuple[dict[str, object], ...] | None = None
    """The register table of a `modbus.generic.table` device: `{metric, address, type (u16, s16,
    u32, s32, f32), scale, offset, word_order}` per field."""

    def register_table(self) -> RegisterTable | None:
        """The register table of `fields` (None without `fields` or when it is invalid)."""
        if not self.fields:
            return None
        try:
            return parse_register_table({"function": self.function, "fields": list(self.fields)})
        except TableError:
            return None

    def blocks(self) -> tuple[RegisterBlock, ...]:
        """The blocks to read: `registers`, else the whole register table in one block."""
        table = self.register_table()
        if self.registers or table is None:
            return self.registers
        kind: Literal["holding", "input"] = (
            "input" if table.function == INPUT_FUNCTION else "holding"
        )
        return (RegisterBlock(table=kind, address=table.first, count=table.count),)


class DeviceConfig(_Model):
    """One bound device: identity, codec, kind, place, labels and its transport address."""

    id: Identifier
    """Unique device id; second part of alarm fingerprints (`site/device/rule`)."""
    codec: str
    """The codec that decodes this device's frames (`edge-agent codecs` lists them)."""
    kind: DeviceKind = DeviceKind.OTHER
    """What the device is: rules and the coverage check select devices by kind."""
    location: str = ""
    """Where the device is: the full site path from the district (`huangpu/nanjing-
    rd/xinhua/g03/c1/b2`)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Free labels (`operator: cleanco`) that rules may match and alarms carry."""
    expected_interval_s: PositiveSeconds | None = None
    """The device reports at least this often; silence for longer raises NO_DATA."""
    dev_eui: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{16}$")] | None = None
    """LoRaWAN DevEUI (16 hex digits): binds ChirpStack uplinks to this device."""
    friendly_name: str | None = None
    """Zigbee2MQTT friendly name: binds `<base_topic>/<name>` messages to this device."""
    account: str | None = None
    """The DC-09 / Contact ID account number that identifies this panel."""
    modbus: ModbusBinding | None = None
    """How the device is polled on an RS-485 bus (Modbus RTU devices only)."""
    metrics: tuple[Metric, ...] | None = None
    """What this device reports, for a codec that serves many models (Zigbee2MQTT, a Modbus table);
    only the coverage check reads it. Default: the codec's metrics (typical ones of the kind for
    such a codec)."""
    derive: dict[str, object] = Field(default_factory=dict)
    """How raw metrics become what rules reason about (`core.derived`), e.g.
    `{fill_pct: {from: distance_mm, empty_mm: 1350, full_mm: 150}}`; checked with file:line."""

    @field_validator("location")
    @classmethod
    def _location(cls, value: str) -> str:
        SitePath.parse(value)
        return value

    def info(self) -> DeviceInfo:
        """Return what rules and the pipeline need to know about this device."""
        return DeviceInfo(
            device_id=self.id,
            kind=self.kind,
            location=SitePath.parse(self.location),
            labels=dict(self.labels),
            codec_id=self.codec,
            expected_interval_s=self.expected_interval_s,
            derive=self.derivations(),
        )

    def derivations(self) -> tuple[Derivation, ...]:
        """The parsed `derive` mapping (raises `DerivationError` if it was never checked)."""
        return parse_derivations(self.derive)


class OutboxConfig(_Model):
    """The store-and-forward queue."""

    path: str = "outbox.sqlite3"
    """Relative paths are inside the state directory."""
    max_records: StrictInt | None = Field(default=1_000_000, ge=100, le=1_000_000_000)
    """Telemetry records kept at most; the oldest is dropped beyond (alarms never are)."""
    max_bytes: StrictInt | None = Field(default=256 * 1024 * 1024, ge=64 * 1024, le=2**40)
    """Bytes of telemetry kept at most; the oldest is dropped beyond (alarms never are)."""


class LocalActionConfig(_Model):
    """Drive a local output (an MQTT actuator topic on the local broker) from alarms."""

    topic: str = Field(min_length=1)
    """Topic on the local broker the actuator listens to (e.g. `zigbee2mqtt/siren-1/set`)."""
    min_severity: Severity = Severity.CRITICAL
    """The least severe alarm that switches the output on."""
    kinds: tuple[DeviceKind, ...] = ()
    """Device kinds this action serves; empty means all."""
    on_payload: str = '{"state": "ON"}'
    """Published when a matching alarm fires."""
    off_payload: str = '{"state": "OFF"}'
    """Published when no such alarm is active any more."""


class PipelineConfig(_Model):
    """Tuning of the frame pipeline."""

    queue_size: StrictInt = Field(default=10_000, ge=10, le=10_000_000)
    """Frames waiting to be decoded at most; beyond, the newest are refused and counted."""
    batch_size: StrictInt = Field(default=200, ge=1, le=10_000)
    """Frames decoded and stored together (one disk flush)."""
    linger_s: Number = Field(default=0.005, ge=0, le=1)
    """How long the worker waits to fill a batch: a trickle shares one disk flush."""
    stats_interval_s: PositiveSeconds = 60.0
    """How often the agent reports its own statistics as readings."""
    dead_letter_ttl_days: Number = Field(default=7.0, gt=0, le=3650)
    """Days undecodable frames are kept for diagnosis."""


class EdgeConfig(_Model):
    """The whole gateway configuration file."""

    gateway: GatewayConfig
    """Who the gateway is and where it stands."""
    state_dir: str = "/var/lib/steward"
    """The agent's own directory: outbox, dead letters and rule state (systemd
    `StateDirectory=steward`)."""
    sources: SourcesConfig = SourcesConfig()
    """Every way bytes reach the gateway: serial ports, Modbus buses, the local broker, DC-09."""
    devices: tuple[DeviceConfig, ...] = ()
    """Every device the gateway reads, with its codec, kind, place and address."""
    rules: tuple[str, ...] = ()
    """Rule files: `pack:NAME` (a shipped pack: fire, manhole, bin, perimeter, water, health, or
    `pack:default` for all) or paths, relative ones resolved against the config file's directory."""

    @field_validator("rules")
    @classmethod
    def _packs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            if entry.startswith(packs.PREFIX):
                packs.resolve(entry, Path())  # raises ValueError naming the shipped packs
        return value

    uplink: UplinkSettings = UplinkSettings()
    """The cloud broker (`edge_agent.uplink_settings`); TLS file names relative to the config."""
    outbox: OutboxConfig = OutboxConfig()
    """The store-and-forward queue in the state directory."""
    pipeline: PipelineConfig = PipelineConfig()
    """Tuning of the frame pipeline (defaults suit a Raspberry Pi)."""
    actions: tuple[LocalActionConfig, ...] = ()
    """Local outputs (sirens, relays) driven by alarms even when the uplink is down."""


def load_config(path: Path) -> EdgeConfig:
    """Read and validate a configuration file (a regular UTF-8 file of at most 4 MiB).

    TLS file names are taken from the file's directory and the files are checked.

    Raises:
        ConfigError: with every issue found, each located by file:line.
    """
    try:
        doc = load_file(path)
    except YamlError as err:
        raise ConfigError(err.issues) from None
    return _validate(doc, str(path), path.parent)


def parse_config(text: str, filename: str, *, base_dir: Path | None = None) -> EdgeConfig:
    """Validate configuration text; `filename` is used in error locations only.

    The uplink's TLS files are checked only when `base_dir` (where relative names start) is given.

    Raises:
        ConfigError: with every issue found, each located by file:line.
    """
    try:
        doc = load_located(text, filename)
    except YamlError as err:
        raise ConfigError(err.issues) from None
    return _validate(doc, filename, base_dir)


def _validate(doc: Located, filename: str, base_dir: Path | None) -> EdgeConfig:
    if doc.data is None:
        raise ConfigError([Issue(filename, 1, "the file is empty: a config is a mapping")])
    if not isinstance(doc.data, dict):
        raise ConfigError([Issue(filename, doc.line_of(()), "the file must hold a mapping")])
    try:
        config = EdgeConfig.model_validate(doc.data)
    except ValidationError as err:
        issues = [
            *schema_issues(err.errors(include_url=False), doc, filename, EdgeConfig),
            *_raw_codec_issues(doc, filename),
        ]
        raise ConfigError(sorted(issues, key=lambda issue: issue.line)) from err
    issues = list(_cross_issues(config, doc, filename, base_dir))
    if issues:
        raise ConfigError(sorted(issues, key=lambda issue: issue.line))
    return config


def _raw_codec_issues(doc: Located, filename: str) -> Iterator[Issue]:
    """Unknown codec ids, found in the raw document when the schema already failed elsewhere."""
    from firmware_adapters.registry import CODECS  # noqa: PLC0415 - the registry imports every codec

    data: dict[str, object] = doc.data if isinstance(doc.data, dict) else {}
    raw_sources = data.get("sources")
    sources: dict[str, object] = raw_sources if isinstance(raw_sources, dict) else {}
    """Every way bytes reach the gateway: serial ports, Modbus buses, the local broker, DC-09."""
    places: list[tuple[tuple[str | int, ...], object]] = [
        (("devices", i), item) for i, item in enumerate(_as_list(data.get("devices")))
    ]
    places += [
        (("sources", "serial", i), item) for i, item in enumerate(_as_list(sources.get("serial")))
    ]
    for loc, item in places:
        codec = item.get("codec") if isinstance(item, dict) else None
        if isinstance(codec, str) and codec not in CODECS:
            where = ".".join(str(part) for part in (*loc, "codec"))
            line = doc.line_of((*loc, "codec"))
            yield Issue(filename, line, f"{where}: unknown codec {codec!r}")


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


_IssueFn = Callable[[tuple[str | int, ...], str], Issue]


def _cross_issues(
    config: EdgeConfig, doc: Located, filename: str, base_dir: Path | None
) -> Iterator[Issue]:
    def issue(loc: tuple[str | int, ...], message: str) -> Issue:
        where = ".".join(str(part) for part in loc)
        return Issue(filename, doc.line_of(loc), f"{where}: {message}")

    yield from _codec_issues(config, issue)
    yield from _derive_issues(config, issue)
    yield from _binding_issues(config, issue)
    yield from _modbus_table_issues(config, issue)
    yield from _serial_device_issues(config, issue)
    yield from _location_issues(config, issue)
    yield from _unique_devices(config, issue)
    yield from _unique_sources(config, issue)
    for problem in config.uplink.tls_problems(base_dir, files=base_dir is not None):
        yield issue(("uplink", problem.key), problem.message)
    if base_dir is not None:
        for problem in config.uplink.credential_problems(base_dir):
            yield issue(("uplink", problem.key), problem.message)


def _codec_issues(config: EdgeConfig, issue: _IssueFn) -> Iterator[Issue]:
    from firmware_adapters.registry import CODECS  # noqa: PLC0415 - the registry imports every codec

    known = ", ".join(sorted(CODECS)) or "(none registered)"
    wanted: list[tuple[tuple[str | int, ...], str]] = [
        (("devices", index, "codec"), device.codec) for index, device in enumerate(config.devices)
    ]
    wanted += [
        (("sources", "serial", i, "codec"), s.codec) for i, s in enumerate(config.sources.serial)
    ]
    if config.sources.dc09 is not None:
        wanted.append((("sources", "dc09", "codec"), config.sources.dc09.codec))
    for loc, codec_id in wanted:
        if codec_id not in CODECS:
            yield issue(loc, f"unknown codec {codec_id!r}; known: {known}")
        elif loc[:2] == ("sources", "serial") and CODECS[codec_id].framer is None:
            yield issue(loc, f"codec {codec_id!r} has no stream framer")


def _derive_issues(config: EdgeConfig, issue: _IssueFn) -> Iterator[Issue]:
    """Every problem of every `derive` mapping, and sources the device's codec never emits."""
    from firmware_adapters.registry import CODECS  # noqa: PLC0415 - the registry imports every codec

    for index, device in enumerate(config.devices):
        where: tuple[str | int, ...] = ("devices", index, "derive")
        codec = CODECS.get(device.codec)
        for target, spec in device.derive.items():  # one at a time: every problem is reported
            try:
                derivations = parse_derivations({target: spec})
            except DerivationError as err:
                for path, message in err.problems:
                    yield issue((*where, *path), message)
                continue
            if codec is None:
                continue  # an unknown codec is reported by _codec_issues
            for d in derivations:
                missing = [m.value for m in d.sources if m not in codec.metrics]
                if missing:
                    emitted = ", ".join(sorted(m.value for m in codec.metrics))
                    yield issue(
                        (*where, target, "from"),
                        f"codec {device.codec} never reports {', '.join(missing)} "
                        f"(it reports {emitted})",
                    )


def _binding_issues(config: EdgeConfig, issue: _IssueFn) -> Iterator[Issue]:
    buses = {bus.id for bus in config.sources.modbus}
    mqtt = config.sources.mqtt
    for index, device in enumerate(config.devices):
        if device.modbus is not None and device.modbus.bus not in buses:
            yield issue(
                ("devices", index, "modbus", "bus"),
                f"no Modbus bus {device.modbus.bus!r} under sources.modbus",
            )
        if device.dev_eui is not None and (mqtt is None or mqtt.chirpstack is None):
            yield issue(("devices", index, "dev_eui"), "needs sources.mqtt.chirpstack")
        if device.friendly_name is not None and (mqtt is None or mqtt.zigbee2mqtt is None):
            yield issue(("devices", index, "friendly_name"), "needs sources.mqtt.zigbee2mqtt")
    if config.actions and mqtt is None:
        yield issue(
            ("actions",), "local actions publish to the local broker: configure sources.mqtt"
        )


GENERIC_TABLE_CODEC: Final = "modbus.generic.table"
MAX_BLOCK: Final = 125
"""Registers one Modbus read may ask for."""
_FIELD_ERROR: Final = re.compile(r"^fields\[(\d+)\](?:\.(\w+))?: ")


def _modbus_table_issues(config: EdgeConfig, issue: _IssueFn) -> Iterator[Issue]:
    """A Modbus binding's blocks, and the register table of a `modbus.generic.table` device."""
    for index, device in enumerate(config.devices):
        if device.modbus is not None:
            yield from _binding_table_issues(
                device.modbus,
                ("devices", index, "modbus"),
                issue,
                generic=device.codec == GENERIC_TABLE_CODEC,
            )


def _binding_table_issues(
    binding: ModbusBinding, where: tuple[str | int, ...], issue: _IssueFn, *, generic: bool
) -> Iterator[Issue]:
    if binding.fields is None:
        if generic:
            yield issue(where, f"{GENERIC_TABLE_CODEC} needs the register table: list its 'fields'")
        elif not binding.registers:
            yield issue(where, "list at least one block under 'registers'")
        return
    if not generic:
        yield issue(
            (*where, "fields"), f"a register table applies only to codec {GENERIC_TABLE_CODEC}"
        )
        return
    try:
        table = parse_register_table({"function": binding.function, "fields": binding.fields})
    except TableError as err:
        for message in err.errors:
            match = _FIELD_ERROR.match(message)
            if match is None:
                yield issue((*where, "fields"), message)
                continue
            path: tuple[str | int, ...] = (*where, "fields", int(match[1]))
            yield issue((*path, match[2]) if match[2] else path, message[match.end() :])
        return
    if not binding.registers and table.count > MAX_BLOCK:
        yield issue(
            (*where, "fields"),
            f"the table spans {table.count} registers (from {table.first}), more than one "
            f"read of {MAX_BLOCK}: list the blocks to read under 'registers'",
        )


def _serial_device_issues(config: EdgeConfig, issue: _IssueFn) -> Iterator[Issue]:
    """A serial port's frames belong to a device of `devices` (`device`, default the source id)."""
    declared = [device.id for device in config.devices]
    for index, source in enumerate(config.sources.serial):
        bound = source.bound_device
        if bound in declared:
            continue
        nearest = difflib.get_close_matches(bound, declared, n=1)
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        if source.device is not None:
            yield issue(
                ("sources", "serial", index, "device"),
                f"{bound!r} is not declared under devices{hint or ': declare it there'}",
            )
        else:
            yield issue(
                ("sources", "serial", index, "id"),
                f"frames of this port go to device {bound!r} (device defaults to the source id), "
                f"which is not declared under devices: set device{hint or f', or declare {bound!r}'}",
            )


_RELATIVE_SEGMENTS = frozenset({".", ".."})


def _location_issues(config: EdgeConfig, issue: _IssueFn) -> Iterator[Issue]:
    """Locations are full paths from the district: of the gateway's site when it has one."""
    site = SitePath.parse(config.gateway.site)
    if _RELATIVE_SEGMENTS & set(site.parts):
        yield issue(("gateway", "site"), "a location is a path from the district; no . or ..")
    for index, device in enumerate(config.devices):
        path = SitePath.parse(device.location)
        if not path.parts:
            continue
        if _RELATIVE_SEGMENTS & set(path.parts):
            yield issue(
                ("devices", index, "location"),
                f"{device.location!r} is relative: write the full path from the district, "
                "without . or ..",
            )
        elif site.parts and path.parts[0] != site.parts[0]:
            full = f"{site}/{path}"
            example = f", e.g. {full}" if len(site.parts) + len(path.parts) <= len(LEVELS) else ""
            yield issue(
                ("devices", index, "location"),
                f"{device.location!r} does not start at the district of gateway.site "
                f"({site.parts[0]!r}): write the full path from the district{example}",
            )


def _device_keys(device: DeviceConfig) -> Iterator[tuple[str, str]]:
    yield ("id", device.id)
    if device.dev_eui is not None:
        yield ("dev_eui", device.dev_eui.lower())
    if device.friendly_name is not None:
        yield ("friendly_name", device.friendly_name)
    if device.account is not None:
        yield ("account", device.account)
    if device.modbus is not None:
        yield ("modbus", f"{device.modbus.bus}/{device.modbus.slave}")


def _unique_devices(config: EdgeConfig, issue: _IssueFn) -> Iterator[Issue]:
    seen: dict[tuple[str, str], int] = {}
    for index, device in enumerate(config.devices):
        for key in _device_keys(device):
            if key in seen:
                yield issue(
                    ("devices", index, key[0]),
                    f"{key[0]} {key[1]!r} already used by devices[{seen[key]}]",
                )
            else:
                seen[key] = index


def _unique_sources(config: EdgeConfig, issue: _IssueFn) -> Iterator[Issue]:
    ids = [("serial", i, s.id) for i, s in enumerate(config.sources.serial)]
    ids += [("modbus", i, b.id) for i, b in enumerate(config.sources.modbus)]
    seen: set[str] = set()
    for kind, index, source_id in ids:
        if source_id in seen:
            yield issue(("sources", kind, index, "id"), f"source id {source_id!r} used twice")
        seen.add(source_id)


def resolve_rule_paths(config: EdgeConfig, config_path: Path) -> tuple[Path, ...]:
    """Return the rule files of `config`.

    `pack:NAME` entries are the shipped packs; relative paths are taken from the config's directory.
    """
    base = config_path.parent
    return tuple(path for raw in config.rules for path in packs.resolve(raw, base))


def load_rules(config: EdgeConfig, config_path: Path) -> RuleSet:
    """Load the rule files of `config`; schedules without a zone of their own run in the site's.

    Raises:
        RuleFileError: with every problem of every file, each as file:line.
    """
    return load_rule_files(
        resolve_rule_paths(config, config_path), timezone=config.gateway.timezone
    )


def state_path(config: EdgeConfig, name: str) -> Path:
    """Return a path inside the state directory (absolute names are kept)."""
    path = Path(name)
    return path if path.is_absolute() else Path(config.state_dir) / path
