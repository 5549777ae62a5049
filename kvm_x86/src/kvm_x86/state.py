"""The pieces of x86 vCPU state, each synced with its own ioctls.

A :class:`StatePart` moves one piece of state (general registers, special
registers, FPU, MSRs, ...) between the thread context and KVM, and renders it
for ``dump()``.  Parts register themselves with :func:`register_part`; the
CPU writes them in ``order`` (CPUID before special registers, because KVM
checks EFER against CPUID; XCR0 before the XSAVE area).  A part the host
cannot serve (``supported``) is left out, and the CPU says why once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from kvmbase.kvm import Kvm

if TYPE_CHECKING:
    from kvm_x86.cpu import X86KvmCPU
    from kvm_x86.thread_context import X86ThreadContext


class StatePart:
    """One piece of vCPU state: thread context ⇄ KVM, and a dump section."""

    #: the dump section, and the key of the state in ``tc.parts`` by default
    name: ClassVar[str]
    #: write order: lower first
    order: ClassVar[int] = 50

    def __init__(self, cpu: X86KvmCPU) -> None:
        self.cpu = cpu

    @classmethod
    def supported(cls, kvm: Kvm) -> tuple[bool, str]:
        """Whether this host's KVM can sync the part, and if not, why."""
        return True, ""

    def read_into(self, tc: X86ThreadContext) -> None:
        """KVM → thread context."""
        raise NotImplementedError

    def write_from(self, tc: X86ThreadContext) -> None:
        """Thread context → KVM."""
        raise NotImplementedError

    def dump(self) -> dict[str, Any]:
        """The part as KVM holds it now, as structured data."""
        raise NotImplementedError


PART_CLASSES: list[type[StatePart]] = []


def register_part(cls: type[StatePart]) -> type[StatePart]:
    """Class decorator: make the CPU sync this part."""
    if any(existing.name == cls.name for existing in PART_CLASSES):
        raise ValueError(f"two x86 state parts are named {cls.name!r}")
    PART_CLASSES.append(cls)
    PART_CLASSES.sort(key=lambda part: part.order)
    return cls
