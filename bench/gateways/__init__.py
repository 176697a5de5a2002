"""Side-by-side gateway benchmark: Steward's agent, ThingsBoard IoT Gateway and the broker alone.

`bench/compare_gateways.py` is the entry point; the modules here hold its parts: Zigbee2MQTT-style
payloads (`payloads`), delivery statistics (`stats`), /proc sampling (`procstat`), the load generator
(`load`), the uplink receiver (`receiver`), the gateways under test (`targets`) and the runs
(`scenarios`).
"""
