"""The config section both ARM plugins share (``[armv8]``, ``[arm]``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kvm_armv8.arm import layout
from kvmbase.units import Address


class Pl011Config(BaseModel):
    """The machine's PL011 console UART."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Put a PL011 on the bus.")
    name: str = Field(default="uart0", description="Device name (checkpoints, errors).")
    address: Address = Field(default=layout.UART_ADDRESS, description="MMIO address, 4 KiB.")
    spi: int | None = Field(
        default=layout.UART_SPI, ge=32, le=1019,
        description="GIC interrupt id of its interrupt line (an SPI); none: not wired.",
    )
    output: str = Field(
        default="stdout",
        description='Where transmitted bytes go: "stdout", "stderr", "none" or a file path.',
    )


class ArmMachineConfig(BaseModel):
    """vCPUs, their features, the in-kernel GIC and the console of an ARM machine."""

    model_config = ConfigDict(extra="forbid")

    cpus: int = Field(default=1, ge=1, le=255, description="Number of vCPUs.")
    secondary_start: Literal["entry", "psci"] = Field(
        default="entry",
        description='"entry": every vCPU starts at the entry (x0..: see boot_x0); "psci": '
        "vCPUs after the first start powered off, until the guest's PSCI CPU_ON.",
    )
    psci_0_2: bool = Field(default=True, description="KVM serves PSCI 0.2 and later.")
    pmu_v3: bool = Field(
        default=False, description="Give the guest a PMUv3 (interrupt PPI 23; needs a GIC)."
    )
    gic: Literal["v3", "v2", "none"] = Field(
        default="v3",
        description='The in-kernel GIC: "v3", "v2" (needs a host GIC with GICv2 '
        'compatibility) or "none" (interrupt lines are the vCPU IRQ/FIQ pins).',
    )
    gic_distributor: Address = Field(default=layout.GIC_DISTRIBUTOR,
                                     description="GIC distributor frame.")
    gic_cpu_interface: Address = Field(default=layout.GIC_CPU_INTERFACE,
                                       description="GICv2 CPU interface frame.")
    gic_redistributors: Address = Field(default=layout.GIC_REDISTRIBUTORS,
                                        description="GICv3 redistributors, 128 KiB per vCPU.")
    uart: Pl011Config = Field(default_factory=Pl011Config, description="The PL011 console.")
    stack_top: Address | None = Field(
        default=None, description="Initial stack pointer of every vCPU; the end of RAM if unset."
    )
    boot_x0: int = Field(
        default=0, ge=0, description="x0 (r0) at entry, e.g. the address of a device tree."
    )
