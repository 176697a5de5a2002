"""Modbus RTU level sensors: a pymodbus server on one end of a socat pty pair (one RS-485 line).

Register contents come from the codec's encoder: `CODEC.encode(values)` builds the response ADU a
slave sends for a block read of its register table; the data words of that ADU are what the server
holds at the table's first address. Several slaves can share a line. Reads of registers nobody set
return 0; reads for an absent slave id get pymodbus's exception response (bus silence cannot be
simulated with pymodbus: its serial server answers every slave id).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Self

from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware_adapters.codec import Codec
from firmware_adapters.registry import get_codec
from simulators.serial_pty import SocatPair

REGISTER_SPACE = 0x400
"""Registers each simulated slave answers for (0 .. REGISTER_SPACE-1)."""


def _table_module(codec: Codec) -> ModuleType:
    """The module of a table-based Modbus codec (its id mirrors its module path)."""
    transport, vendor, model = codec.id.split(".")
    module = importlib.import_module(f"firmware_adapters.codecs.{transport}.{vendor}_{model}")
    if getattr(module, "TABLE", None) is None:
        raise ValueError(f"{codec.id} has no register table to simulate")
    return module


def table_start(codec: Codec) -> tuple[int, int]:
    """`(first register, default slave)` of a table-based Modbus codec."""
    module = _table_module(codec)
    return int(module.TABLE.first), int(getattr(module, "DEFAULT_SLAVE", 1))


def table_size(codec: Codec) -> int:
    """How many registers one block read of a table-based Modbus codec's table covers."""
    return int(_table_module(codec).TABLE.count)


def registers_of_response(adu: bytes) -> list[int]:
    """The data words of a read-registers response ADU (slave, fc, byte count, data, CRC)."""
    count = adu[2]
    data = adu[3 : 3 + count]
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


class ModbusLine:
    """One RS-485 line: a socat pair and a pymodbus RTU server answering for its slaves."""

    def __init__(self, agent_link: Path | str, slaves: Mapping[int, str]) -> None:
        """Serve `slaves` (slave id -> codec id) on a line the agent opens at `agent_link`."""
        self.agent_link = Path(agent_link)
        self.pair = SocatPair(self.agent_link.with_name(self.agent_link.name + ".sim"), agent_link)
        self.codecs = {slave: get_codec(codec_id) for slave, codec_id in slaves.items()}
        self.registers: dict[int, dict[int, int]] = {slave: {} for slave in slaves}
        self.reads: dict[int, int] = dict.fromkeys(slaves, 0)
        self._server: ModbusSerialServer | None = None
        self._task: asyncio.Task[None] | None = None

    def set_values(self, slave: int, values: Mapping[str, object]) -> bytes:
        """Encode `values` with the slave's codec and load the registers; returns the ADU."""
        adu = self.codecs[slave].encode({**values, "slave": slave})
        self.load_response(slave, adu)
        return adu

    def load_response(self, slave: int, adu: bytes) -> None:
        """Load the registers of an ADU the slave's codec encoded earlier (offline generation)."""
        first, _ = table_start(self.codecs[slave])
        for i, word in enumerate(registers_of_response(adu)):
            self.registers[slave][first + i] = word

    def _action(self, slave: int) -> object:
        regs = self.registers[slave]

        async def action(  # noqa: PLR0917 - pymodbus calls it positionally
            function_code: int,  # noqa: ARG001 - pymodbus's action signature
            start_address: int,
            address: int,  # noqa: ARG001
            count: int,  # noqa: ARG001
            current_registers: list[int],
            set_values: list[int] | list[bool] | None,  # noqa: ARG001
        ) -> None:
            self.reads[slave] += 1
            for i in range(len(current_registers)):
                current_registers[i] = regs.get(start_address + i, 0)

        return action

    @property
    def running(self) -> bool:
        """Whether the line is plugged in and served."""
        return self._server is not None

    async def start(self) -> Self:
        """Create the pty pair and start serving (again, after `stop()`)."""
        self.pair.start()
        devices = [
            SimDevice(
                id=slave,
                simdata=[SimData(0, count=REGISTER_SPACE, datatype=DataType.UINT16)],
                action=self._action(slave),  # type: ignore[arg-type]
            )
            for slave in self.codecs
        ]
        self._server = ModbusSerialServer(
            devices, framer=FramerType.RTU, port=str(self.pair.device_link), baudrate=9600
        )
        self._task = asyncio.create_task(self._server.serve_forever(), name="modbus-line")
        await asyncio.sleep(0.05)
        return self

    async def stop(self) -> None:
        """Stop serving and remove the pty pair."""
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.pair.stop()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
