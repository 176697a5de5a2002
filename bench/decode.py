"""All decoding benchmarks in one table: serial/IP/Modbus (`decode_serial`) and LoRaWAN/Zigbee2MQTT.

`.venv/bin/python -m bench.decode [seconds]` (from the repository root) runs both modules, each for half of `seconds`, and
prints one table; `run(seconds)` returns the merged figures, prefixed `serial.` and `lorawan.`.
"""

from __future__ import annotations

import sys

from bench import decode_lorawan, decode_serial


def run(seconds: float) -> dict[str, float]:
    """Run both decoding benchmarks and merge their figures."""
    figures: dict[str, float] = {}
    for prefix, module in (("serial", decode_serial), ("lorawan", decode_lorawan)):
        figures |= {f"{prefix}.{name}": value for name, value in module.run(seconds / 2).items()}
    return figures


def main() -> None:
    """Print the merged figures as one table."""
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 12.0
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
