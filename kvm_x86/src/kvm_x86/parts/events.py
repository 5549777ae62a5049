"""Pending vCPU events (``KVM_GET/SET_VCPU_EVENTS``).

The state KVM keeps between instructions that no register shows: an
exception, interrupt or NMI injected but not yet taken, a pending NMI, NMI
blocking (set while the guest is in its NMI handler), the interrupt shadow
after ``sti`` or ``mov ss``, the SIPI vector, SMM state and, where the VM
enabled ``KVM_CAP_X86_TRIPLE_FAULT_EVENT``, a pending triple fault.  With
this part a checkpoint carries them, so a guest restored inside its NMI
handler still has NMIs blocked.

The state lives in ``tc.parts["events"]`` as a dict of the sub-structs of
``struct kvm_vcpu_events`` (``exception``, ``interrupt``, ``nmi``, ``smi``,
``triple_fault``) plus ``sipi_vector`` and ``flags``; :meth:`VcpuEvents.dump`
renders the same dict.  The part is skipped on hosts without
``KVM_CAP_VCPU_EVENTS``.
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
    struct kvm_vcpu_events {
        struct {
            __u8 injected;
            __u8 nr;
            __u8 has_error_code;
            __u8 pending;
            __u32 error_code;
        } exception;
        struct {
            __u8 injected;
            __u8 nr;
            __u8 soft;
            __u8 shadow;
        } interrupt;
        struct {
            __u8 injected;
            __u8 pending;
            __u8 masked;
            __u8 pad;
        } nmi;
        __u32 sipi_vector;
        __u32 flags;
        struct {
            __u8 smm;
            __u8 pending;
            __u8 smm_inside_nmi;
            __u8 latched_init;
        } smi;
        struct {
            __u8 pending;
        } triple_fault;
        __u8 reserved[26];
        __u8 exception_has_payload;
        __u64 exception_payload;
    };
    """
)

