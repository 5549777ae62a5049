"""``LowCpuidCPU``: kvm_x86's vCPU with a lower CPUID model and a POST-code log."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kvm_x86.cpu import X86KvmCPU
from kvm_x86.cpuid import EXTENDED_BASE, CpuidTable

XSAVE_LEAF = 0xD


class LowCpuidCPU(X86KvmCPU):
    """An x86-64 vCPU whose CPUID stops at ``max_basic_leaf``.

    The table kvm_x86 builds from the config is lowered here
    (:meth:`lower_cpuid`): leaf 0 EAX says ``max_basic_leaf`` and the standard
    leaves above it go. Leaf 0xD stays while XSAVE is on: KVM sizes the XSAVE
    area from it (and PVM hosts put it back whatever they are given), so the
    table stays exactly what KVM holds, as kvm_x86 requires.
    """

    #: the highest standard leaf leaf 0 advertises (the config's max_basic_leaf)
    max_basic_leaf: int = 7
    #: the port whose writes are recorded (the config's post_port)
    post_port: int = 0x80

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: every value the guest wrote to ``post_port``, in order
        self.post_codes: list[int] = []

    def lower_cpuid(self, table: CpuidTable) -> CpuidTable:
        """``table`` cut down to this CPU's CPUID model."""
        top = min(self.max_basic_leaf, table.max_standard_leaf)
        keep_xsave = table.has("xsave")
        entries = []
        for entry in table:
            if entry.key == (0, 0):
                entry = replace(entry, eax=top)
            elif top < entry.function < EXTENDED_BASE and not (
                keep_xsave and entry.function == XSAVE_LEAF
            ):
                continue
            entries.append(entry)
        return CpuidTable(tuple(entries))

    def apply_cpuid_model(self) -> None:
        """Lower the table kvm_x86 put in the thread context (``parts["cpuid"]``)."""
        tc = self.thread
        table = CpuidTable.from_data(tc.parts["cpuid"])
        tc.parts["cpuid"] = self.lower_cpuid(table).to_data()
        tc.mark_dirty()
