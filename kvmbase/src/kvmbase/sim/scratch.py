"""A small register file on the bus: reads return what was written."""

from __future__ import annotations

from typing import Any

from kvmbase.sim.bus import Device


class ScratchDevice(Device):
    """``size`` bytes of device memory; counts reads and writes."""

    def __init__(self, name: str, size: int) -> None:
        super().__init__(name)
        self.data = bytearray(size)
        self.reads = 0
        self.writes = 0

    def read(self, offset: int, size: int) -> int:
        self.reads += 1
        return int.from_bytes(self.data[offset : offset + size], "little")

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes += 1
        self.data[offset : offset + size] = value.to_bytes(size, "little")

    def serialize(self) -> dict[str, Any]:
        return {"data": self.data.hex(), "reads": self.reads, "writes": self.writes}

    def unserialize(self, state: dict[str, Any]) -> None:
        self.data = bytearray.fromhex(state["data"])
        self.reads, self.writes = int(state["reads"]), int(state["writes"])
