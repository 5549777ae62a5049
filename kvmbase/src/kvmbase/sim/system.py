"""The embedded simulation host: time, RAM, the device bus and the CPUs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmbase.errors import SimulationError
from kvmbase.sim.bus import Bus, BusMapping, Device
from kvmbase.sim.eventq import MAX_TICK, EventQueue, ExitEvent
from kvmbase.sim.memory import GuestMemory

if TYPE_CHECKING:
    from kvmbase.cpu import BaseKvmCPU


class System:
    """A machine's simulated side.  A larger simulator can stand in for it
    by offering the same attributes (``event_queue``, ``bus``, ``memories``).
    """

    def __init__(self) -> None:
        self.event_queue = EventQueue()
        self.bus = Bus()
        self.memories: list[GuestMemory] = []
        self.cpus: list[BaseKvmCPU] = []
        self.started = False

    @property
    def cur_tick(self) -> int:
        return self.event_queue.cur_tick

    # -- composition ----------------------------------------------------
    def add_memory(self, base: int, size: int, name: str = "ram") -> GuestMemory:
        for memory in self.memories:
            if memory.base < base + size and base < memory.end:
                raise ValueError(f"{name} at {base:#x}+{size:#x} overlaps {memory.name}")
        memory = GuestMemory(base, size, name)
        self.memories.append(memory)
        return memory

    def attach_device(self, device: Device, start: int, size: int) -> BusMapping:
        for memory in self.memories:
            if memory.base < start + size and start < memory.end:
                raise ValueError(f"{device.name} at {start:#x}+{size:#x} overlaps {memory.name}")
        return self.bus.attach(device, start, size)

    def add_cpu(self, cpu: BaseKvmCPU) -> None:
        self.cpus.append(cpu)

    # -- guest memory ---------------------------------------------------
    def memory_for(self, address: int, length: int = 1) -> GuestMemory:
        for memory in self.memories:
            if memory.contains(address, length):
                return memory
        raise IndexError(f"{length} bytes at guest {address:#x} are not in RAM")

    def read_memory(self, address: int, length: int) -> bytes:
        return self.memory_for(address, length).read(address, length)

    def write_memory(self, address: int, data: bytes | bytearray | memoryview) -> None:
        self.memory_for(address, len(data)).write(address, data)

    # -- running --------------------------------------------------------
    def startup(self) -> None:
        """Create every vCPU (once); the first also starts the VM."""
        if not self.started:
            for cpu in self.cpus:
                cpu.startup()
            self.started = True

    def run(self, until: int = MAX_TICK) -> ExitEvent:
        """Simulate until something asks to stop, ``until``, or nothing is left."""
        self.startup()
        return self.event_queue.run(until)

    def exit_simulation(self, cause: str, code: int = 0) -> None:
        """End the current :meth:`run` after the event being served."""
        self.event_queue.exit_loop(cause, code)

    def request_stop(self, cause: str = "stopped by request", code: int = 0) -> None:
        """Stop a run from any thread: flag the queue, kick every vCPU."""
        self.event_queue.exit_loop(cause, code)
        for cpu in self.cpus:
            cpu.kick()

    # -- draining -------------------------------------------------------
    def drain(self) -> None:
        """Bring every CPU to a state a checkpoint or a switch can take."""
        self.startup()
        pending = [cpu for cpu in self.cpus if not cpu.drain()]
        queue = self.event_queue
        while pending:
            if not queue.service_one():
                names = ", ".join(cpu.name for cpu in pending)
                raise SimulationError(f"no events left, but {names} did not drain")
            pending = [cpu for cpu in pending if not cpu.drained]

    def drain_resume(self) -> None:
        for cpu in self.cpus:
            cpu.drain_resume()

    def close(self) -> None:
        for cpu in self.cpus:
            cpu.close()
        for device in self.bus.devices():
            device.close()
        for memory in self.memories:
            memory.close()
