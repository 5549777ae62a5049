"""The x86-64 thread context: the register file the simulator owns."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from kvm_x86.abi import CONTROL_NAMES, GPR_NAMES, SEGMENT_NAMES
from kvmbase.sim.thread_context import ThreadContext


@dataclass
class Segment:
    """A segment register with its hidden part (``struct kvm_segment``)."""

    base: int = 0
    limit: int = 0xFFFF
    selector: int = 0
    type: int = 3
    present: int = 1
    dpl: int = 0
    db: int = 0
    s: int = 1
    l: int = 0  # noqa: E741 - the architectural name of the long-mode bit
    g: int = 0
    avl: int = 0
    unusable: int = 0


@dataclass
class DescriptorTable:
    base: int = 0
    limit: int = 0xFFFF


def _zero_rows(rows: int) -> list[bytes]:
    return [bytes(16) for _ in range(rows)]


@dataclass
class FpuState:
    """x87 and SSE state as ``KVM_GET_FPU`` has it."""

    fpr: list[bytes] = field(default_factory=lambda: _zero_rows(8))
    fcw: int = 0x37F
    fsw: int = 0
    ftwx: int = 0
    last_opcode: int = 0
    last_ip: int = 0
    last_dp: int = 0
    xmm: list[bytes] = field(default_factory=lambda: _zero_rows(16))
    mxcsr: int = 0x1F80


class X86ThreadContext(ThreadContext):
    """GPRs, RIP, RFLAGS, control registers and EFER in :attr:`regs`; segment
    registers, GDT/IDT and x87/SSE state in their own attributes."""

    arch: ClassVar[str] = "x86"
    register_names: ClassVar[tuple[str, ...]] = (
        *GPR_NAMES,
        "rip",
        "rflags",
        *CONTROL_NAMES,
    )

    def __init__(self) -> None:
        super().__init__()
        self.regs["rflags"] = 0x2
        self.regs["cr0"] = 0x60000010
        self.regs["apic_base"] = 0xFEE00900
        self.segments: dict[str, Segment] = {name: Segment() for name in SEGMENT_NAMES}
        self.segments["cs"] = Segment(type=11, selector=0xF000, base=0xFFFF0000)
        self.segments["tr"] = Segment(type=11, s=0)
        self.segments["ldt"] = Segment(type=2, s=0)
        self.gdt = DescriptorTable()
        self.idt = DescriptorTable()
        self.interrupt_bitmap = [0, 0, 0, 0]
        self.fpu = FpuState()
        #: further state by part name (MSRs, debug registers, ...), JSON types
        #: only; a part absent here is left as KVM has it
        self.parts: dict[str, Any] = {}

    @property
    def pc(self) -> int:
        return self.regs["rip"]

    def set_segment(self, name: str, segment: Segment) -> None:
        if name not in self.segments:
            raise KeyError(f"x86 has no segment register {name!r}")
        self.segments[name] = segment
        self.mark_dirty()

    def save_state(self) -> dict[str, Any]:
        state = super().save_state()
        state["segments"] = {name: asdict(seg) for name, seg in self.segments.items()}
        state["gdt"] = asdict(self.gdt)
        state["idt"] = asdict(self.idt)
        state["interrupt_bitmap"] = list(self.interrupt_bitmap)
        fpu = asdict(self.fpu)
        fpu["fpr"] = [row.hex() for row in self.fpu.fpr]
        fpu["xmm"] = [row.hex() for row in self.fpu.xmm]
        state["fpu"] = fpu
        state["parts"] = copy.deepcopy(self.parts)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.segments = {name: Segment(**seg) for name, seg in state["segments"].items()}
        self.gdt = DescriptorTable(**state["gdt"])
        self.idt = DescriptorTable(**state["idt"])
        self.interrupt_bitmap = [int(word) for word in state["interrupt_bitmap"]]
        fpu = dict(state["fpu"])
        fpu["fpr"] = [bytes.fromhex(row) for row in fpu["fpr"]]
        fpu["xmm"] = [bytes.fromhex(row) for row in fpu["xmm"]]
        self.fpu = FpuState(**fpu)
        self.parts = copy.deepcopy(state.get("parts", {}))
        super().load_state(state)
