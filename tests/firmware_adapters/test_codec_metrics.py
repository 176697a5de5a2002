"""Every codec declares the canonical metrics it emits, and the declaration holds to the code.

A codec that starts emitting a metric without declaring it fails here: through its vectors (the
readings they list and the readings the codec decodes from them), through its field or register
table (declared exactly as the table's metrics), or through the mapping a hand-written decoder
reads its metrics from.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import replace
from types import ModuleType

import pytest
from vector_cases import RECEIVED_AT, load_cases

from core.metrics import CATALOG, Metric
from core.types import RawFrame
from firmware_adapters.codec import Codec
from firmware_adapters.codecs.lorawan import dingtek_dc410, dingtek_df702, milesight_gs524n
from firmware_adapters.codecs.zigbee2mqtt import generic_exposes
from firmware_adapters.dingtek import MEASUREMENT_METRICS
from firmware_adapters.fields import (
    Bits,
    Choice,
    Field,
    Group,
    Skip,
    Text,
    s16le,
    table_metrics,
    u8,
    u16le,
)
from firmware_adapters.gbt26875 import semantics
from firmware_adapters.lorawan import RADIO_METRICS, radio_readings
from firmware_adapters.modbus_table import RegisterTable, parse_register_table
from firmware_adapters.panel_events import CONTACT_ID_METRICS, EVENT_METRICS
from firmware_adapters.registry import CODECS, get_codec, index_codecs
from firmware_adapters.sia_codes import SIA_CODES, SIA_METRICS

IDS = sorted(CODECS)


def _module(codec: Codec) -> ModuleType:
    transport, vendor, model = codec.id.split(".")
    return importlib.import_module(f"firmware_adapters.codecs.{transport}.{vendor}_{model}")


def _field_table(codec: Codec) -> Mapping[object, Field] | None:
    table = getattr(_module(codec), "TABLE", None)
    if isinstance(table, Mapping) and all(isinstance(f, Field) for f in table.values()):
        return table
    return None


def _register_table(codec: Codec) -> RegisterTable | None:
    table = getattr(_module(codec), "TABLE", None)
    return table if isinstance(table, RegisterTable) else None


FIELD_TABLE_IDS = [i for i in IDS if _field_table(CODECS[i]) is not None]
REGISTER_TABLE_IDS = [i for i in IDS if _register_table(CODECS[i]) is not None]


@pytest.mark.parametrize("codec_id", IDS)
def test_declared_metrics_are_canonical_and_not_empty(codec_id: str) -> None:
    metrics = CODECS[codec_id].metrics
    assert isinstance(metrics, frozenset)
    assert metrics, f"{codec_id} declares no metrics"
    assert all(isinstance(m, Metric) and m in CATALOG for m in metrics), metrics


@pytest.mark.parametrize("codec_id", IDS)
def test_vectors_only_name_declared_metrics(codec_id: str) -> None:
    codec = CODECS[codec_id]
    named = {
        Metric(r["metric"])
        for case in load_cases(codec.vectors)
        for r in case.doc.get("readings") or []
    }
    assert named, f"{codec_id}: no vector lists a reading"
    assert named <= codec.metrics, f"{codec_id} emits undeclared {sorted(named - codec.metrics)}"


@pytest.mark.parametrize("codec_id", IDS)
def test_decoded_vectors_only_emit_declared_metrics(codec_id: str) -> None:
    codec = CODECS[codec_id]
    emitted = {
        reading.metric
        for case in load_cases(codec.vectors)
        if "error" not in case.doc
        for reading in codec.decode(case.frame()).readings
    }
    assert emitted <= codec.metrics, (
        f"{codec_id} emits undeclared {sorted(emitted - codec.metrics)}"
    )


def test_the_table_codecs_are_found() -> None:
    # The Milesight channel-table codecs and the fixed Modbus register tables.
    assert len(FIELD_TABLE_IDS) >= 8, FIELD_TABLE_IDS
    assert len(REGISTER_TABLE_IDS) >= 2, REGISTER_TABLE_IDS


@pytest.mark.parametrize("codec_id", FIELD_TABLE_IDS)
def test_field_table_codecs_declare_exactly_their_table(codec_id: str) -> None:
    codec = CODECS[codec_id]
    table = _field_table(codec)
    assert table is not None
    expected = table_metrics(table.values())
    if codec.transport == "lorawan":
        expected |= RADIO_METRICS
    assert codec.metrics == expected


@pytest.mark.parametrize("codec_id", REGISTER_TABLE_IDS)
def test_register_table_codecs_declare_exactly_their_table(codec_id: str) -> None:
    codec = CODECS[codec_id]
    table = _register_table(codec)
    assert table is not None
    assert codec.metrics == table.metrics == {f.metric for f in table.fields}


@pytest.mark.parametrize("codec_id", [i for i in IDS if i.startswith("lorawan.")])
def test_lorawan_codecs_declare_the_radio_metrics(codec_id: str) -> None:
    assert get_codec(codec_id).metrics >= RADIO_METRICS


def test_radio_metrics_are_what_radio_readings_emit() -> None:
    frame = RawFrame("t", "lorawan.x.y", b"", RECEIVED_AT, {"rssi": "-97", "snr": "7.25"})
    assert {r.metric for r in radio_readings(frame, "lorawan.x.y")} == RADIO_METRICS


def test_field_metrics_include_derived_flags() -> None:
    assert u8(Metric.BATTERY_PCT).metrics == {Metric.BATTERY_PCT}
    assert u16le("distance_mutation_mm").metrics == frozenset()
    assert Text("sn", 2, bytes.hex).metrics == frozenset()
    assert Skip(2).metrics == frozenset()
    assert Choice("daylight", {0: "dark", 1: "light"}).metrics == frozenset()
    pir = Choice("pir", {0: "normal", 1: "trigger"}, Metric.OCCUPANCY, ("trigger",))
    assert pir.metrics == {Metric.OCCUPANCY}
    bits = Bits({0: "threshold_x", 1: Metric.TAMPER}, Metric.TILT_ALARM)
    assert bits.metrics == {Metric.TAMPER, Metric.TILT_ALARM}
    group = Group(s16le(Metric.TILT_X_DEG, 0.01), bits)
    assert group.metrics == {Metric.TILT_X_DEG, Metric.TAMPER, Metric.TILT_ALARM}
    assert table_metrics([pir, group]) == group.metrics | {Metric.OCCUPANCY}


def test_dingtek_codecs_declare_measurements_and_their_flags() -> None:
    for module in (dingtek_dc410, dingtek_df702):
        flags = {m for m in module.FLAGS if m is not None}
        assert module.CODEC.metrics == MEASUREMENT_METRICS | flags | RADIO_METRICS


def test_gs524n_declares_every_event_flag() -> None:
    flags = {m for _, values in milesight_gs524n.EVENTS.values() for m in values}
    measured = {Metric.BATTERY_PCT, Metric.SMOKE_PCT, Metric.TEMPERATURE_C}
    assert measured | flags == milesight_gs524n.METRICS


def test_contact_id_declares_every_event_metric() -> None:
    assert {m for ms in EVENT_METRICS.values() for m in ms} == CONTACT_ID_METRICS
    assert get_codec("serial.ademco.contact_id").metrics == CONTACT_ID_METRICS


def test_sia_dc09_declares_every_adm_cid_and_sia_dcs_metric() -> None:
    assert {m for _, m, _ in SIA_CODES.values() if m is not None} == SIA_METRICS
    assert get_codec("ip.sia.dc09").metrics == CONTACT_ID_METRICS | SIA_METRICS


def test_gbt26875_declares_status_and_analog_metrics() -> None:
    status = {
        m for bits in semantics.STATUS_BITS.values() for m in semantics.status_readings(0, bits)
    }
    analog = {a.metric for a in semantics.ANALOG_TYPES.values() if a.metric is not None}
    assert status | analog == semantics.METRICS
    assert get_codec("serial.gbt26875.3").metrics == semantics.METRICS


def test_zigbee2mqtt_declares_every_converted_property() -> None:
    converted = set(generic_exposes.BINARY.values())
    converted |= {metric for metric, _ in generic_exposes.NUMERIC.values()}
    assert converted | {Metric.ONLINE} == generic_exposes.METRICS
    assert generic_exposes.CODEC.metrics == generic_exposes.METRICS


def test_modbus_generic_table_declares_every_metric_a_table_can_hold() -> None:
    for metric in Metric:
        table = parse_register_table({"fields": [{"metric": metric.value, "address": 0}]})
        assert table.metrics == {metric}
    assert get_codec("modbus.generic.table").metrics == frozenset(Metric)


def test_the_registry_refuses_a_codec_without_metrics() -> None:
    some = next(iter(CODECS.values()))
    with pytest.raises(ValueError, match="declares no metrics"):
        index_codecs([replace(some, metrics=frozenset())])
