"""Codec modules, one per device model, grouped by transport."""
