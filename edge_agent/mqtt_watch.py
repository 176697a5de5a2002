"""Noticing that an aiomqtt connection is gone while nothing is being sent.

aiomqtt reports a lost connection only to a message iterator or to the next publish. A client that
is idle between publishes (the uplink with nothing queued, the local actions between alarms) would
otherwise go on believing it is connected, and the lost connection's error would never be read.
"""

from __future__ import annotations

import aiomqtt


async def until_disconnected(client: aiomqtt.Client) -> None:
    """Wait until `client` loses its connection, then raise the `aiomqtt.MqttError` saying why.

    For clients that subscribe to nothing (any message that does arrive is ignored).
    """
    async for _ in client.messages:
        pass
    raise aiomqtt.MqttError("the message stream ended")
