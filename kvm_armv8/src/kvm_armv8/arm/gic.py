"""The in-kernel GIC (KVM's VGIC): creation, start-up, and its state.

``KVM_CREATE_DEVICE`` makes a GICv2 or GICv3 model in the kernel; its frames
are placed with ``KVM_DEV_ARM_VGIC_GRP_ADDR`` and it starts with
``KVM_DEV_ARM_VGIC_CTRL_INIT`` once every vCPU exists.  Guest accesses to
its frames never leave the kernel.

The state lives in the kernel too, so that checkpoints carry it,
:class:`InKernelGic` is also a bus :class:`~kvmbase.sim.bus.Device` mapped
over the distributor frame (where no access ever reaches it): its
``serialize`` reads the distributor, redistributor and CPU-interface
registers through the device attributes (``GRP_DIST_REGS``,
``GRP_REDIST_REGS``/``GRP_CPU_REGS``, ``GRP_CPU_SYSREGS``), and its
``unserialize`` writes them back, at once or, in a VM that is not started
yet, right after ``CTRL_INIT``.  The vCPUs are out of ``KVM_RUN`` whenever a
checkpoint is written (drained), so KVM has synced its list registers into
these.  Not carried: LPIs and the ITS (no ITS is made), and the line level
of level-triggered SPIs (``GRP_LEVEL_INFO``): a level interrupt pending at
the checkpoint is restored as pending (latched).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvm_armv8.arm import abi
from kvmbase.device import KvmDevice
from kvmbase.errors import KvmbaseError, KvmIoctlError
from kvmbase.sim.bus import Device

if TYPE_CHECKING:
    from kvm_armv8.arm.vcpu import BaseArmKvmCPU
    from kvmbase.vm import KvmVM


class GicVersion(str, enum.Enum):
    V2 = "v2"
    V3 = "v3"


@dataclass(frozen=True)
class GicLayout:
    """Where the GIC's frames sit in the guest's physical address space."""

    distributor: int
    #: GICv2 CPU interface (8 KiB)
    cpu_interface: int
    #: GICv3 redistributors, 128 KiB per vCPU
    redistributors: int


# Distributor registers (offsets, GICv2 and GICv3 alike)
GICD_CTLR = 0x0000
GICD_TYPER = 0x0004
GICD_IGROUPR = 0x0080
GICD_ISENABLER = 0x0100
GICD_ICENABLER = 0x0180
GICD_ISPENDR = 0x0200
GICD_ICPENDR = 0x0280
GICD_ISACTIVER = 0x0300
GICD_ICACTIVER = 0x0380
GICD_IPRIORITYR = 0x0400
GICD_ITARGETSR = 0x0800
GICD_ICFGR = 0x0C00
GICD_IROUTER = 0x6000
# GICv3 redistributor: RD frame, then the SGI frame 64 KiB on
GICR_CTLR = 0x0000
GICR_SGI = 0x10000
# GICv2 CPU interface
GICC_CTLR, GICC_PMR, GICC_BPR, GICC_ABPR, GICC_APR = 0x00, 0x04, 0x08, 0x1C, 0xD0

#: the GICv3 CPU-interface system registers saved, in restore order
ICC_SYSREGS: dict[str, tuple[int, int, int, int, int]] = {
    "ICC_SRE_EL1": (3, 0, 12, 12, 5),
    "ICC_CTLR_EL1": (3, 0, 12, 12, 4),
    "ICC_PMR_EL1": (3, 0, 4, 6, 0),
    "ICC_BPR0_EL1": (3, 0, 12, 8, 3),
    "ICC_BPR1_EL1": (3, 0, 12, 12, 3),
    **{f"ICC_AP0R{n}_EL1": (3, 0, 12, 8, 4 + n) for n in range(4)},
    **{f"ICC_AP1R{n}_EL1": (3, 0, 12, 9, n) for n in range(4)},
    "ICC_IGRPEN0_EL1": (3, 0, 12, 12, 6),
    "ICC_IGRPEN1_EL1": (3, 0, 12, 12, 7),
}


def _sysreg_attr(encoding: tuple[int, int, int, int, int]) -> int:
    op0, op1, crn, crm, op2 = encoding
    return op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2


Registers = list[tuple[int, int | None]]


def _bitmap_banks(set_offset: int, clear_offset: int | None, words: range) -> Registers:
    return [(set_offset + 4 * n, None if clear_offset is None else clear_offset + 4 * n)
            for n in words]


class InKernelGic(Device):
    """KVM's GICv2/GICv3 model, and a bus device that checkpoints its state."""

    def __init__(self, vm: KvmVM, version: GicVersion, layout: GicLayout,
                 name: str = "gic") -> None:
        super().__init__(name)
        self.vm = vm
        self.version = GicVersion(version)
        self.layout = layout
        self.device: KvmDevice | None = None
        self.initialized = False
        self.cpus: list[BaseArmKvmCPU] = []
        self._pending_state: dict[str, Any] | None = None

    # -- the bus side ---------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        raise KvmbaseError(f"{self.name}: the in-kernel GIC's frame reached user space")

    def write(self, offset: int, size: int, value: int) -> None:
        raise KvmbaseError(f"{self.name}: the in-kernel GIC's frame reached user space")

    @property
    def frame_size(self) -> int:
        return (abi.KVM_VGIC_V3_DIST_SIZE if self.version is GicVersion.V3
                else abi.KVM_VGIC_V2_DIST_SIZE)

    # -- creation and start-up ------------------------------------------
    def create(self) -> None:
        """``KVM_CREATE_DEVICE`` and the frame addresses (before any vCPU runs)."""
        if self.device is not None:
            return
        layout, group = self.layout, abi.KVM_DEV_ARM_VGIC_GRP_ADDR
        if self.version is GicVersion.V3:
            self.device = self.vm.create_device(abi.KVM_DEV_TYPE_ARM_VGIC_V3)
            self.device.set_attr(group, abi.KVM_VGIC_V3_ADDR_TYPE_DIST, layout.distributor)
            self.device.set_attr(group, abi.KVM_VGIC_V3_ADDR_TYPE_REDIST, layout.redistributors)
        else:
            self.device = self.vm.create_device(abi.KVM_DEV_TYPE_ARM_VGIC_V2)
            self.device.set_attr(group, abi.KVM_VGIC_V2_ADDR_TYPE_DIST, layout.distributor)
            self.device.set_attr(group, abi.KVM_VGIC_V2_ADDR_TYPE_CPU, layout.cpu_interface)
        self.vm.has_kernel_irq_chip = True

    def initialize(self, cpus: Sequence[BaseArmKvmCPU]) -> None:
        """``CTRL_INIT`` once every vCPU exists; then the vCPUs' own set-up,
        then a state waiting from a checkpoint."""
        device = self._device()
        self.cpus = list(cpus)
        device.set_attr(abi.KVM_DEV_ARM_VGIC_GRP_CTRL, abi.KVM_DEV_ARM_VGIC_CTRL_INIT, 0)
        self.initialized = True
        for cpu in self.cpus:
            cpu.after_gic_init()
        if self._pending_state is not None:
            state, self._pending_state = self._pending_state, None
            # The redistributors are found by MPIDR: write the contexts first.
            for cpu in self.cpus:
                cpu.sync_kvm_state()
            self.restore_state(state)

    def _device(self) -> KvmDevice:
        if self.device is None:
            raise KvmbaseError(f"{self.name}: the in-kernel GIC was not created")
        return self.device

    @property
    def num_irqs(self) -> int:
        """Interrupt ids the distributor implements (GICD_TYPER.ITLinesNumber)."""
        typer = self._dist_read(GICD_TYPER)
        return min(32 * ((typer & 0x1F) + 1), 1020)

    # -- attribute access -------------------------------------------------
    def _dist_read(self, offset: int, cpu_index: int = 0) -> int:
        attr = offset | (cpu_index << abi.KVM_DEV_ARM_VGIC_CPUID_SHIFT
                         if self.version is GicVersion.V2 else 0)
        return self._device().get_attr(abi.KVM_DEV_ARM_VGIC_GRP_DIST_REGS, attr) & 0xFFFFFFFF

    def _dist_write(self, offset: int, value: int, cpu_index: int = 0) -> None:
        attr = offset | (cpu_index << abi.KVM_DEV_ARM_VGIC_CPUID_SHIFT
                         if self.version is GicVersion.V2 else 0)
        self._device().set_attr(abi.KVM_DEV_ARM_VGIC_GRP_DIST_REGS, attr, value)

    @staticmethod
    def _affinity(cpu: BaseArmKvmCPU) -> int:
        mpidr = cpu.mpidr
        return ((mpidr & 0xFFFFFF) | ((mpidr >> 32) & 0xFF) << 24) << (
            abi.KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT)

    def _per_cpu(self, cpu: BaseArmKvmCPU) -> tuple[int, int]:
        """(attribute group, attribute base) of a vCPU's banked registers."""
        if self.version is GicVersion.V3:
            return abi.KVM_DEV_ARM_VGIC_GRP_REDIST_REGS, self._affinity(cpu)
        return (abi.KVM_DEV_ARM_VGIC_GRP_DIST_REGS,
                self.cpus.index(cpu) << abi.KVM_DEV_ARM_VGIC_CPUID_SHIFT)

    # -- register sets ----------------------------------------------------
    def _shared_registers(self) -> list[tuple[int, int | None]]:
        """Distributor registers of the SPIs: (offset, its clear twin or None)."""
        words = range(1, self.num_irqs // 32)
        spis = range(32 // 4, self.num_irqs // 4)
        registers: list[tuple[int, int | None]] = [(GICD_CTLR, None)]
        registers += _bitmap_banks(GICD_IGROUPR, None, words)
        registers += [(GICD_IPRIORITYR + 4 * n, None) for n in spis]
        registers += [(GICD_ICFGR + 4 * n, None) for n in range(2, self.num_irqs // 16)]
        if self.version is GicVersion.V3:
            for irq in range(32, self.num_irqs):
                registers += [(GICD_IROUTER + 8 * irq, None), (GICD_IROUTER + 8 * irq + 4, None)]
        else:
            registers += [(GICD_ITARGETSR + 4 * n, None) for n in spis]
        registers += _bitmap_banks(GICD_ISENABLER, GICD_ICENABLER, words)
        registers += _bitmap_banks(GICD_ISACTIVER, GICD_ICACTIVER, words)
        registers += _bitmap_banks(GICD_ISPENDR, GICD_ICPENDR, words)
        return registers

    def _banked_registers(self) -> list[tuple[int, int | None]]:
        """A vCPU's SGI/PPI registers: (offset, its clear twin or None)."""
        base = GICR_SGI if self.version is GicVersion.V3 else 0
        registers: list[tuple[int, int | None]] = []
        if self.version is GicVersion.V3:
            registers.append((GICR_CTLR, None))
        registers += [(base + GICD_IGROUPR, None)]
        registers += [(base + GICD_IPRIORITYR + 4 * n, None) for n in range(8)]
        registers += [(base + GICD_ICFGR + 4, None)]
        registers += [(base + GICD_ISENABLER, base + GICD_ICENABLER),
                      (base + GICD_ISACTIVER, base + GICD_ICACTIVER),
                      (base + GICD_ISPENDR, base + GICD_ICPENDR)]
        return registers

    # -- state ------------------------------------------------------------
    def save_state(self) -> dict[str, Any]:
        """Every register of the distributor, each vCPU's banked registers and
        its CPU interface, as JSON types."""
        device = self._device()
        state: dict[str, Any] = {
            "version": self.version.value,
            "distributor": {f"{offset:#x}": self._dist_read(offset)
                            for offset, _ in self._shared_registers()},
            "cpus": [],
        }
        for cpu in self.cpus:
            group, base = self._per_cpu(cpu)
            banked = {f"{offset:#x}": device.get_attr(group, base | offset) & 0xFFFFFFFF
                      for offset, _ in self._banked_registers()}
            state["cpus"].append({"mpidr": cpu.mpidr, "banked": banked,
                                  "interface": self._read_interface(cpu)})
        return state

    def _read_interface(self, cpu: BaseArmKvmCPU) -> dict[str, int]:
        device = self._device()
        values: dict[str, int] = {}
        if self.version is GicVersion.V3:
            base = self._affinity(cpu)
            for name, encoding in ICC_SYSREGS.items():
                try:
                    values[name] = device.get_attr(abi.KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS,
                                                   base | _sysreg_attr(encoding))
                except KvmIoctlError:
                    continue  # APxR<n> beyond the implemented priority bits
            return values
        base = self.cpus.index(cpu) << abi.KVM_DEV_ARM_VGIC_CPUID_SHIFT
        for name, offset in (("GICC_CTLR", GICC_CTLR), ("GICC_PMR", GICC_PMR),
                             ("GICC_BPR", GICC_BPR), ("GICC_ABPR", GICC_ABPR),
                             ("GICC_APR0", GICC_APR)):
            values[name] = device.get_attr(abi.KVM_DEV_ARM_VGIC_GRP_CPU_REGS,
                                           base | offset) & 0xFFFFFFFF
        return values

    def restore_state(self, state: dict[str, Any]) -> None:
        """Write :meth:`save_state` output into the initialised GIC."""
        if state.get("version") != self.version.value:
            raise KvmbaseError(
                f"{self.name}: the state is of a GIC{state.get('version')}, "
                f"this machine has a GIC{self.version.value}"
            )
        if len(state["cpus"]) != len(self.cpus):
            raise KvmbaseError(f"{self.name}: the state has {len(state['cpus'])} CPU "
                               f"interfaces, the machine {len(self.cpus)}")
        device = self._device()
        for cpu, saved in zip(self.cpus, state["cpus"], strict=True):
            group, base = self._per_cpu(cpu)
            self._write_set(lambda offset, value, g=group, b=base: device.set_attr(
                g, b | offset, value), self._banked_registers(), saved["banked"])
        self._write_set(self._dist_write, self._shared_registers(), state["distributor"])
        for cpu, saved in zip(self.cpus, state["cpus"], strict=True):
            self._write_interface(cpu, saved["interface"])

    @staticmethod
    def _write_set(write: Any, registers: list[tuple[int, int | None]],
                   saved: dict[str, int]) -> None:
        for offset, clear in registers:
            key = f"{offset:#x}"
            if key not in saved:
                continue
            if clear is not None:
                write(clear, 0xFFFFFFFF)
            write(offset, int(saved[key]))

    def _write_interface(self, cpu: BaseArmKvmCPU, values: dict[str, int]) -> None:
        device = self._device()
        if self.version is GicVersion.V3:
            base = self._affinity(cpu)
            for name, encoding in ICC_SYSREGS.items():
                if name in values:
                    device.set_attr(abi.KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS,
                                    base | _sysreg_attr(encoding), int(values[name]))
            return
        base = self.cpus.index(cpu) << abi.KVM_DEV_ARM_VGIC_CPUID_SHIFT
        offsets = {"GICC_CTLR": GICC_CTLR, "GICC_PMR": GICC_PMR, "GICC_BPR": GICC_BPR,
                   "GICC_ABPR": GICC_ABPR, "GICC_APR0": GICC_APR}
        for name, value in values.items():
            device.set_attr(abi.KVM_DEV_ARM_VGIC_GRP_CPU_REGS, base | offsets[name], int(value))

    def serialize(self) -> dict[str, Any]:
        if not self.initialized:
            return {"pending": self._pending_state}
        return {"pending": None, "state": self.save_state()}

    def unserialize(self, state: dict[str, Any]) -> None:
        saved = state.get("state") or state.get("pending")
        if saved is None:
            return
        if self.initialized:
            self.restore_state(saved)
        else:
            self._pending_state = saved

    def dump(self) -> dict[str, Any]:
        """The GIC's state now (``cpu.dump("gic")``)."""
        if not self.initialized:
            return {"version": self.version.value, "initialized": False}
        return {"initialized": True, "num_irqs": self.num_irqs, **self.save_state()}
