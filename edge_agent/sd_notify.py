"""A tiny systemd notifier: READY, WATCHDOG, STATUS and STOPPING over $NOTIFY_SOCKET (no dependency)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class SdNotifier:
    """Sends `sd_notify` datagrams; a silent no-op when not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        """Read `NOTIFY_SOCKET` and `WATCHDOG_USEC` from `environ` (default: the process environment)."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written with a leading "@" and means a leading NUL byte.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog_for_us = not pid or pid == str(os.getpid())
        self.watchdog_interval_s: float | None = (
            int(usec) / 2_000_000 if usec.isdigit() and int(usec) > 0 and watchdog_for_us else None
        )
        self.sent = 0

    @property
    def enabled(self) -> bool:
        """Whether a notify socket was given."""
        return bool(self.address)

    def notify(self, *fields: str) -> bool:
        """Send `KEY=value` fields in one datagram; return False if nothing could be sent."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(fields).encode())
        except OSError:
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        """Tell systemd the service is up."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        """Pet the watchdog."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """Tell systemd the service is shutting down."""
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        """Set the status line `systemctl status` shows."""
        return self.notify(f"STATUS={text}")
