"""A fake MQTT broker that answers CONNECT and SUBSCRIBE, then sends whatever bytes it is given."""

from __future__ import annotations

import asyncio
from typing import Self


class HostileBroker:
    """Accepts one client, answers CONNECT and SUBSCRIBE, then sends the bytes it was given."""

    def __init__(self, after_suback: bytes, *, granted: bytes = b"\x01") -> None:
        """`granted` is the SUBACK's return codes, one per topic (0x80: refused)."""
        self.after_suback = after_suback
        self.granted = granted
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # CONNECT
        writer.write(b"\x20\x02\x00\x00")  # CONNACK accepted
        subscribe = await reader.read(1024)
        packet_id = subscribe[2:4]
        writer.write(bytes([0x90, 2 + len(self.granted)]) + packet_id + self.granted)  # SUBACK
        writer.write(b"\x30\x05\x00\x01zok" + self.after_suback)
        await writer.drain()
        await asyncio.sleep(5)
        writer.close()
