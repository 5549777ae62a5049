"""PCI functions: a type-0 configuration header with BARs, and the scratch
device the x86 machine offers.

A :class:`PciFunction` keeps its 256-byte configuration space as bytes plus a
mask of the bits software may write, as real hardware does: read-only fields
ignore writes, and a BAR's low address bits, being read-only zero, make the
sizing protocol (write all ones, read back the mask) fall out by itself.  When
the command register enables decoding, each programmed BAR's backing device
is attached to the machine's bus at the BAR's address (IO BARs at the port's
bus address), and moved or detached when software changes either.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from kvm_x86.cpu import io_address
from kvmbase.errors import CheckpointError
from kvmbase.sim.bus import Device
from kvmbase.sim.scratch import ScratchDevice
from kvmbase.sim.system import System

log = logging.getLogger(__name__)

CONFIG_SPACE_SIZE: Final = 256

# Type-0 header offsets
VENDOR_ID: Final = 0x00
DEVICE_ID: Final = 0x02
COMMAND: Final = 0x04
STATUS: Final = 0x06
REVISION_ID: Final = 0x08
CLASS_CODE: Final = 0x09  # three bytes: programming interface, subclass, base class
CACHE_LINE_SIZE: Final = 0x0C
LATENCY_TIMER: Final = 0x0D
HEADER_TYPE: Final = 0x0E
BAR0: Final = 0x10
BAR_COUNT: Final = 6
BARS_END: Final = BAR0 + 4 * BAR_COUNT
SUBSYSTEM_VENDOR_ID: Final = 0x2C
SUBSYSTEM_ID: Final = 0x2E
CAPABILITIES_POINTER: Final = 0x34
INTERRUPT_LINE: Final = 0x3C
INTERRUPT_PIN: Final = 0x3D

COMMAND_IO: Final = 0x0001
COMMAND_MEMORY: Final = 0x0002
COMMAND_BUS_MASTER: Final = 0x0004
COMMAND_PARITY_RESPONSE: Final = 0x0040
COMMAND_SERR: Final = 0x0100
COMMAND_INTX_DISABLE: Final = 0x0400

HEADER_TYPE_MULTI_FUNCTION: Final = 0x80

BAR_IO: Final = 0x1
BAR_MEMORY_64: Final = 0x4
BAR_PREFETCHABLE: Final = 0x8

#: Guest-physical addresses end here (the widest x86-64 physical address is
#: 52 bits); above it the bus holds the remapped port space.
PHYSICAL_ADDRESS_LIMIT: Final = 1 << 52
PORT_LIMIT: Final = 0x10000

_UNPACKERS: Final = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I")}


class BarKind(enum.Enum):
    """What a base address register decodes."""

    IO = "io"
    MEMORY32 = "memory32"
    MEMORY64 = "memory64"


@dataclass
class Bar:
    """One base address register and the device that answers behind it.

    A 64-bit BAR also takes the register after ``index`` for its upper half.
    """

    index: int
    kind: BarKind
    size: int
    backing: Device
    prefetchable: bool = False
    #: the BAR address (a port number for IO BARs) the backing device is
    #: attached at now, or None
    mapped_at: int | None = None

    def __post_init__(self) -> None:
        smallest = 4 if self.kind is BarKind.IO else 16
        largest = 256 if self.kind is BarKind.IO else 1 << 31
        if self.size & (self.size - 1) or not smallest <= self.size <= largest:
            raise ValueError(
                f"BAR{self.index}: size {self.size} is not a power of two "
                f"from {smallest} to {largest}"
            )
        last = BAR_COUNT - (2 if self.kind is BarKind.MEMORY64 else 1)
        if not 0 <= self.index <= last:
            raise ValueError(f"BAR{self.index}: a {self.kind.value} BAR needs index 0 to {last}")
        if self.prefetchable and self.kind is BarKind.IO:
            raise ValueError(f"BAR{self.index}: an IO BAR cannot be prefetchable")

    @property
    def offset(self) -> int:
        """Config-space offset of the BAR (of its lower half)."""
        return BAR0 + 4 * self.index

    @property
    def flags(self) -> int:
        """The read-only low bits that say what the BAR decodes."""
        if self.kind is BarKind.IO:
            return BAR_IO
        flags = BAR_MEMORY_64 if self.kind is BarKind.MEMORY64 else 0
        return flags | (BAR_PREFETCHABLE if self.prefetchable else 0)

    @property
    def write_mask(self) -> int:
        """Writable address bits of the BAR (64 bits wide for a 64-bit BAR)."""
        low_bits = 0x3 if self.kind is BarKind.IO else 0xF
        width = 64 if self.kind is BarKind.MEMORY64 else 32
        return ~(self.size - 1) & ~low_bits & ((1 << width) - 1)


class PciFunction:
    """One PCI function with a type-0 header.

    Capabilities pointer and status are zero (no capability list), the
    expansion ROM BAR is not implemented (reads zero), BIST is absent.
    """

    def __init__(
        self,
        name: str,
        *,
        vendor_id: int,
        device_id: int,
        class_code: int,
        revision: int = 0,
        subsystem_vendor_id: int = 0,
        subsystem_id: int = 0,
        interrupt_pin: int = 0,
        bars: Sequence[Bar] = (),
    ) -> None:
        self.name = name
        self.bars = list(bars)
        used: set[int] = set()
        for bar in self.bars:
            wanted = {bar.index, bar.index + 1} if bar.kind is BarKind.MEMORY64 else {bar.index}
            if used & wanted:
                raise ValueError(f"{name}: BAR{bar.index} overlaps another BAR")
            used |= wanted
        self.system: System | None = None
        self.config = bytearray(CONFIG_SPACE_SIZE)
        #: the bits of each config byte that software may change
        self.writable = bytearray(CONFIG_SPACE_SIZE)
        config = self.config
        struct.pack_into("<HH", config, VENDOR_ID, vendor_id, device_id)
        config[REVISION_ID] = revision
        config[CLASS_CODE : CLASS_CODE + 3] = class_code.to_bytes(3, "little")
        struct.pack_into("<HH", config, SUBSYSTEM_VENDOR_ID, subsystem_vendor_id, subsystem_id)
        config[INTERRUPT_PIN] = interrupt_pin
        command_mask = (
            COMMAND_MEMORY
            | COMMAND_BUS_MASTER
            | COMMAND_PARITY_RESPONSE
            | COMMAND_SERR
            | COMMAND_INTX_DISABLE
        )
        # A device without IO BARs hard-wires IO space enable to zero.
        if any(bar.kind is BarKind.IO for bar in self.bars):
            command_mask |= COMMAND_IO
        self._set_writable(COMMAND, 2, command_mask)
        self._set_writable(CACHE_LINE_SIZE, 1, 0xFF)
        self._set_writable(LATENCY_TIMER, 1, 0xFF)
        self._set_writable(INTERRUPT_LINE, 1, 0xFF)
        for bar in self.bars:
            width = 8 if bar.kind is BarKind.MEMORY64 else 4
            config[bar.offset] = bar.flags
            self._set_writable(bar.offset, width, bar.write_mask)

    def _set_writable(self, offset: int, size: int, mask: int) -> None:
        self.writable[offset : offset + size] = mask.to_bytes(size, "little")

    # -- identity --------------------------------------------------------
    @property
    def vendor_id(self) -> int:
        return int(struct.unpack_from("<H", self.config, VENDOR_ID)[0])

    @property
    def device_id(self) -> int:
        return int(struct.unpack_from("<H", self.config, DEVICE_ID)[0])

    @property
    def command(self) -> int:
        return int(struct.unpack_from("<H", self.config, COMMAND)[0])

    def set_multi_function(self, multi: bool) -> None:
        """Say in the header type whether the slot has further functions."""
        if multi:
            self.config[HEADER_TYPE] |= HEADER_TYPE_MULTI_FUNCTION
        else:
            self.config[HEADER_TYPE] &= ~HEADER_TYPE_MULTI_FUNCTION & 0xFF

    # -- configuration space ------------------------------------------------
    def config_read(self, offset: int, size: int) -> int:
        """Read ``size`` (1, 2 or 4) bytes of config space at ``offset``."""
        return int(_UNPACKERS[size].unpack_from(self.config, offset)[0])

    def config_write(self, offset: int, size: int, value: int) -> None:
        """Write config space; only the writable bits change."""
        config, writable = self.config, self.writable
        for index in range(offset, offset + size):
            mask = writable[index]
            if mask:
                config[index] = (config[index] & ~mask) | (value & mask)
            value >>= 8
        # Only the command register and the BARs move windows on the bus.
        if offset < BARS_END and offset + size > COMMAND:
            self.update_mappings()

    # -- bus windows -------------------------------------------------------
    def attach(self, system: System) -> None:
        """Let the function put its BAR windows on ``system``'s bus."""
        self.system = system
        self.update_mappings()

    def bar_address(self, bar: Bar) -> int:
        """The address (a port for IO BARs) programmed into ``bar``."""
        raw = int.from_bytes(
            self.config[bar.offset : bar.offset + (8 if bar.kind is BarKind.MEMORY64 else 4)],
            "little",
        )
        return raw & bar.write_mask

    def decoded_address(self, bar: Bar) -> int | None:
        """Where ``bar`` decodes now: None while the command register disables it."""
        enable = COMMAND_IO if bar.kind is BarKind.IO else COMMAND_MEMORY
        return self.bar_address(bar) if self.command & enable else None

    def update_mappings(self) -> None:
        """Attach, move or detach each BAR's device to match the header."""
        system = self.system
        if system is None:
            return
        for bar in self.bars:
            wanted = self.decoded_address(bar)
            if wanted == bar.mapped_at:
                continue
            if bar.mapped_at is not None:
                system.bus.detach(bar.backing)
                bar.mapped_at = None
            if wanted is not None:
                self._map(system, bar, wanted)

    def _map(self, system: System, bar: Bar, address: int) -> None:
        if bar.kind is BarKind.IO:
            if address + bar.size > PORT_LIMIT:
                log.warning(
                    "%s: BAR%d at port %#x passes the end of the port space; not decoded",
                    self.name,
                    bar.index,
                    address,
                )
                return
            start = io_address(address)
        else:
            if address + bar.size > PHYSICAL_ADDRESS_LIMIT:
                log.warning(
                    "%s: BAR%d at %#x is beyond physical addresses; not decoded",
                    self.name,
                    bar.index,
                    address,
                )
                return
            start = address
        try:
            system.attach_device(bar.backing, start, bar.size)
        except ValueError as exc:
            # Real hardware would decode too and the conflict would be the
            # guest's bug; here the bus cannot hold two devices at once.
            log.warning("%s: BAR%d not decoded: %s", self.name, bar.index, exc)
            return
        bar.mapped_at = address

    def detach(self) -> None:
        """Take every BAR window off the bus."""
        system = self.system
        for bar in self.bars:
            if bar.mapped_at is not None and system is not None:
                system.bus.detach(bar.backing)
            bar.mapped_at = None

    # -- checkpoints ---------------------------------------------------------
    def serialize(self) -> dict[str, Any]:
        """Config space, where each BAR decodes, and each BAR device's state."""
        return {
            "config": self.config.hex(),
            "bars": {
                str(bar.index): {"mapped_at": bar.mapped_at, "state": bar.backing.serialize()}
                for bar in self.bars
            },
        }

    def unserialize(self, state: dict[str, Any]) -> None:
        """Restore :meth:`serialize`'s output and put the windows where they were."""
        config = bytearray.fromhex(state["config"])
        fixed = [~mask & 0xFF for mask in self.writable]
        if len(config) != CONFIG_SPACE_SIZE or any(
            saved & keep != now & keep
            for saved, now, keep in zip(config, self.config, fixed, strict=True)
        ):
            raise CheckpointError(
                f"{self.name}: the checkpoint holds a different PCI device "
                "(its read-only config fields differ)"
            )
        bars = state["bars"]
        if sorted(bars) != sorted(str(bar.index) for bar in self.bars):
            raise CheckpointError(
                f"{self.name}: the checkpoint has BARs {sorted(bars)}, "
                f"the device {sorted(str(bar.index) for bar in self.bars)}"
            )
        self.detach()
        self.config[:] = config
        for bar in self.bars:
            bar.backing.unserialize(bars[str(bar.index)]["state"])
        self.update_mappings()
        for bar in self.bars:
            saved = bars[str(bar.index)]["mapped_at"]
            if bar.mapped_at != saved:
                raise CheckpointError(
                    f"{self.name}: BAR{bar.index} was decoded at {saved} when checkpointed "
                    f"but cannot be decoded there now (see the log)"
                )


