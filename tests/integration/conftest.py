"""Fixtures of the end-to-end tests."""

from agent_process import notify_socket

__all__ = ["notify_socket"]
