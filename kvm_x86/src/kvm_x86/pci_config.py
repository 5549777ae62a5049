"""The ``[x86.pci]`` section of a machine config: the PCI host and its devices.

In TOML::

    [x86.pci]
    enabled = true

    [[x86.pci.devices]]
    type = "scratch"
    name = "pci-scratch0"
    slot = 1

Without the section the machine has the PCI host at ports 0xCF8-0xCFF and one
scratch device at 00:01.0 (vendor 0x1234, device 0x7E57, class 0xFF0000).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

# The core's way to point a list-level error at one entry's key.
from kvmbase.config import _SUB_INPUT, _SUB_LOC, ConfigIssue, MachineConfig
from kvmbase.sim.uart import REGISTER_SPAN as UART_PORTS
from kvmbase.units import Address, MemorySize, format_size

#: Vendor 0x1234 is the id emulators use for their own devices (QEMU's
#: Bochs display, for one); PCI-SIG never assigned it to a real vendor.
DEFAULT_VENDOR_ID: Final = 0x1234
#: "7E57" reads as "test".
DEFAULT_DEVICE_ID: Final = 0x7E57
#: Base class 0xFF: "device does not fit any defined class".
DEFAULT_CLASS_CODE: Final = 0xFF0000
DEFAULT_SUBSYSTEM_ID: Final = 0x0001
DEFAULT_DEVICE_NAME: Final = "pci-scratch0"
DEFAULT_SLOT: Final = 1

#: the PCI host: CONFIG_ADDRESS at 0xCF8, CONFIG_DATA at 0xCFC-0xCFF
HOST_PORT: Final = 0xCF8
HOST_PORTS: Final = 8
HOST_NAME: Final = "pci"

MIN_MEMORY_SIZE: Final = 16  # the smallest memory BAR PCI allows
MAX_MEMORY_SIZE: Final = 1 << 20  # checkpoints hold it as hex text


class PciScratchConfig(BaseModel):
    """A PCI function with a register file behind BAR0 (32-bit MMIO), plain
    memory behind BAR2 (64-bit prefetchable MMIO) and, optionally, the first
    16 registers behind BAR4 (IO ports)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["scratch"] = Field(default="scratch", description="Device kind.")
    name: str = Field(
        min_length=1,
        description="Unique device name; its BAR windows on the bus are called <name>.bar<index>.",
    )
    slot: int = Field(ge=0, le=31, description="Device number on bus 0 (0 to 31).")
    function: int = Field(default=0, ge=0, le=7, description="Function number (0 to 7).")
    vendor_id: Address = Field(
        default=DEFAULT_VENDOR_ID,
        le=0xFFFE,
        description="Vendor ID (0xFFFF is what an absent device reads as, so not allowed).",
    )
    device_id: Address = Field(default=DEFAULT_DEVICE_ID, le=0xFFFF, description="Device ID.")
    revision: Address = Field(default=1, le=0xFF, description="Revision ID.")
    class_code: Address = Field(
        default=DEFAULT_CLASS_CODE,
        le=0xFFFFFF,
        description="Class code: base class << 16 | subclass << 8 | programming interface.",
    )
    subsystem_vendor_id: Address = Field(
        default=DEFAULT_VENDOR_ID, le=0xFFFF, description="Subsystem vendor ID."
    )
    subsystem_id: Address = Field(
        default=DEFAULT_SUBSYSTEM_ID, le=0xFFFF, description="Subsystem ID."
    )
    interrupt_pin: int = Field(
        default=0,
        ge=0,
        le=4,
        description="Interrupt pin register: 0 none (the device raises no interrupt), "
        "1 to 4 INTA# to INTD#.",
    )
    memory_size: MemorySize = Field(
        default="64KiB",
        validate_default=True,
        description="Bytes of memory behind BAR2: a power of two from 16 B to 1 MiB.",
    )
    io_bar: bool = Field(
        default=True,
        description="Also decode the first 16 bytes of the register file as IO ports (BAR4).",
    )

    @field_validator("memory_size")
    @classmethod
    def _check_memory_size(cls, size: int) -> int:
        if size & (size - 1) or not MIN_MEMORY_SIZE <= size <= MAX_MEMORY_SIZE:
            raise ValueError(
                f"{format_size(size)} is not a power of two from "
                f"{format_size(MIN_MEMORY_SIZE)} to {format_size(MAX_MEMORY_SIZE)}"
            )
        return size

    @property
    def location(self) -> str:
        """``00:SS.F``: bus, slot and function as Linux prints them."""
        return f"00:{self.slot:02x}.{self.function}"


