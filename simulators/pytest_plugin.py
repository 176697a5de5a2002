"""Steward service fixtures for pytest (see docs/simulators.md)."""