class BarWindow(Device):
    """A view of part of another device, for a BAR that shows it again.

    It keeps no state of its own, so checkpoints skip it.
    """

    checkpointed = False

    def __init__(self, name: str, target: Device) -> None:
        super().__init__(name)
        self.target = target

    def read(self, offset: int, size: int) -> int:
        return self.target.read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        self.target.write(offset, size, value)


class ScratchRegisters(Device):
    """The register file behind BAR0 of :class:`ScratchPciDevice`.

    ==========  ====  =====================================================
    offset      kind  meaning
    ==========  ====  =====================================================
    0x000       RO    ID: device ID << 16 | vendor ID
    0x004       RO    MEMORY_SIZE: bytes of memory behind BAR2
    0x008       RO    SUM: sum modulo 2**32 of the dwords at 0x100-0xFFF
    0x100-0xFFF RW    SCRATCH: reads return what was written
    ==========  ====  =====================================================

    Other offsets read zero and ignore writes.
    """

    SIZE: Final = 0x1000
    ID: Final = 0x000
    MEMORY_SIZE: Final = 0x004
    SUM: Final = 0x008
    SCRATCH: Final = 0x100

    # The function's state lives in the function's checkpoint entry.
    checkpointed = False

    def __init__(self, name: str, *, identity: int, memory_size: int) -> None:
        super().__init__(name)
        self.identity = identity
        self.memory_size = memory_size
        self.scratch = bytearray(self.SIZE - self.SCRATCH)
        self._words = memoryview(self.scratch).cast("I")

    def read(self, offset: int, size: int) -> int:
        if offset >= self.SCRATCH:
            start = offset - self.SCRATCH
            return int.from_bytes(self.scratch[start : start + size], "little")
        if offset < self.SUM + 4:
            registers = struct.pack(
                "<III", self.identity, self.memory_size, sum(self._words) & 0xFFFFFFFF
            )
            return int.from_bytes(registers[offset : offset + size], "little")
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset >= self.SCRATCH:
            start = offset - self.SCRATCH
            self.scratch[start : start + size] = value.to_bytes(size, "little")

    def serialize(self) -> dict[str, Any]:
        return {"scratch": self.scratch.hex()}

    def unserialize(self, state: dict[str, Any]) -> None:
        data = bytes.fromhex(state["scratch"])
        if len(data) != len(self.scratch):
            raise CheckpointError(
                f"{self.name}: scratch area of {len(data)} bytes, expected {len(self.scratch)}"
            )
        self.scratch[:] = data


