"""The ``[x86]`` section of a machine config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kvm_x86 import layout
from kvm_x86.cpuid_config import CpuidConfig
from kvm_x86.pci_config import PciConfig
from kvmbase.units import Address, Frequency


class X86Config(BaseModel):
    """Settings of the x86-64 long-mode machine."""

    model_config = ConfigDict(extra="forbid")

    stack_top: Address = Field(
        default=layout.STACK_TOP, description="Initial RSP of the boot CPU (16-byte aligned)."
    )
    tss_rsp0: Address | None = Field(
        default=None,
        description="Stack the CPU switches to on an exception from CPL3 "
        "(TSS.RSP0); stack_top when unset.",
    )
    tsc_frequency: Frequency | None = Field(
        default=None,
        description="Guest TSC frequency, e.g. \"2.5GHz\". Set with KVM_SET_TSC_KHZ where the "
        "host has KVM_CAP_TSC_CONTROL; elsewhere it must be the host's own (within 250 ppm) "
        "or the machine is refused. Unset: the host's frequency.",
    )
    cpuid: CpuidConfig = Field(
        default_factory=CpuidConfig,
        description="The guest's CPUID model: vendor, family/model/stepping, brand string, "
        "features to add or remove; by default what the host's KVM gives.",
    )
    use_xsave: bool = Field(
        default=True,
        description="Carry x87/SSE/AVX/AVX-512 state through KVM_GET/SET_XSAVE, with XCR0 "
        "through KVM_GET/SET_XCRS; off: legacy KVM_GET/SET_FPU, x87/SSE only, AVX and "
        "later state not carried.",
    )
    pci: PciConfig = Field(
        default_factory=PciConfig,
        description="The PCI host (configuration mechanism #1 at ports 0xCF8-0xCFF) "
        "and its devices on bus 0.",
    )
