"""The ARM encoding of ``KVM_IRQ_LINE``'s irq field.

``vcpu2:4 | type:4 | vcpu:8 | num:16`` (bits 28, 24, 16, 0).  ``type`` is
CPU (the vCPU's IRQ/FIQ pin, no in-kernel GIC), SPI (a shared interrupt to
the in-kernel GIC, num 32-1019, vcpu ignored) or PPI (a private interrupt of
one vCPU, num 16-31).  A vCPU index is 8 bits, and 4 more in ``vcpu2`` where
the host has ``KVM_CAP_ARM_IRQ_LINE_LAYOUT_2`` (up to 4096 vCPUs).
"""

from __future__ import annotations

import enum

from kvm_armv8.arm import abi


class IrqType(enum.IntEnum):
    CPU = abi.KVM_ARM_IRQ_TYPE_CPU
    SPI = abi.KVM_ARM_IRQ_TYPE_SPI
    PPI = abi.KVM_ARM_IRQ_TYPE_PPI


#: the CPU-type line numbers
CPU_IRQ = abi.KVM_ARM_IRQ_CPU_IRQ
CPU_FIQ = abi.KVM_ARM_IRQ_CPU_FIQ
#: interrupt ids of the GIC: SGIs 0-15, PPIs 16-31, SPIs from 32
PPI_BASE = 16
SPI_BASE = 32
SPI_MAX = 1019
#: the PPIs arm64 KVM wires by default (as on QEMU virt)
PPI_VIRTUAL_TIMER = 27
PPI_PHYSICAL_TIMER = 30
PPI_PMU = 23


def irq_line(irq_type: IrqType | int, number: int, vcpu: int = 0, *,
             layout_2: bool = False) -> int:
    """The ``irq`` field of ``struct kvm_irq_level`` for one line.

    ``number`` is the line's own number: 0/1 (IRQ/FIQ) for CPU, the GIC
    interrupt id for SPI (32-1019) and PPI (16-31).  ``layout_2``: the host
    has KVM_CAP_ARM_IRQ_LINE_LAYOUT_2, so vCPU indices up to 4095 fit.
    """
    kind = IrqType(irq_type)
    if kind is IrqType.CPU and number not in (CPU_IRQ, CPU_FIQ):
        raise ValueError(f"a CPU interrupt line is IRQ (0) or FIQ (1), not {number}")
    if kind is IrqType.SPI and not SPI_BASE <= number <= SPI_MAX:
        raise ValueError(f"SPI {number} is outside {SPI_BASE}-{SPI_MAX}")
    if kind is IrqType.PPI and not PPI_BASE <= number < SPI_BASE:
        raise ValueError(f"PPI {number} is outside {PPI_BASE}-{SPI_BASE - 1}")
    if kind is IrqType.SPI:
        vcpu = 0
    limit = 1 << (12 if layout_2 else 8)
    if not 0 <= vcpu < limit:
        raise ValueError(
            f"vCPU index {vcpu} does not fit the IRQ line encoding (below {limit}"
            + ("" if layout_2 else "; the host lacks KVM_CAP_ARM_IRQ_LINE_LAYOUT_2") + ")"
        )
    low, high = vcpu & abi.KVM_ARM_IRQ_VCPU_MASK, vcpu >> 8
    return (high << abi.KVM_ARM_IRQ_VCPU2_SHIFT | int(kind) << abi.KVM_ARM_IRQ_TYPE_SHIFT
            | low << abi.KVM_ARM_IRQ_VCPU_SHIFT | number << abi.KVM_ARM_IRQ_NUM_SHIFT)


def decode_irq_line(irq: int) -> tuple[IrqType, int, int]:
    """(type, number, vCPU index) of an ``irq`` field (layout 2 assumed)."""
    vcpu = ((irq >> abi.KVM_ARM_IRQ_VCPU_SHIFT) & abi.KVM_ARM_IRQ_VCPU_MASK) | (
        ((irq >> abi.KVM_ARM_IRQ_VCPU2_SHIFT) & abi.KVM_ARM_IRQ_VCPU2_MASK) << 8
    )
    kind = IrqType((irq >> abi.KVM_ARM_IRQ_TYPE_SHIFT) & abi.KVM_ARM_IRQ_TYPE_MASK)
    return kind, irq & abi.KVM_ARM_IRQ_NUM_MASK, vcpu
