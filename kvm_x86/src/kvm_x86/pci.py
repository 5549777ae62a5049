"""The PCI host: configuration mechanism #1 at ports 0xCF8-0xCFF.

Software writes a dword to CONFIG_ADDRESS (port 0xCF8)::

    bit 31      enable
    bits 23:16  bus
    bits 15:11  device (slot)
    bits 10:8   function
    bits 7:2    dword of configuration space

and then reads or writes the addressed dword through CONFIG_DATA (ports
0xCFC-0xCFF); a byte or word access at 0xCFC + k reaches byte k of the dword.
Only bus 0 exists.  A read of a function nobody holds, or with the enable bit
clear, returns all ones; such writes are dropped.  CONFIG_ADDRESS reads back
exactly what was written.  Byte and word accesses to ports 0xCF8-0xCFB are not
configuration accesses (on a PC, 0xCF9 is the reset register): they read all
ones and change nothing.
"""

from __future__ import annotations

from typing import Any, Final

from kvm_x86.pci_config import HOST_NAME, HOST_PORT, HOST_PORTS, PciConfig, PciScratchConfig
from kvm_x86.pci_devices import PciFunction, ScratchPciDevice
from kvmbase.errors import CheckpointError, ConfigurationError
from kvmbase.machine import Machine
from kvmbase.sim.bus import Device
from kvmbase.sim.system import System

CONFIG_ADDRESS_PORT: Final = HOST_PORT
CONFIG_DATA_PORT: Final = 0xCFC

CONFIG_ENABLE: Final = 1 << 31
_DATA: Final = CONFIG_DATA_PORT - CONFIG_ADDRESS_PORT
_ONES: Final = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}


def config_address(slot: int, function: int = 0, register: int = 0, *, bus: int = 0) -> int:
    """The CONFIG_ADDRESS value that selects a register, enable bit set."""
    return CONFIG_ENABLE | bus << 16 | slot << 11 | function << 8 | (register & 0xFC)


def location(slot: int, function: int) -> str:
    """``00:SS.F``, as Linux names a function on bus 0."""
    return f"00:{slot:02x}.{function}"


class PciHost(Device):
    """Routes configuration accesses to the functions on bus 0, by (slot, function)."""

    def __init__(self, system: System, name: str = HOST_NAME) -> None:
        super().__init__(name)
        self.system = system
        #: CONFIG_ADDRESS, as software last wrote it
        self.address = 0
        self.functions: dict[tuple[int, int], PciFunction] = {}

    def add(self, function: PciFunction, slot: int, number: int = 0) -> PciFunction:
        """Put ``function`` at 00:``slot``.``number`` and let it map its BARs."""
        if not 0 <= slot <= 31 or not 0 <= number <= 7:
            raise ConfigurationError(f"{function.name}: no PCI slot {slot} function {number}")
        key = (slot, number)
        if key in self.functions:
            raise ConfigurationError(
                f"{function.name}: {location(*key)} is taken by {self.functions[key].name}"
            )
        self.functions[key] = function
        # Function 0 announces whether software should probe functions 1-7.
        first = self.functions.get((slot, 0))
        if first is not None:
            first.set_multi_function(any(s == slot and f for s, f in self.functions))
        function.attach(self.system)
        return function

    def selected(self) -> PciFunction | None:
        """The function CONFIG_ADDRESS selects, or None."""
        address = self.address
        if not address & CONFIG_ENABLE or address & 0x00FF0000:  # bus 0 only
            return None
        return self.functions.get(((address >> 11) & 0x1F, (address >> 8) & 0x7))

    # -- port accesses ---------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset < _DATA:
            return self.address if offset == 0 and size == 4 else _ONES[size]
        byte = offset - _DATA
        function = self.selected()
        if function is None or byte + size > 4:
            return _ONES[size]
        return function.config_read((self.address & 0xFC) + byte, size)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset < _DATA:
            if offset == 0 and size == 4:
                self.address = value
            return
        byte = offset - _DATA
        function = self.selected()
        if function is not None and byte + size <= 4:
            function.config_write((self.address & 0xFC) + byte, size, value)

    # -- checkpoints -------------------------------------------------------------
    def serialize(self) -> dict[str, Any]:
        return {
            "config_address": self.address,
            "functions": {
                location(*key): {"name": function.name, **function.serialize()}
                for key, function in sorted(self.functions.items())
            },
        }

    def unserialize(self, state: dict[str, Any]) -> None:
        saved = {where: entry["name"] for where, entry in state["functions"].items()}
        have = {location(*key): function.name for key, function in self.functions.items()}
        if saved != have:
            raise CheckpointError(
                f"{self.name}: PCI devices differ: checkpoint has {dict(sorted(saved.items()))}, "
                f"machine has {dict(sorted(have.items()))}"
            )
        # Take every window down first, so that windows trading places
        # never meet on the bus.
        for function in self.functions.values():
            function.detach()
        self.address = int(state["config_address"])
        for key, function in self.functions.items():
            function.unserialize(state["functions"][location(*key)])

    def close(self) -> None:
        for function in self.functions.values():
            function.detach()


def make_device(config: PciScratchConfig) -> PciFunction:
    """The PCI function a device entry of the config describes."""
    return ScratchPciDevice(
        config.name,
        vendor_id=config.vendor_id,
        device_id=config.device_id,
        class_code=config.class_code,
        memory_size=config.memory_size,
        io_bar=config.io_bar,
        revision=config.revision,
        subsystem_vendor_id=config.subsystem_vendor_id,
        subsystem_id=config.subsystem_id,
        interrupt_pin=config.interrupt_pin,
    )


def setup_pci(machine: Machine, config: PciConfig) -> PciHost | None:
    """Put the PCI host on ports 0xCF8-0xCFF with the configured devices.

    Returns None, and adds nothing, when the config disables PCI.
    """
    if not config.enabled:
        return None
    host = PciHost(machine.system)
    machine.add_device(host, machine.port_address(CONFIG_ADDRESS_PORT), HOST_PORTS)
    for device in config.devices:
        host.add(make_device(device), device.slot, device.function)
    return host
