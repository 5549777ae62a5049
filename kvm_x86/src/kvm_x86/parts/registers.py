"""General registers (``KVM_GET/SET_REGS``) and special registers (``SREGS``)."""

from __future__ import annotations

from typing import Any

from kvm_x86 import abi
from kvm_x86.abi import CONTROL_NAMES, GPR_NAMES, SEGMENT_FIELDS, SEGMENT_NAMES
from kvm_x86.state import StatePart, register_part
from kvm_x86.thread_context import DescriptorTable, Segment, X86ThreadContext
from kvmbase.abi import ffi

REG_NAMES = (*GPR_NAMES, "rip", "rflags")


@register_part
class GeneralRegisters(StatePart):
    name = "regs"
    order = 20

    def __init__(self, cpu: Any) -> None:
        super().__init__(cpu)
        self.buffer = ffi.new("struct kvm_regs *")

    def fetch(self) -> Any:
        self.cpu.vcpu_ioctl(abi.KVM_GET_REGS, self.buffer, action="reading registers")
        return self.buffer

    def read_into(self, tc: X86ThreadContext) -> None:
        regs = self.fetch()
        values = tc.regs
        for name in REG_NAMES:
            values[name] = getattr(regs, name)

    def write_from(self, tc: X86ThreadContext) -> None:
        regs = self.buffer
        values = tc.regs
        for name in REG_NAMES:
            setattr(regs, name, values[name])
        self.cpu.vcpu_ioctl(abi.KVM_SET_REGS, regs, action="writing registers")

    def dump(self) -> dict[str, Any]:
        regs = self.fetch()
        return {name: int(getattr(regs, name)) for name in REG_NAMES}


@register_part
class SpecialRegisters(StatePart):
    name = "sregs"
    order = 10

    def __init__(self, cpu: Any) -> None:
        super().__init__(cpu)
        self.buffer = ffi.new("struct kvm_sregs *")

    def fetch(self) -> Any:
        self.cpu.vcpu_ioctl(abi.KVM_GET_SREGS, self.buffer, action="reading special registers")
        return self.buffer

    def read_into(self, tc: X86ThreadContext) -> None:
        sregs = self.fetch()
        for name in SEGMENT_NAMES:
            source = getattr(sregs, name)
            tc.segments[name] = Segment(
                **{field: getattr(source, field) for field in SEGMENT_FIELDS}
            )
        tc.gdt = DescriptorTable(sregs.gdt.base, sregs.gdt.limit)
        tc.idt = DescriptorTable(sregs.idt.base, sregs.idt.limit)
        for name in CONTROL_NAMES:
            tc.regs[name] = getattr(sregs, name)
        tc.interrupt_bitmap = [int(word) for word in sregs.interrupt_bitmap]

    def write_from(self, tc: X86ThreadContext) -> None:
        sregs = self.buffer
        for name in SEGMENT_NAMES:
            target = getattr(sregs, name)
            segment = tc.segments[name]
            for field in SEGMENT_FIELDS:
                setattr(target, field, getattr(segment, field))
        sregs.gdt.base, sregs.gdt.limit = tc.gdt.base, tc.gdt.limit
        sregs.idt.base, sregs.idt.limit = tc.idt.base, tc.idt.limit
        for name in CONTROL_NAMES:
            setattr(sregs, name, tc.regs[name])
        for index, word in enumerate(tc.interrupt_bitmap):
            sregs.interrupt_bitmap[index] = word
        self.cpu.vcpu_ioctl(abi.KVM_SET_SREGS, sregs, action="writing special registers")

    def dump(self) -> dict[str, Any]:
        sregs = self.fetch()
        return {
            **{
                name: {f: int(getattr(getattr(sregs, name), f)) for f in SEGMENT_FIELDS}
                for name in SEGMENT_NAMES
            },
            "gdt": {"base": int(sregs.gdt.base), "limit": int(sregs.gdt.limit)},
            "idt": {"base": int(sregs.idt.base), "limit": int(sregs.idt.limit)},
            **{name: int(getattr(sregs, name)) for name in CONTROL_NAMES},
            "interrupt_bitmap": [int(word) for word in sregs.interrupt_bitmap],
        }
