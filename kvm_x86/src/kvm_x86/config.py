"""The ``[x86]`` section of a machine config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kvm_x86 import layout
from kvmbase.units import Address


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