KVM_GET_VCPU_EVENTS: Final = ior(abi.KVMIO, 0x9F, "struct kvm_vcpu_events")
KVM_SET_VCPU_EVENTS: Final = iow(abi.KVMIO, 0xA0, "struct kvm_vcpu_events")
abi.register_ioctl_names(
    {"KVM_GET_VCPU_EVENTS": KVM_GET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS": KVM_SET_VCPU_EVENTS}
)

KVM_VCPUEVENT_VALID_NMI_PENDING: Final = 0x01
KVM_VCPUEVENT_VALID_SIPI_VECTOR: Final = 0x02
KVM_VCPUEVENT_VALID_SHADOW: Final = 0x04
KVM_VCPUEVENT_VALID_SMM: Final = 0x08
KVM_VCPUEVENT_VALID_PAYLOAD: Final = 0x10
KVM_VCPUEVENT_VALID_TRIPLE_FAULT: Final = 0x20

#: interrupt.shadow bits
KVM_X86_SHADOW_INT_MOV_SS: Final = 0x01
KVM_X86_SHADOW_INT_STI: Final = 0x02

# The sub-structs and their fields, in the dict and dump form.
_FIELDS: Final = {
    "exception": ("injected", "nr", "has_error_code", "pending", "error_code"),
    "interrupt": ("injected", "nr", "soft", "shadow"),
    "nmi": ("injected", "pending", "masked"),
}
_SMI_FIELDS: Final = ("smm", "pending", "smm_inside_nmi", "latched_init")
# GET never reports these two, but SET needs them to restore the pending NMI
# count and the SIPI vector.
_ALWAYS_SET: Final = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR


def no_events() -> dict[str, Any]:
    """The events of a CPU just out of INIT: nothing pending, nothing blocked."""
    state: dict[str, Any] = {
        group: dict.fromkeys(fields, 0) for group, fields in _FIELDS.items()
    }
    state["exception"]["has_payload"] = 0
    state["exception"]["payload"] = 0
    state["sipi_vector"] = 0
    state["smi"] = dict.fromkeys(_SMI_FIELDS, 0)
    state["flags"] = KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM
    return state


@register_part
class VcpuEvents(StatePart):
    """Pending and blocked events in ``tc.parts["events"]``."""

    name = "events"
    # After the registers: KVM_SET_REGS drops a pending exception, and
    # KVM_SET_SREGS queues the interrupt of its interrupt_bitmap; the events
    # written last are the ones that stand.
    order = 80

    def __init__(self, cpu: Any) -> None:
        super().__init__(cpu)
        self.buffer = ffi.new("struct kvm_vcpu_events *")
        #: the flags this VM's KVM_GET_VCPU_EVENTS sets (learnt on first use):
        #: a checkpoint from a VM with more enabled must not set the others
        self._host_flags: int | None = None

    @classmethod
    def supported(cls, kvm: Kvm) -> tuple[bool, str]:
        if kvm.cap_vcpu_events:
            return True, ""
        return False, "the host lacks KVM_CAP_VCPU_EVENTS"

    def fetch(self) -> Any:
        """``KVM_GET_VCPU_EVENTS`` into the part's buffer."""
        self.cpu.vcpu_ioctl(KVM_GET_VCPU_EVENTS, self.buffer, action="reading vCPU events")
        if self._host_flags is None:
            self._host_flags = int(self.buffer.flags)
        return self.buffer

    def pending(self) -> bool:
        """An exception, interrupt or NMI is injected or pending but not taken."""
        events = self.fetch()
        return bool(
            events.exception.injected
            or events.exception.pending
            or events.interrupt.injected
            or events.nmi.injected
            or events.nmi.pending
        )

    def read_into(self, tc: X86ThreadContext) -> None:
        tc.parts[self.name] = self.dump()

    def write_from(self, tc: X86ThreadContext) -> None:
        state = tc.parts.get(self.name)
        if state is None:
            return  # nothing saved: leave KVM's as it is
        if self._host_flags is None:
            self.fetch()
        host_flags = self._host_flags or 0
        events = self.buffer
        ffi.memmove(events, bytes(ffi.sizeof(events[0])), ffi.sizeof(events[0]))
        for group, fields in _FIELDS.items():
            target = getattr(events, group)
            for field in fields:
                setattr(target, field, int(state[group][field]))
        events.sipi_vector = int(state["sipi_vector"])
        flags = (int(state["flags"]) & host_flags) | _ALWAYS_SET
        if flags & KVM_VCPUEVENT_VALID_SMM and "smi" in state:
            for field in _SMI_FIELDS:
                setattr(events.smi, field, int(state["smi"][field]))
        if flags & KVM_VCPUEVENT_VALID_PAYLOAD:
            events.exception_has_payload = int(state["exception"].get("has_payload", 0))
            events.exception_payload = int(state["exception"].get("payload", 0))
        if flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT and "triple_fault" in state:
            events.triple_fault.pending = int(state["triple_fault"]["pending"])
        events.flags = flags
        self.cpu.vcpu_ioctl(KVM_SET_VCPU_EVENTS, events, action="writing vCPU events")

    def dump(self) -> dict[str, Any]:
        events = self.fetch()
        flags = int(events.flags)
        state: dict[str, Any] = {
            group: {field: int(getattr(getattr(events, group), field)) for field in fields}
            for group, fields in _FIELDS.items()
        }
        state["exception"]["has_payload"] = int(events.exception_has_payload)
        state["exception"]["payload"] = int(events.exception_payload)
        state["sipi_vector"] = int(events.sipi_vector)
        if flags & KVM_VCPUEVENT_VALID_SMM:
            state["smi"] = {field: int(getattr(events.smi, field)) for field in _SMI_FIELDS}
        if flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT:
            state["triple_fault"] = {"pending": int(events.triple_fault.pending)}
        state["flags"] = flags
        return state
