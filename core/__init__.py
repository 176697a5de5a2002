"""Shared types, the metric catalog, the clock and the envelope serializer; stdlib only."""
