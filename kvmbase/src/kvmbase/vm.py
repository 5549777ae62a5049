"""``KvmVM``: one VM's fd, its memory slots, interrupts and vCPU ids."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from kvmbase import abi
from kvmbase.abi import ffi
from kvmbase.device import KvmDevice
from kvmbase.errors import KvmbaseError, KvmCapabilityError
from kvmbase.ioctl import kvm_ioctl
from kvmbase.kvm import Kvm

if TYPE_CHECKING:
    from kvmbase.sim.memory import GuestMemory


class MemoryProvider(Protocol):
    """What the VM asks of the simulation host at delayed start-up."""

    @property
    def memories(self) -> Iterable[GuestMemory]: ...


@dataclass
class MemorySlot:
    """A memory slot id of this VM and what it currently maps."""

    number: int
    size: int = 0
    guest_address: int = 0
    host_address: int = 0
    flags: int = 0
    active: bool = False


class KvmVM:
    """A KVM virtual machine: the shared memory domain of its vCPUs.

    The VM maps the simulation host's RAM into memory slots once, just before
    its first vCPU starts (:meth:`cpu_startup`), because RAM may be remapped
    by a checkpoint restore until then.
    """

    def __init__(
        self,
        kvm: Kvm | None = None,
        *,
        host: MemoryProvider | None = None,
        coalesced_mmio: Iterable[tuple[int, int]] = (),
        coalesced_pio: Iterable[tuple[int, int]] = (),
        machine_type: int = 0,
    ) -> None:
        self._owns_kvm = kvm is None
        self.kvm = kvm if kvm is not None else Kvm()
        self.host = host
        try:
            self.fd = self.kvm.create_vm_fd(machine_type)
        except BaseException:
            if self._owns_kvm:
                self.kvm.close()
            raise
        self.started = False
        self.has_kernel_irq_chip = False
        self._next_vcpu_id = 0
        self._slots: list[MemorySlot] = []
        self._max_slots = self.kvm.cap_num_mem_slots or 32
        self._pending_zones: list[tuple[int, int, bool]] = [
            (start, size, False) for start, size in coalesced_mmio
        ] + [(start, size, True) for start, size in coalesced_pio]
        self.coalesced_zones: list[tuple[int, int, bool]] = []
        self._vcpu_fds: dict[int, int] = {}
        self.devices: list[KvmDevice] = []
        self._started_listeners: list[Callable[[KvmVM], None]] = []

    # -- plumbing -------------------------------------------------------
    def ioctl(self, request: int, arg: object = 0, *, action: str | None = None) -> int:
        """A VM ioctl (for plugins' own requests)."""
        if self.fd < 0:
            raise KvmbaseError("the VM is closed")
        return kvm_ioctl(self.fd, request, arg, target="the VM", action=action)

    def close(self) -> None:
        """Release every fd the VM holds: devices, vCPUs, the VM, /dev/kvm if ours."""
        for device in self.devices:
            device.close()
        self.devices.clear()
        for fd in self._vcpu_fds.values():
            os.close(fd)
        self._vcpu_fds.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._owns_kvm:
            self.kvm.close()

    def __enter__(self) -> KvmVM:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- start-up -------------------------------------------------------
    def on_started(self, listener: Callable[[KvmVM], None]) -> None:
        """Call ``listener(vm)`` once, right after delayed start-up."""
        self._started_listeners.append(listener)

    def cpu_startup(self) -> None:
        """Called by each vCPU as it starts; the first call starts the VM."""
        if not self.started:
            self.delayed_startup()

    def delayed_startup(self) -> None:
        """Map the host's RAM and register coalesced zones, once."""
        self.started = True
        if self.host is not None:
            for memory in self.host.memories:
                slot = self.alloc_mem_slot(memory.size)
                self.setup_mem_slot(slot, memory.host_address, memory.base, 0)
        for start, size, pio in self._pending_zones:
            self._register_zone(start, size, pio)
        self._pending_zones.clear()
        for listener in self._started_listeners:
            listener(self)

    # -- memory ---------------------------------------------------------
    def alloc_mem_slot(self, size: int) -> MemorySlot:
        """A free memory slot for ``size`` bytes, reusing freed ones first."""
        if size <= 0 or size % abi.PAGE_SIZE:
            raise ValueError(f"memory slot size {size:#x} is not a positive multiple of 4 KiB")
        for slot in self._slots:
            if slot.size == 0:
                slot.size = size
                return slot
        if len(self._slots) >= self._max_slots:
            raise KvmbaseError(f"all {self._max_slots} memory slots of the VM are in use")
        slot = MemorySlot(len(self._slots), size)
        self._slots.append(slot)
        return slot

    def setup_mem_slot(
        self, slot: MemorySlot, host_address: int, guest_address: int, flags: int = 0
    ) -> None:
        """Map ``slot.size`` bytes at ``host_address`` to ``guest_address``."""
        if slot.size == 0:
            raise KvmbaseError(f"memory slot {slot.number} is not allocated")
        self.set_user_memory_region(
            slot.number, host_address, guest_address, slot.size, flags
        )
        slot.host_address, slot.guest_address, slot.flags = host_address, guest_address, flags
        slot.active = True

    def disable_mem_slot(self, slot: MemorySlot) -> None:
        """Unmap the slot from the guest (it stays allocated)."""
        if slot.active:
            self.set_user_memory_region(slot.number, 0, slot.guest_address, 0, 0)
            slot.active = False

    def free_mem_slot(self, slot: MemorySlot) -> None:
        """Disable the slot and return it for reuse."""
        self.disable_mem_slot(slot)
        slot.size = 0

    def forget_guest_translations(self) -> None:
        """Make KVM drop every translation it built from guest page tables.

        Needed after the host itself edits guest page tables: a shadow-paging
        KVM (PVM, or any host without EPT/NPT) write-protects the tables
        against the guest only, so it never sees those edits. Deleting and
        re-adding each memory slot zaps its shadow pages; the next accesses
        rebuild them (a few hundred microseconds here).
        """
        for slot in self._slots:
            if slot.size and slot.active:
                host, guest, flags = slot.host_address, slot.guest_address, slot.flags
                self.disable_mem_slot(slot)
                self.setup_mem_slot(slot, host, guest, flags)

    @property
    def memory_slots(self) -> list[MemorySlot]:
        return [slot for slot in self._slots if slot.size]

    def set_user_memory_region(
        self, slot: int, host_address: int, guest_address: int, size: int, flags: int
    ) -> None:
        """``KVM_SET_USER_MEMORY_REGION``; a size of 0 deletes the slot."""
        region = ffi.new("struct kvm_userspace_memory_region *")
        region.slot = slot
        region.flags = flags
        region.guest_phys_addr = guest_address
        region.memory_size = size
        region.userspace_addr = host_address
        self.ioctl(
            abi.KVM_SET_USER_MEMORY_REGION,
            region,
            action=f"memory slot {slot}: {size:#x} bytes at guest {guest_address:#x}",
        )

    # -- coalesced MMIO -------------------------------------------------
    def coalesce_mmio(self, start: int, size: int) -> None:
        """Have guest writes to ``[start, start+size)`` queue in the ring."""
        self._add_zone(start, size, pio=False)

    def coalesce_pio(self, start: int, size: int) -> None:
        """Have guest port writes to ``[start, start+size)`` queue in the ring."""
        if not self.kvm.cap_coalesced_pio:
            raise KvmCapabilityError("COALESCED_PIO", "coalescing port IO")
        self._add_zone(start, size, pio=True)

    def _add_zone(self, start: int, size: int, pio: bool) -> None:
        if not self.kvm.cap_coalesced_mmio:
            raise KvmCapabilityError("COALESCED_MMIO", "coalescing MMIO")
        if self.started:
            self._register_zone(start, size, pio)
        else:
            self._pending_zones.append((start, size, pio))

    def _register_zone(self, start: int, size: int, pio: bool) -> None:
        zone = ffi.new("struct kvm_coalesced_mmio_zone *")
        zone.addr, zone.size, zone.pio = start, size, int(pio)
        kind = "port IO" if pio else "MMIO"
        self.ioctl(
            abi.KVM_REGISTER_COALESCED_MMIO,
            zone,
            action=f"coalescing {kind} {start:#x}+{size:#x}",
        )
        self.coalesced_zones.append((start, size, pio))

    # -- interrupts -----------------------------------------------------
    def set_tss_address(self, address: int) -> None:
        """``KVM_SET_TSS_ADDR``: three pages KVM needs on x86 (VMX real mode)."""
        self.ioctl(abi.KVM_SET_TSS_ADDR, address, action=f"TSS at {address:#x}")

    def create_irq_chip(self) -> None:
        """Create the in-kernel interrupt controller model."""
        if not self.kvm.cap_irq_chip:
            raise KvmCapabilityError("IRQCHIP", "an in-kernel interrupt controller")
        self.ioctl(abi.KVM_CREATE_IRQCHIP, action="creating the in-kernel IRQ chip")
        self.has_kernel_irq_chip = True

    def set_irq_line(self, irq: int, high: bool) -> None:
        """``KVM_IRQ_LINE``: drive interrupt line ``irq`` high or low."""
        level = ffi.new("struct kvm_irq_level *")
        level.irq, level.level = irq, int(high)
        self.ioctl(abi.KVM_IRQ_LINE, level, action=f"IRQ line {irq} {'high' if high else 'low'}")

    # -- vCPUs and devices ----------------------------------------------
    def alloc_vcpu_id(self) -> int:
        """A vCPU id unique within the VM, counting from 0."""
        vcpu_id = self._next_vcpu_id
        self._next_vcpu_id += 1
        return vcpu_id

    def create_vcpu(self, vcpu_id: int) -> int:
        """``KVM_CREATE_VCPU``; the VM keeps the fd and closes it with itself."""
        fd = self.ioctl(abi.KVM_CREATE_VCPU, vcpu_id, action=f"creating vCPU {vcpu_id}")
        self._vcpu_fds[vcpu_id] = fd
        return fd

    def release_vcpu(self, vcpu_id: int) -> None:
        """Close the fd of a vCPU that is done."""
        fd = self._vcpu_fds.pop(vcpu_id, None)
        if fd is not None:
            os.close(fd)

    def create_device(self, device_type: int, *, test: bool = False) -> KvmDevice:
        """``KVM_CREATE_DEVICE``; with ``test`` only check that it could be made."""
        request = ffi.new("struct kvm_create_device *")
        request.type = device_type
        request.flags = 1 if test else 0  # KVM_CREATE_DEVICE_TEST
        self.ioctl(abi.KVM_CREATE_DEVICE, request, action=f"creating device type {device_type}")
        device = KvmDevice(request.fd, device_type)
        if not test:
            self.devices.append(device)
        return device
