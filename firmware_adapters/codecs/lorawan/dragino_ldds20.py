"""Dragino LDDS20 ultrasonic distance sensor (bin level), via ChirpStack, fPort 2.

The 8-byte layout, readings and encoder keys are in `firmware_adapters.dragino`.
"""

from __future__ import annotations

from firmware_adapters.dragino import distance_codec

ID = "lorawan.dragino.ldds20"
CODEC = distance_codec(ID, "Dragino LDDS20 LoRaWAN ultrasonic distance sensor", __file__)
