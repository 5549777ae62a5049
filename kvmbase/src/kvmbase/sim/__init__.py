"""The embedded simulation host: event queue, system, memory, bus, devices."""

from kvmbase.sim.bus import Bus, BusMapping, Device
from kvmbase.sim.eventq import MAX_TICK, TICKS_PER_SECOND, Event, EventQueue, ExitEvent
from kvmbase.sim.memory import GuestMemory
from kvmbase.sim.scratch import ScratchDevice
from kvmbase.sim.system import System
from kvmbase.sim.thread_context import ThreadContext, ThreadStatus
from kvmbase.sim.uart import Uart16550

__all__ = [
    "MAX_TICK",
    "TICKS_PER_SECOND",
    "Bus",
    "BusMapping",
    "Device",
    "Event",
    "EventQueue",
    "ExitEvent",
    "GuestMemory",
    "ScratchDevice",
    "System",
    "ThreadContext",
    "ThreadStatus",
    "Uart16550",
]
