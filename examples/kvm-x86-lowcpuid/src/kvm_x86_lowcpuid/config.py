"""The ``["x86-lowcpuid"]`` section of a machine config.

It is kvm_x86's ``[x86]`` section (subclassed, so every x86 setting works
here too) with two additions and one changed default.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from kvm_x86.config import X86Config
from kvm_x86.cpuid import MAX_STANDARD_LEAF
from kvm_x86.cpuid_config import CpuidConfig
from kvmbase.config import IoPort

BRAND = "LowCPUID x86-64 (kvmbase example)"
"""The brand string this architecture's CPUs report (leaves 0x80000002-4)."""


class LowCpuidCpuidConfig(CpuidConfig):
    """kvm_x86's CPUID model settings, with this architecture's brand string."""

    brand: str = Field(
        default=BRAND,
        max_length=47,
        description="Processor brand string of leaves 0x80000002 to 0x80000004.",
    )


class LowCpuidConfig(X86Config):
    """Settings of the x86-lowcpuid machine: kvm_x86's, plus the CPUID limit."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error

    cpuid: LowCpuidCpuidConfig = Field(
        default_factory=LowCpuidCpuidConfig,
        description="The guest's CPUID model before the leaf limit (as in [x86.cpuid]).",
    )
    max_basic_leaf: int = Field(
        default=7,
        ge=2,
        le=MAX_STANDARD_LEAF,
        description="The highest standard CPUID leaf the guest is told of (leaf 0 EAX).",
    )
    post_port: IoPort = Field(
        default=0x80,
        description="Port whose writes the plugin records as POST codes instead of "
        "sending them to the bus.",
    )
