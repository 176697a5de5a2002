"""Decoding throughput of the serial, IP and Modbus codecs on one core.

`.venv/bin/python bench/decode_serial.py [seconds]` prints a table; `run(seconds)` returns the
figures for the bench runner. Each figure is payloads decoded per second through the registered
codec (`CODEC.decode` on a `RawFrame`, readings built); `gbt26875_stream_frames_per_s` also splits
a byte stream with the framer first. The baseline is the GB/T frame checksum alone (`sum` over the
frame body), the least any GB/T decoder must do; `*_ratio` figures are ours / that baseline.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from core.types import RawFrame
from firmware_adapters.codec import Codec
from firmware_adapters.codecs.ip import sia_dc09
from firmware_adapters.codecs.modbus import dfrobot_sen0310, dfrobot_sen0492
from firmware_adapters.codecs.serial import ademco_contact_id, gbt26875_3
from firmware_adapters.framing.base import StreamBuffer
from firmware_adapters.framing.gbt26875 import Gbt26875Framer

AT = datetime(2026, 1, 1, tzinfo=UTC)
VENDOR_GBT = bytes.fromhex(
    "404000000101180d11160a140000000000000605040302013000020201010300d90006000200"
    "a3c1c7f8a3b1b2e3dfc8b2b8d7dfc0c8000000000000000000000000000000301213010814682323"
)


def gbt_payloads() -> list[bytes]:
    """A mix: the reference component frame, a 2-object system status, an analog value."""
    return [
        VENDOR_GBT,
        gbt26875_3.CODEC.encode(
            {
                "info_type": 1,
                "objects": [
                    {"system_type": 1, "system_address": n, "status": 1, "at": AT} for n in range(2)
                ],
            }
        ),
        gbt26875_3.CODEC.encode(
            {"info_type": 3, "component_address": 5, "temperature_c": 36.5, "at": AT}
        ),
    ]


def frames(codec: Codec, payloads: list[bytes]) -> list[RawFrame]:
    """Frames as a source would hand them to the pipeline."""
    return [RawFrame("bench", codec.id, p, AT, {"device_id": "dev"}) for p in payloads]


def rate(work: Callable[[], int], seconds: float) -> float:
    """Items per second of `work` (which returns how many items it handled) over `seconds`."""
    done, start = 0, time.perf_counter()
    deadline = start + seconds
    while (now := time.perf_counter()) < deadline:
        done += work()
    return done / (now - start)


def decoding(codec: Codec, payloads: list[bytes]) -> Callable[[], int]:
    """One round of decoding every payload 100 times."""
    batch = frames(codec, payloads) * 100

    def work() -> int:
        for frame in batch:
            codec.decode(frame)
        return len(batch)

    return work


def gbt_stream() -> Callable[[], int]:
    """Split a 300-frame stream fed in 4 kB reads, then decode each frame."""
    data = b"".join(gbt_payloads() * 100)
    reads = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    decode = gbt26875_3.CODEC.decode

    def work() -> int:
        stream = StreamBuffer(Gbt26875Framer())
        n = 0
        for chunk in reads:
            for frame in stream.feed(chunk):
                decode(RawFrame("bench", "serial.gbt26875.3", frame, AT, {"device_id": "dev"}))
                n += 1
        return n

    return work


def checksum_baseline() -> Callable[[], int]:
    """The baseline: the GB/T sum over each frame body and nothing else."""
    batch = gbt_payloads() * 100

    def work() -> int:
        for payload in batch:
            _ = sum(payload[2:-3]) & 0xFF
        return len(batch)

    return work


def run(seconds: float) -> dict[str, float]:
    """Measure every figure, sharing `seconds` between them."""
    jobs: dict[str, Callable[[], int]] = {
        "baseline_gbt_checksum_per_s": checksum_baseline(),
        "gbt26875_frames_per_s": decoding(gbt26875_3.CODEC, gbt_payloads()),
        "gbt26875_stream_frames_per_s": gbt_stream(),
        "contact_id_lines_per_s": decoding(
            ademco_contact_id.CODEC,
            [
                ademco_contact_id.CODEC.encode({"event_code": c, "zone": 7})
                for c in ("131", "110", "401")
            ],
        ),
        "sia_dc09_messages_per_s": decoding(
            sia_dc09.CODEC,
            [
                sia_dc09.CODEC.encode({"event_code": "131", "zone": 3, "at": AT}),
                sia_dc09.CODEC.encode({"id": "SIA-DCS", "sia_code": "FA", "zone": 15}),
            ],
        ),
        "modbus_responses_per_s": decoding(
            dfrobot_sen0492.CODEC,
            [
                dfrobot_sen0492.CODEC.encode({"distance_mm": 1803}),
                dfrobot_sen0310.CODEC.encode({"distance_mm": 120}),
            ],
        ),
    }
    share = seconds / len(jobs)
    figures = {name: rate(work, share) for name, work in jobs.items()}
    base = figures["baseline_gbt_checksum_per_s"]
    for name in list(figures):
        if name != "baseline_gbt_checksum_per_s":
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
            f"{name:<{width}}  {value:,.3f}"
            if name.endswith("_ratio")
            else f"{name:<{width}}  {value:,.0f}"
        )


if __name__ == "__main__":
    main()
