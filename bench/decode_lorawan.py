"""Decoding throughput of the LoRaWAN (and Zigbee2MQTT) codecs on one core.

`.venv/bin/python bench/decode_lorawan.py [seconds]` prints a table; `run(seconds)` returns the
figures. Each `*_per_s` figure is payloads decoded per second through the registered codec
(`CODEC.decode` on a `RawFrame`, readings built, radio readings included where the frame carries
rssi/snr). `chirpstack_event_to_readings_per_s` is the whole MQTT path: ChirpStack `up` event JSON ->
`parse_up_event` -> `frame_from_up_event` -> codec. The baseline is one `struct.unpack_from` of a
16-bit field per payload, the least any binary decoder must do; `*_ratio` figures are ours / that.
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from core.types import RawFrame
from firmware_adapters.chirpstack import UpEventEncoder, frame_from_up_event, parse_up_event
from firmware_adapters.registry import get_codec

AT = datetime(2026, 1, 1, tzinfo=UTC)
RADIO = {"rssi": "-97", "snr": "7.25"}
FAMILIES: dict[str, list[tuple[str, str, str]]] = {
    "milesight_tlv": [
        ("lorawan.milesight.em310_udl", "85", "01755c03824408040001"),
        ("lorawan.milesight.em400_udl", "85", "01755c0367010104824408050001"),
        ("lorawan.milesight.em310_tilt", "85", "03cf00000000282307"),
        ("lorawan.milesight.ws301", "85", "017564030001040001"),
    ],
    "milesight_gs524n": [("lorawan.milesight.gs524n", "85", "221e64001c40")],
    "dragino": [
        ("lorawan.dragino.ldds75", "2", "0cf6096e00012201"),
        ("lorawan.dragino.lds02", "10", "8b880100002500000300"),
    ],
    "dingtek": [
        ("lorawan.dingtek.df702", "3", "800001011107d000190000000000000081"),
        ("lorawan.dingtek.dc410", "3", "800001021106a400160100000000010081"),
    ],
}
Z2M_STATE = b'{"contact":false,"battery":87,"voltage":2900,"tamper":false,"battery_low":false,"linkquality":120}'
Z2M_EXPOSES = (
    '[["contact","binary",false,true,""],["battery","numeric",null,null,"%"],'
    '["voltage","numeric",null,null,"mV"],["tamper","binary",true,false,""],'
    '["battery_low","binary",true,false,""]]'
)


def rate(work: Callable[[], int], seconds: float) -> float:
    """Items per second of `work` (which returns how many items it handled) over `seconds`."""
    done, start = 0, time.perf_counter()
    deadline = start + seconds
    while (now := time.perf_counter()) < deadline:
        done += work()
    return done / (now - start)


def family(rows: list[tuple[str, str, str]]) -> Callable[[], int]:
    """Decode every payload of a family 200 times per round."""
    batch = [
        (
            get_codec(cid).decode,
            RawFrame(
                "bench", cid, bytes.fromhex(h), AT, {"device_id": "dev", "fport": port, **RADIO}
            ),
        )
        for cid, port, h in rows
    ] * 200

    def work() -> int:
        for decode, frame in batch:
            decode(frame)
        return len(batch)

    return work


def chirpstack_path() -> Callable[[], int]:
    """Parse ChirpStack events and decode their payloads with the bound codec."""
    encoder = UpEventEncoder("24e124136b502217")
    events = [
        encoder.encode(bytes.fromhex(h), int(port), AT)
        for cid, port, h in FAMILIES["milesight_tlv"]
    ]
    codec_ids = [cid for cid, _, _ in FAMILIES["milesight_tlv"]]
    batch = list(zip(events, codec_ids, strict=True)) * 100

    def work() -> int:
        for payload, codec_id in batch:
            event = parse_up_event(payload)
            get_codec(codec_id).decode(frame_from_up_event(event, codec_id, event.time or AT))
        return len(batch)

    return work


def zigbee2mqtt_state() -> Callable[[], int]:
    """Decode a Zigbee2MQTT door-sensor state with its exposes."""
    codec = get_codec("zigbee2mqtt.generic.exposes")
    frame = RawFrame(
        "bench",
        codec.id,
        Z2M_STATE,
        AT,
        {"device_id": "gate", "kind": "state", "model": "TS0203", "exposes": Z2M_EXPOSES},
    )
    batch = [frame] * 500

    def work() -> int:
        for item in batch:
            codec.decode(item)
        return len(batch)

    return work


def baseline() -> Callable[[], int]:
    """One 16-bit unpack per payload: the floor of any binary decoder."""
    unpack = struct.Struct("<H").unpack_from
    batch = [bytes.fromhex(h) for rows in FAMILIES.values() for _, _, h in rows] * 200

    def work() -> int:
        for payload in batch:
            unpack(payload, 0)
        return len(batch)

    return work


def run(seconds: float) -> dict[str, float]:
    """Measure every figure, sharing `seconds` between them."""
    jobs: dict[str, Callable[[], int]] = {"baseline_struct_unpack_per_s": baseline()}
    jobs |= {f"{name}_per_s": family(rows) for name, rows in FAMILIES.items()}
    jobs["lorawan_all_per_s"] = family([row for rows in FAMILIES.values() for row in rows])
    jobs["chirpstack_event_to_readings_per_s"] = chirpstack_path()
    jobs["zigbee2mqtt_state_per_s"] = zigbee2mqtt_state()
    share = seconds / len(jobs)
    figures = {name: rate(work, share) for name, work in jobs.items()}
    base = figures["baseline_struct_unpack_per_s"]
    for name in list(figures):
        if name != "baseline_struct_unpack_per_s":
            figures[name.removesuffix("_per_s") + "_ratio"] = figures[name] / base
    return figures


def main() -> None:
    """Print the figures as a table."""
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 6.0
    figures = run(seconds)
    width = max(map(len, figures))
    print(f"{'figure':<{width}}  value")
    for name, value in figures.items():
        print(
            f"{name:<{width}}  {value:,.4f}"
            if name.endswith("_ratio")
            else f"{name:<{width}}  {value:,.0f}"
        )


if __name__ == "__main__":
    main()
