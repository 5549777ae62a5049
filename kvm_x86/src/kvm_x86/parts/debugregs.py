"""Debug registers DR0-DR3, DR6 and DR7 (``KVM_GET/SET_DEBUGREGS``).

The state lives in ``tc.parts["debugregs"]`` as
``{"db": [dr0, dr1, dr2, dr3], "dr6": int, "dr7": int, "flags": int}``;
absent, the vCPU keeps what KVM has.  Hosts without ``KVM_CAP_DEBUGREGS``
leave the part out (the CPU logs why once).
"""

from __future__ import annotations

from typing import Any, Final

from kvm_x86.state import StatePart, register_part
from kvm_x86.thread_context import X86ThreadContext
from kvmbase import abi
from kvmbase.abi import ffi, ior, iow
from kvmbase.kvm import Kvm

ffi.cdef(
    """
    struct kvm_debugregs {
        __u64 db[4];
        __u64 dr6;
        __u64 dr7;
        __u64 flags;
        __u64 reserved[9];
    };
    """
)

KVM_GET_DEBUGREGS: Final = ior(abi.KVMIO, 0xA1, "struct kvm_debugregs")
KVM_SET_DEBUGREGS: Final = iow(abi.KVMIO, 0xA2, "struct kvm_debugregs")

abi.register_ioctl_names(
    {"KVM_GET_DEBUGREGS": KVM_GET_DEBUGREGS, "KVM_SET_DEBUGREGS": KVM_SET_DEBUGREGS}
)


@register_part
class DebugRegisters(StatePart):
    """DR0-DR3, DR6, DR7 and KVM's flags word, in ``tc.parts["debugregs"]``."""

    name = "debugregs"
    order = 30

    def __init__(self, cpu: Any) -> None:
        super().__init__(cpu)
        self.buffer = ffi.new("struct kvm_debugregs *")

    @classmethod
    def supported(cls, kvm: Kvm) -> tuple[bool, str]:
        if not kvm.cap_debug_regs:
            return False, "the host's KVM lacks DEBUGREGS"
        return True, ""

    def fetch(self) -> Any:
        self.cpu.vcpu_ioctl(KVM_GET_DEBUGREGS, self.buffer, action="reading debug registers")
        return self.buffer

    def read_into(self, tc: X86ThreadContext) -> None:
        regs = self.fetch()
        state = tc.parts.get("debugregs")
        if not isinstance(state, dict):
            state = tc.parts["debugregs"] = {"db": [0, 0, 0, 0]}
        db = state["db"]
        for i in range(4):
            db[i] = int(regs.db[i])
        state["dr6"] = int(regs.dr6)
        state["dr7"] = int(regs.dr7)
        state["flags"] = int(regs.flags)

    def write_from(self, tc: X86ThreadContext) -> None:
        state = tc.parts.get("debugregs")
        if not state:
            return
        regs = self.buffer
        for i, value in enumerate(state["db"]):
            regs.db[i] = value
        regs.dr6 = state["dr6"]
        regs.dr7 = state["dr7"]
        # KVM defines no flag yet and refuses any: 0 unless a context says.
        regs.flags = state.get("flags", 0)
        self.cpu.vcpu_ioctl(KVM_SET_DEBUGREGS, regs, action="writing debug registers")

    def dump(self) -> dict[str, Any]:
        regs = self.fetch()
        return {
            **{f"dr{i}": int(regs.db[i]) for i in range(4)},
            "dr6": int(regs.dr6),
            "dr7": int(regs.dr7),
            "flags": int(regs.flags),
        }
