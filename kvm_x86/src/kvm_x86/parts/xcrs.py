"""Extended control registers (XCR0) through ``KVM_GET/SET_XCRS``.

XCR0 says which XSAVE components the guest has enabled.  It is written
before the XSAVE area (this part's ``order`` is below the FPU part's), so a
guest state that uses a component arrives with the component enabled.

In the thread context: ``tc.parts["xcrs"] = {"xcr0": <int>}`` plus any
further XCR KVM reports as ``"xcr<n>"``; absent, KVM's value stays.  The
guest itself sets XCR0 with ``xsetbv`` at CPL0, which this host's
instruction emulator cannot execute: the host sets it with :func:`set_xcr0`.
"""

from __future__ import annotations

from typing import Any, Final

from kvm_x86.state import StatePart, register_part
from kvm_x86.thread_context import X86ThreadContext
from kvm_x86.xsave_layout import decode_xfeatures, host_layout
from kvmbase import abi as core_abi
from kvmbase.abi import ffi, ior, iow
from kvmbase.kvm import Kvm

ffi.cdef(
    """
    struct kvm_xcr {
        __u32 xcr;
        __u32 reserved;
        __u64 value;
    };

    struct kvm_xcrs {
        __u32 nr_xcrs;
        __u32 flags;
        struct kvm_xcr xcrs[16];
        __u64 padding[16];
    };
    """
)

KVM_GET_XCRS: Final = ior(core_abi.KVMIO, 0xA6, "struct kvm_xcrs")
KVM_SET_XCRS: Final = iow(core_abi.KVMIO, 0xA7, "struct kvm_xcrs")
core_abi.register_ioctl_names({"KVM_GET_XCRS": KVM_GET_XCRS, "KVM_SET_XCRS": KVM_SET_XCRS})

#: the XCR KVM carries (XCR0, the XSAVE feature enable mask)
XCR0: Final = 0


def xcr_key(index: int) -> str:
    """The ``tc.parts["xcrs"]`` key of XCR ``index``."""
    return f"xcr{index}"


def set_xcr0(tc: X86ThreadContext, value: int) -> None:
    """Set the guest's XCR0 in the thread context (reaches KVM on next run)."""
    tc.mark_dirty()  # first: refused if the context is stale
    tc.parts.setdefault("xcrs", {})[xcr_key(XCR0)] = value


def xcr0(tc: X86ThreadContext) -> int | None:
    """XCR0 as the thread context holds it; None if it holds none."""
    value = tc.parts.get("xcrs", {}).get(xcr_key(XCR0))
    return None if value is None else int(value)


@register_part
class Xcrs(StatePart):
    """XCR0 (and any other XCR KVM reports) in ``tc.parts["xcrs"]``."""

    name = "xcrs"
    # After the special registers (CR4.OSXSAVE), before the XSAVE area (40).
    order = 35

    def __init__(self, cpu: Any) -> None:
        super().__init__(cpu)
        self.buffer = ffi.new("struct kvm_xcrs *")

    @classmethod
    def supported(cls, kvm: Kvm) -> tuple[bool, str]:
        if not kvm.cap_xcrs:
            return False, "the host's KVM lacks KVM_CAP_XCRS"
        return True, ""

    def fetch(self) -> Any:
        self.cpu.vcpu_ioctl(KVM_GET_XCRS, self.buffer, action="reading the XCRs")
        return self.buffer

    def read_into(self, tc: X86ThreadContext) -> None:
        xcrs = self.fetch()
        tc.parts["xcrs"] = {
            xcr_key(int(xcrs.xcrs[i].xcr)): int(xcrs.xcrs[i].value) for i in range(xcrs.nr_xcrs)
        }

    def write_from(self, tc: X86ThreadContext) -> None:
        values = tc.parts.get("xcrs")
        if not values:
            return  # nothing known: KVM keeps what it has
        xcrs = self.buffer
        items = sorted(values.items())
        if len(items) > len(xcrs.xcrs):
            raise ValueError(f"{len(items)} XCRs in the thread context; KVM takes at most 16")
        for i, (key, value) in enumerate(items):
            if not key.startswith("xcr") or not key[3:].isdigit():
                raise ValueError(f"thread context XCR key {key!r} is not xcr<n>")
            xcrs.xcrs[i].xcr = int(key[3:])
            xcrs.xcrs[i].value = int(value)
        xcrs.nr_xcrs = len(items)
        xcrs.flags = 0
        self.cpu.vcpu_ioctl(KVM_SET_XCRS, xcrs, action=f"writing the XCRs ({_describe(values)})")

    def dump(self) -> dict[str, Any]:
        xcrs = self.fetch()
        result: dict[str, Any] = {}
        for i in range(xcrs.nr_xcrs):
            index, value = int(xcrs.xcrs[i].xcr), int(xcrs.xcrs[i].value)
            result[xcr_key(index)] = f"{value:#x}"
            if index == XCR0:
                result["xcr0_components"] = decode_xfeatures(value)
        supported = host_layout(self.cpu.vm.kvm).supported
        result["host_supported"] = f"{supported:#x}"
        result["host_supported_components"] = decode_xfeatures(supported)
        return result


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={int(value):#x}" for key, value in sorted(values.items()))
