"""Modbus RTU pollers: one pymodbus client per RS-485 bus, one polling loop per device.

pymodbus owns framing and CRC. Each device is read every `interval_s` (of the agent's clock, so a
simulated clock polls as often in simulated time), each request bounded by the
device's `timeout_s`. Each block's answer becomes one RawFrame for the device's codec in the codec
contract of `firmware_adapters.modbus_codec`: the response ADU (rebuilt from the registers pymodbus
checked) with the first register in `meta["address"]`, the register kind in `meta["table"]`
(`holding` or `input`) and the device's own `meta` (a generic table's `register_table`). A device that stops
answering gets a fault reading (once) until it answers again; a bus whose port disappears is
reconnected with jittered backoff. A poll that fails unforeseen (not a Modbus error) counts as a
failed poll and a `codec_error` of the device's codec, logged with its traceback once per kind; the
other devices of the bus keep being polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException

from core.clock import wall_interval
from core.types import RawFrame
from edge_agent.dead_letter import FailureLog
from edge_agent.sources.base import Backoff, SourceContext
from firmware_adapters.errors import DecodeReason
from firmware_adapters.framing.modbus_rtu import build_response

_LOG = logging.getLogger(__name__)
_FUNCTION: Final = {"holding": 3, "input": 4}


@dataclass(frozen=True, slots=True)
class Block:
    """Registers read in one request: `table` is `holding` or `input`."""

    table: str
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class PolledDevice:
    """A device on the bus and how to poll it."""

    device_id: str
    codec_id: str
    slave: int
    interval_s: float
    timeout_s: float
    blocks: tuple[Block, ...]
    meta: Mapping[str, str] = field(default_factory=dict)
    """Carried in every frame's `meta` for the codec (`register_table` of a generic table)."""


class ModbusPollError(Exception):
    """A poll got no valid answer (timeout, exception response, lost bus)."""


class ModbusBusSource:
    """Polls every device bound to one RS-485 bus."""

    def __init__(
        self,
        *,
        name: str,
        port: str,
        devices: Sequence[PolledDevice],
        ctx: SourceContext,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        backoff: Backoff | None = None,
    ) -> None:
        """Prepare the bus; nothing is opened until `run()`."""
        self.name = name
        self.port = port
        self.devices = tuple(devices)
        self.ctx = ctx
        self.backoff = backoff or Backoff(first=0.5, maximum=30.0)
        timeout = max((d.timeout_s for d in self.devices), default=1.0)
        self.client = AsyncModbusSerialClient(
            port,
            framer=FramerType.RTU,
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
            name=name,
        )
        self._lock = asyncio.Lock()
        self._failures = FailureLog(_LOG)
        self.polls_ok = 0
        self.polls_failed = 0

    async def run(self) -> None:
        """Connect and poll every device until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                for device in self.devices:
                    group.create_task(self._poll_loop(device), name=f"modbus-{device.device_id}")
        finally:
            self.client.close()

    async def _ensure_connected(self) -> None:
        while not self.client.connected:
            with contextlib.suppress(ModbusException, OSError):
                if await self.client.connect():
                    self.backoff.reset()
                    return
            await asyncio.sleep(wall_interval(self.ctx.clock, self.backoff.next_delay()))

    async def _poll_loop(self, device: PolledDevice) -> None:
        loop = asyncio.get_running_loop()
        faulty = False
        next_at = loop.time()
        while True:
            try:
                frames = await self.poll(device)
            except Exception as err:  # noqa: BLE001 - one device's failure must not stop the bus
                self.polls_failed += 1
                if isinstance(err, ModbusPollError):
                    _LOG.debug("modbus %s: %s", device.device_id, err)
                else:  # unforeseen (building the frame, the client): counted like a codec bug
                    self._failures.report(device.codec_id, f"polling {device.device_id}", err)
                    self.ctx.stats.count_decode_error(
                        device.codec_id, DecodeReason.CODEC_ERROR.value
                    )
                if not faulty:
                    faulty = True
                    await self.ctx.fault(device.device_id, True)  # noqa: FBT003
            else:
                self.polls_ok += 1
                if faulty:
                    faulty = False
                    await self.ctx.fault(device.device_id, False)  # noqa: FBT003
                for frame in frames:
                    await self.ctx.submit(frame)
            next_at = max(next_at + wall_interval(self.ctx.clock, device.interval_s), loop.time())
            await asyncio.sleep(next_at - loop.time())

    async def poll(self, device: PolledDevice) -> list[RawFrame]:
        """Read every block of `device` once; return one frame per block.

        Raises:
            ModbusPollError: no valid answer within the device's timeout.
        """
        async with self._lock:
            await self._ensure_connected()
            answers = [(block, await self._read(device, block)) for block in device.blocks]
        now = self.ctx.clock.now()
        return [
            RawFrame(
                source_id=self.name,
                codec_id=device.codec_id,
                payload=build_response(device.slave, registers, _FUNCTION[block.table]),
                received_at=now,
                meta={
                    "device_id": device.device_id,
                    "slave": str(device.slave),
                    "address": str(block.address),
                    "table": block.table,
                    **device.meta,
                },
            )
            for block, registers in answers
        ]

    async def _read(self, device: PolledDevice, block: Block) -> list[int]:
        read = (
            self.client.read_input_registers
            if block.table == "input"
            else self.client.read_holding_registers
        )
        try:
            async with asyncio.timeout(device.timeout_s):
                response = await read(block.address, count=block.count, device_id=device.slave)
        except TimeoutError as err:
            raise ModbusPollError(f"no answer within {device.timeout_s} s") from err
        except (ModbusException, OSError) as err:
            if not self.client.connected:
                self.client.close()
            raise ModbusPollError(str(err)) from err
        if response.isError():
            raise ModbusPollError(f"exception response {response}")
        registers: list[int] = list(response.registers)
        if len(registers) != block.count:
            raise ModbusPollError(f"{len(registers)} registers, asked for {block.count}")
        return registers
