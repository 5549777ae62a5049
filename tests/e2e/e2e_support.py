"""Helpers of the end-to-end tests: images, recording devices.

The machine configs come from ``x86_machines.machine_config``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kvmbase import Machine
from kvmbase.sim.bus import Device

GUESTS = Path(__file__).parent / "guests"
PORT_VALUES = 0xE0
PORT_RESULT = 0xE1


def patched_image(guest_dir: Path, name: str, tmp_path: Path, iterations: int) -> Path:
    """A copy of ``name``.bin with the quad at offset +8 set to ``iterations``."""
    data = bytearray((guest_dir / f"{name}.bin").read_bytes())
    data[8:16] = iterations.to_bytes(8, "little")
    path = tmp_path / f"{name}-{iterations}.bin"
    path.write_bytes(bytes(data))
    return path


class PortRecorder(Device):
    """Records every value written to it; can stop the run after N writes."""

    def __init__(self, name: str, stop_after: int | None = None) -> None:
        super().__init__(name)
        self.values: list[int] = []
        self.stop_after = stop_after
        self.on_stop: Callable[[], None] | None = None

    def write(self, offset: int, size: int, value: int) -> None:
        self.values.append(value)
        if self.stop_after is not None and len(self.values) == self.stop_after:
            assert self.on_stop is not None
            self.on_stop()

    def read(self, offset: int, size: int) -> int:
        return 0

    def serialize(self) -> dict[str, Any]:
        return {"values": list(self.values)}

    def unserialize(self, state: dict[str, Any]) -> None:
        self.values = list(state["values"])


def attach_recorders(
    machine: Machine, stop_after: int | None = None
) -> tuple[PortRecorder, PortRecorder]:
    """Record port 0xE0 (optionally stopping after N writes) and port 0xE1."""
    values = PortRecorder("values", stop_after)
    values.on_stop = lambda: machine.stop("recorder asked to stop")
    result = PortRecorder("result")
    machine.add_device(values, machine.port_address(PORT_VALUES), 1)
    machine.add_device(result, machine.port_address(PORT_RESULT), 1)
    return values, result