class ScratchMemory(ScratchDevice):
    """Plain memory behind BAR2, saved with its function."""

    checkpointed = False


class ScratchPciDevice(PciFunction):
    """A PCI function that is useful to a test guest and nothing else.

    BAR0: 32-bit non-prefetchable memory, the 4 KiB :class:`ScratchRegisters`;
    BAR2 (and 3): 64-bit prefetchable memory, ``memory_size`` bytes of RAM;
    BAR4 (with ``io_bar``): 16 IO ports showing registers 0x0-0xF.
    """

    IO_PORTS: Final = 16

    def __init__(
        self,
        name: str,
        *,
        vendor_id: int,
        device_id: int,
        class_code: int,
        memory_size: int,
        io_bar: bool = True,
        **header: int,
    ) -> None:
        self.registers = ScratchRegisters(
            f"{name}.bar0", identity=device_id << 16 | vendor_id, memory_size=memory_size
        )
        self.memory = ScratchMemory(f"{name}.bar2", memory_size)
        bars = [
            Bar(0, BarKind.MEMORY32, ScratchRegisters.SIZE, self.registers),
            Bar(2, BarKind.MEMORY64, memory_size, self.memory, prefetchable=True),
        ]
        if io_bar:
            bars.append(
                Bar(4, BarKind.IO, self.IO_PORTS, BarWindow(f"{name}.bar4", self.registers))
            )
        super().__init__(
            name,
            vendor_id=vendor_id,
            device_id=device_id,
            class_code=class_code,
            bars=bars,
            **header,
        )
