"""Codecs for the `lorawan` transport; CODECS lists every module's CODEC explicitly."""

from __future__ import annotations

from firmware_adapters.codec import Codec
from firmware_adapters.codecs.lorawan import (
    dingtek_dc410,
    dingtek_df702,
    dragino_dds75_lb,
    dragino_ldds20,
    dragino_ldds75,
    dragino_lds02,
    milesight_em310_tilt,
    milesight_em310_udl,
    milesight_em320_tilt,
    milesight_em400_mud,
    milesight_em400_udl,
    milesight_em500_udl,
    milesight_gs524n,
    milesight_ws202,
    milesight_ws301,
)

CODECS: tuple[Codec, ...] = (
    milesight_em310_udl.CODEC,
    milesight_em400_udl.CODEC,
    milesight_em400_mud.CODEC,
    milesight_em500_udl.CODEC,
    milesight_em310_tilt.CODEC,
    milesight_em320_tilt.CODEC,
    milesight_gs524n.CODEC,
    milesight_ws301.CODEC,
    milesight_ws202.CODEC,
    dragino_ldds75.CODEC,
    dragino_ldds20.CODEC,
    dragino_dds75_lb.CODEC,
    dragino_lds02.CODEC,
    dingtek_df702.CODEC,
    dingtek_dc410.CODEC,
)
