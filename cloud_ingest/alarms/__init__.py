"""Alarm instances and their events, as the API serves them."""
