"""The device bus: guest-physical address ranges mapped to devices."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Any


class Device:
    """A device on the bus.  Subclasses answer reads and writes by offset.

    An atomic device answers at once.  A timing device (``timing = True``)
    answers later: the bus calls :meth:`start_read` or :meth:`start_write` and
    the device calls ``done`` from an event of its own when it has the answer.
    """

    timing: bool = False
    #: ticks an access takes, charged to the CPU that makes it
    latency: int = 0
    #: False for a view whose state its owner saves (a PCI BAR window):
    #: checkpoints then neither save it nor expect it when restoring
    checkpointed: bool = True

    def __init__(self, name: str) -> None:
        self.name = name

    def read(self, offset: int, size: int) -> int:
        raise NotImplementedError(f"{self.name} cannot be read")

    def write(self, offset: int, size: int, value: int) -> None:
        raise NotImplementedError(f"{self.name} cannot be written")

    def start_read(self, offset: int, size: int, done: Callable[[int], None]) -> None:
        done(self.read(offset, size))

    def start_write(
        self, offset: int, size: int, value: int, done: Callable[[], None]
    ) -> None:
        self.write(offset, size, value)
        done()

    def serialize(self) -> dict[str, Any]:
        """The device's state for a checkpoint (JSON types only)."""
        return {}

    def unserialize(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`serialize` produced."""

    def flush(self) -> None:
        """Push out buffered output (consoles do); called when a run ends."""

    def close(self) -> None:
        """Release host resources (files, threads)."""


class BusMapping:
    """One device mapped at ``[start, end)``."""

    __slots__ = ("device", "end", "start")

    def __init__(self, start: int, end: int, device: Device) -> None:
        self.start = start
        self.end = end
        self.device = device

    def __repr__(self) -> str:
        return f"<{self.device.name} at [{self.start:#x}, {self.end:#x})>"


class Bus:
    """Routes accesses by address; remembers the last hit, since exits repeat."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        #: the mapping hit last (exits repeat addresses); check it first
        self._mappings: list[BusMapping] = []
        self.last = BusMapping(0, 0, Device("nothing"))

    def attach(self, device: Device, start: int, size: int) -> BusMapping:
        if size <= 0:
            raise ValueError(f"{device.name}: mapping size must be positive")
        mapping = BusMapping(start, start + size, device)
        index = bisect.bisect_left(self._starts, start)
        for neighbour in self._mappings[max(0, index - 1) : index + 1]:
            if neighbour.start < mapping.end and mapping.start < neighbour.end:
                raise ValueError(
                    f"{device.name} at [{start:#x}, {mapping.end:#x}) overlaps {neighbour!r}"
                )
        self._starts.insert(index, start)
        self._mappings.insert(index, mapping)
        return mapping

    def detach(self, device: Device) -> None:
        for index, mapping in enumerate(self._mappings):
            if mapping.device is device:
                del self._starts[index]
                del self._mappings[index]
                break
        if self.last.device is device:
            self.last = BusMapping(0, 0, Device("nothing"))

    def find(self, address: int) -> BusMapping | None:
        """The mapping holding ``address``, or None."""
        last = self.last
        if last.start <= address < last.end:
            return last
        index = bisect.bisect_right(self._starts, address) - 1
        if index >= 0:
            mapping = self._mappings[index]
            if address < mapping.end:
                self.last = mapping
                return mapping
        return None

    def __iter__(self) -> Iterator[BusMapping]:
        return iter(list(self._mappings))

    def devices(self) -> list[Device]:
        return [mapping.device for mapping in self._mappings]
