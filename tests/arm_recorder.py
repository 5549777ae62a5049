"""The ARM tests' recording MMIO device, shared by tests/kvm_armv8 and tests/kvm_arm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmbase.sim.bus import Device


class Recorder(Device):
    """The tests' MMIO device: logs (offset, size, value) of every write and
    answers reads with ``PATTERN + offset``, cut to the access size.
    ``on_write(offset, value)`` is called after each write."""

    PATTERN = 0xF0E0D0C0B0A09080

    def __init__(self, name: str = "recorder") -> None:
        super().__init__(name)
        self.writes: list[tuple[int, int, int]] = []
        self.reads: list[tuple[int, int]] = []
        self.on_write: Callable[[int, int], None] | None = None

    def read(self, offset: int, size: int) -> int:
        self.reads.append((offset, size))
        return (self.PATTERN + offset) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes.append((offset, size, value))
        if self.on_write is not None:
            self.on_write(offset, value)

    def serialize(self) -> dict[str, Any]:
        return {"writes": [list(w) for w in self.writes]}

    def unserialize(self, state: dict[str, Any]) -> None:
        self.writes = [(int(o), int(s), int(v)) for o, s, v in state["writes"]]
