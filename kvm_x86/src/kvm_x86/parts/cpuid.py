"""CPUID (``KVM_SET_CPUID2``): set once per vCPU, before any other state."""

from __future__ import annotations

from typing import Any

from kvm_x86 import abi
from kvm_x86.cpuid import supported_cpuid
from kvm_x86.state import StatePart, register_part
from kvm_x86.thread_context import X86ThreadContext


@register_part
class Cpuid(StatePart):
    """For now the host's supported CPUID, as KVM reports it."""

    name = "cpuid"
    # KVM checks EFER against the guest's CPUID (LME needs LM): first.
    order = 0

    def __init__(self, cpu: Any) -> None:
        super().__init__(cpu)
        self.table: Any = None

    def read_into(self, tc: X86ThreadContext) -> None:
        """The guest cannot change its CPUID: nothing to read back."""

    def write_from(self, tc: X86ThreadContext) -> None:
        # KVM refuses a different CPUID once the vCPU has run: set it once.
        if self.table is None:
            self.table = supported_cpuid(self.cpu.vm.kvm)
            self.cpu.vcpu_ioctl(abi.KVM_SET_CPUID2, self.table, action="setting CPUID")

    def dump(self) -> dict[str, Any]:
        table = self.table if self.table is not None else supported_cpuid(self.cpu.vm.kvm)
        return {
            f"{entry.function:#x}.{entry.index}": {
                reg: int(getattr(entry, reg)) for reg in ("eax", "ebx", "ecx", "edx")
            }
            for entry in (table.entries[i] for i in range(table.nent))
        }
