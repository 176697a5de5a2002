"""Streaming framers: consume bytes, return a frame or nothing (the pymodbus framer contract)."""