def _default_devices() -> list[PciScratchConfig]:
    return [PciScratchConfig(name=DEFAULT_DEVICE_NAME, slot=DEFAULT_SLOT)]


class PciConfig(BaseModel):
    """The PCI host (configuration mechanism #1 at ports 0xCF8-0xCFF) and the
    devices on its bus 0."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True,
        description="Put the PCI host on ports 0xCF8-0xCFF; false leaves those ports free "
        "and ignores 'devices'.",
    )
    devices: list[PciScratchConfig] = Field(
        default_factory=_default_devices,
        description="Devices on bus 0; by default one scratch device at 00:01.0.",
    )

    @field_validator("devices")
    @classmethod
    def _check_devices(cls, devices: list[PciScratchConfig]) -> list[PciScratchConfig]:
        names: dict[str, int] = {}
        locations: dict[tuple[int, int], int] = {}
        for index, device in enumerate(devices):
            if device.name in names:
                raise _device_error(
                    index,
                    "name",
                    device.name,
                    f"PCI device name {device.name!r} is already used by device "
                    f"{names[device.name]}",
                )
            names[device.name] = index
            key = (device.slot, device.function)
            if key in locations:
                raise _device_error(
                    index,
                    "slot",
                    device.slot,
                    f"{device.location} is already taken by device {locations[key]}",
                )
            locations[key] = index
        for (slot, function), index in locations.items():
            # Software probes functions 1-7 only when function 0 exists.
            if function and (slot, 0) not in locations:
                raise _device_error(
                    index,
                    "function",
                    function,
                    f"slot {slot} has function {function} but no function 0",
                )
        return devices


def _device_error(index: int, key: str, value: object, message: str) -> PydanticCustomError:
    """A config error located at ``devices[index].key``, not at the whole list."""
    return PydanticCustomError(
        "pci_device", "{message}", {"message": message, _SUB_LOC: (index, key), _SUB_INPUT: value}
    )


def pci_config_issues(
    config: MachineConfig, pci: PciConfig, prefix: tuple[str, ...] = ("x86", "pci")
) -> list[ConfigIssue]:
    """Conflicts between the PCI host and the machine's other devices.

    The host takes ports 0xCF8-0xCFF and the device name ``pci``; its
    devices' BAR windows are named ``<name>.bar<index>``.  ``prefix`` is
    where ``pci`` sits in the config, for the messages.
    """
    if not pci.enabled:
        return []
    section = ".".join(prefix)
    taken = {HOST_NAME} | {
        f"{device.name}.bar{index}" for device in pci.devices for index in (0, 2, 4)
    }
    issues: list[ConfigIssue] = []
    for index, device in enumerate(config.devices):
        if device.name in taken:
            issues.append(
                ConfigIssue(
                    ("devices", index, "name"),
                    f"the name {device.name!r} belongs to the PCI host or its devices ({section})",
                    device.name,
                )
            )
        port = getattr(device, "port", None)
        if port is not None and port < HOST_PORT + HOST_PORTS and port + UART_PORTS > HOST_PORT:
            issues.append(
                ConfigIssue(
                    ("devices", index, "port"),
                    f"ports {port:#x}-{port + UART_PORTS - 1:#x} overlap the PCI host's "
                    f"{HOST_PORT:#x}-{HOST_PORT + HOST_PORTS - 1:#x} "
                    f"(set {section}.enabled = false to free them)",
                    port,
                )
            )
    return issues
