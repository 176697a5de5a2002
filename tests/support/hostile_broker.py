"""A fake MQTT broker that answers CONNECT and SUBSCRIBE, then sends whatever bytes it is given.

It reads the client's packets with the agent's own `PacketReader` (client-to-broker packets) and
keeps them in `received`, so a test can check what the client sent (PUBACKs, PINGREQs, the
DISCONNECT) and when.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self

from edge_agent.mqtt_wire import (
    FROM_CLIENT,
    PINGRESP,
    MqttProtocolError,
    PacketReader,
    PacketType,
    connack_packet,
    publish_packet,
    suback_packet,
)

ACCEPTED = connack_packet(0)
"""CONNACK: connection accepted."""

OK_PUBLISH = publish_packet("z", b"ok")
"""The QoS 0 message the broker sends first after the SUBACK."""


def subscribed_topics(subscribe: bytes) -> list[str]:
    """The topic filters of a SUBSCRIBE body (packet id, then length-prefixed filters and QoS)."""
    topics = []
    pos = 2
    while pos < len(subscribe):
        size = int.from_bytes(subscribe[pos : pos + 2], "big")
        topics.append(subscribe[pos + 2 : pos + 2 + size].decode())
        pos += 2 + size + 1
    return topics


class HostileBroker:
    """Accepts clients, answers CONNECT and SUBSCRIBE, then sends the bytes it was given."""

    def __init__(
        self,
        after_suback: bytes = b"",
        *,
        granted: bytes | None = None,
        connack: bytes = ACCEPTED,
        first: bytes = OK_PUBLISH,
        answer_pings: bool = True,
        close_after: bool = False,
        hold_s: float = 5.0,
    ) -> None:
        """Describe the broker's behaviour towards each client.

        Args:
            after_suback: Bytes sent after the SUBACK and `first`.
            granted: The SUBACK's return codes, one per topic (0x80: refused); by default QoS 1
                for every topic of the SUBSCRIBE.
            connack: What answers CONNECT (a refusal, or garbage); no SUBACK follows a refusal.
            first: Bytes sent right after the SUBACK, before `after_suback`.
            answer_pings: Answer PINGREQ with PINGRESP (False: a silent broker).
            close_after: Close the connection right after sending `after_suback`.
            hold_s: How long a connection stays open otherwise.
        """
        self.after_suback = after_suback
        self.granted = granted
        self.connack = connack
        self.first = first
        self.answer_pings = answer_pings
        self.close_after = close_after
        self.hold_s = hold_s
        self.port = 0
        self.connections = 0
        self.received: list[tuple[int, bytes]] = []
        """Every packet the clients sent: first byte and body, in order."""
        self.changed = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()

    def packets_of(self, kind: PacketType) -> list[bytes]:
        """The bodies of the packets of `kind` the clients sent."""
        return [body for first, body in self.received if first >> 4 == kind]

    async def until(self, kind: PacketType, count: int = 1, limit: float = 5.0) -> None:
        """Wait until the clients sent `count` packets of `kind`."""
        async with asyncio.timeout(limit):
            while len(self.packets_of(kind)) < count:
                self.changed.clear()
                await self.changed.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        held = asyncio.get_running_loop().call_later(self.hold_s, writer.close)
        try:
            await self._converse(reader, writer)
        except (ConnectionError, MqttProtocolError):
            pass
        finally:
            held.cancel()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        packets = PacketReader(accept=FROM_CLIENT)
        while chunk := await reader.read(65536):
            for first, body in packets.packets(chunk):
                self.received.append((first, body))
                self.changed.set()
                kind = first >> 4
                if kind == PacketType.CONNECT:
                    writer.write(self.connack)
                elif kind == PacketType.SUBSCRIBE:
                    granted = self.granted
                    if granted is None:
                        granted = b"\x01" * len(subscribed_topics(body))
                    writer.write(suback_packet(int.from_bytes(body[:2], "big"), granted))
                    writer.write(self.first + self.after_suback)
                    if self.close_after:
                        await writer.drain()
                        return
                elif kind == PacketType.PINGREQ and self.answer_pings:
                    writer.write(PINGRESP)
                elif kind == PacketType.DISCONNECT:
                    return
            await writer.drain()
