"""CPUID (``KVM_SET_CPUID2``): set once per vCPU, before any other state.

The table comes from the thread context (``tc.parts["cpuid"]``, put there by
:func:`kvm_x86.cpuid.apply_cpuid_config` or a checkpoint), or, where the
context has none, is the default model, which is then recorded in the context
so that checkpoints and CPU switches carry it too.
"""

from __future__ import annotations

import copy
from typing import Any

from kvm_x86 import abi
from kvm_x86.cpuid import (
    REGISTERS,
    CpuidTable,
    build_cpuid,
    differences,
    offered_table,
    read_vcpu_cpuid,
    unsupported_bits,
)
from kvm_x86.cpuid_config import CpuidConfig
from kvm_x86.state import StatePart, register_part
from kvm_x86.thread_context import X86ThreadContext
from kvmbase.errors import ConfigurationError
from kvmbase.kvm import Kvm


@register_part
class Cpuid(StatePart):
    """The guest's CPUID table, from ``tc.parts["cpuid"]`` or the default model."""

    name = "cpuid"
    # KVM checks EFER against the guest's CPUID (LME needs LM): first.
    order = 0

    def __init__(self, cpu: Any) -> None:
        super().__init__(cpu)
        #: the table data given to KVM, once it has been
        self.written: list[dict[str, int]] | None = None
        # The context's table as it was when written, to tell a change.
        self._given: Any = None

    @classmethod
    def supported(cls, kvm: Kvm) -> tuple[bool, str]:
        if not kvm.cap_extended_cpuid:
            return False, "the host's KVM lacks KVM_CAP_EXT_CPUID (KVM_SET_CPUID2)"
        return True, ""

    def read_into(self, tc: X86ThreadContext) -> None:
        # The guest cannot change its CPUID; only a context that has no table
        # yet learns the default one the vCPU got.
        if "cpuid" not in tc.parts and self.written is not None:
            tc.parts["cpuid"] = copy.deepcopy(self.written)

    def write_from(self, tc: X86ThreadContext) -> None:
        data = tc.parts.get("cpuid")
        if self.written is not None and (data is None or data == self._given):
            return  # KVM has it already (and takes no other after KVM_RUN)
        cpu = self.cpu
        table = self.table_for(tc)
        # A table from elsewhere (a checkpoint of another host) may ask for
        # more than this host gives: refuse rather than show a guest
        # features that are not there.
        extra = unsupported_bits(table, offered_table(cpu.vm.kvm))
        if extra:
            raise ConfigurationError(
                f"{cpu.name}: the thread's CPUID table sets features the host's "
                f"KVM cannot give: {', '.join(extra)}"
            )
        cpu.vcpu_ioctl(
            abi.KVM_SET_CPUID2,
            table.to_cdata(),
            action="setting CPUID (KVM takes no other table once the vCPU has run)",
        )
        held = read_vcpu_cpuid(
            cpu.vcpu_fd, len(table), target=f"vCPU {cpu.vcpu_id}", vcpu_id=cpu.vcpu_id
        )
        changed = differences(table, held)
        if changed:
            raise ConfigurationError(
                f"{cpu.name}: the host's KVM does not keep the thread's CPUID table "
                f"(was it built on another host?): {'; '.join(changed)}"
            )
        self.written = table.to_data()
        if data is None:
            tc.parts["cpuid"] = copy.deepcopy(self.written)
        self._given = copy.deepcopy(tc.parts["cpuid"])

    def table_for(self, tc: X86ThreadContext) -> CpuidTable:
        """The table the context carries, or the default model."""
        data = tc.parts.get("cpuid")
        if data is not None:
            return CpuidTable.from_data(data)
        return build_cpuid(self.cpu.vm.kvm, CpuidConfig(), apic_id=self.cpu.vcpu_id)

    def dump(self) -> dict[str, Any]:
        """The table as KVM holds it (``KVM_GET_CPUID2``), with the fields KVM
        keeps up to date while the guest runs; before the vCPU has a table,
        the one it will get."""
        cpu = self.cpu
        if self.written is None:
            table = self.table_for(cpu.thread)
        else:
            table = read_vcpu_cpuid(
                cpu.vcpu_fd,
                len(self.written),
                target=f"vCPU {cpu.vcpu_id}",
                vcpu_id=cpu.vcpu_id,
            )
        return {
            f"{entry.function:#x}.{entry.index}": {
                reg: value for reg, value in zip(REGISTERS, entry.registers(), strict=True)
            }
            for entry in table
        }
