"""Model-specific registers (``KVM_GET/SET_MSRS``).

The thread context carries the MSRs of :data:`KNOWN_MSRS` that this host's
KVM offers: those ``KVM_GET_MSR_INDEX_LIST`` names, and the MTRRs, which KVM
never lists (they depend on the guest's CPUID) and which are taken as
``MTRRcap`` describes them.  Every candidate is read once when the part
starts; one that cannot be read is left out.  What a host lacks is logged
once per ``/dev/kvm`` handle, never per sync.

FS_BASE, GS_BASE, EFER and APIC_BASE are not here: the special registers
(``KVM_GET/SET_SREGS``) carry them as the FS/GS segment bases, ``efer`` and
``apic_base``, and syncing them twice would let one copy undo the other.

The state lives in ``tc.parts["msrs"]`` as ``{"0x174": value, ...}``.  An
MSR absent from that dict is left as KVM has it, so a fresh thread context
writes no MSR at all.  Each sync is one ``KVM_GET_MSRS`` or
``KVM_SET_MSRS`` through buffers made once; KVM stops at the first MSR it
refuses and returns how many it did, so a short count is an
:class:`MsrAccessError` naming that MSR.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Final

from kvm_x86.state import StatePart, register_part
from kvm_x86.thread_context import X86ThreadContext
from kvm_x86.tsc import TscPart, host_clock_ns
from kvmbase import abi
from kvmbase.abi import ffi, iow, iowr
from kvmbase.errors import KvmbaseError, KvmIoctlError
from kvmbase.kvm import Kvm

ffi.cdef(
    """
    struct kvm_msr_entry {
        __u32 index;
        __u32 reserved;
        __u64 data;
    };

    struct kvm_msrs {
        __u32 nmsrs;
        __u32 pad;
        struct kvm_msr_entry entries[];
    };

    struct kvm_msr_list {
        __u32 nmsrs;
        __u32 indices[];
    };
    """
)

KVM_GET_MSR_INDEX_LIST: Final = iowr(abi.KVMIO, 0x02, "struct kvm_msr_list")
KVM_GET_MSRS: Final = iowr(abi.KVMIO, 0x88, "struct kvm_msrs")
KVM_SET_MSRS: Final = iow(abi.KVMIO, 0x89, "struct kvm_msrs")

abi.register_ioctl_names(
    {
        "KVM_GET_MSR_INDEX_LIST": KVM_GET_MSR_INDEX_LIST,
        "KVM_GET_MSRS": KVM_GET_MSRS,
        "KVM_SET_MSRS": KVM_SET_MSRS,
    }
)

log = logging.getLogger(__name__)

MSR_TSC: Final = 0x10
MSR_MTRR_CAP: Final = 0xFE
MSR_MTRR_DEF_TYPE: Final = 0x2FF
MSR_MTRR_PHYS_BASE0: Final = 0x200
#: MTRRcap: number of variable ranges (bits 7:0), fixed ranges supported (bit 8)
_MTRR_CAP_VCNT: Final = 0xFF
_MTRR_CAP_FIX: Final = 1 << 8

#: MSRs the thread context carries when KVM lists them, by index
KNOWN_MSRS: Final[dict[int, str]] = {
    0x174: "SYSENTER_CS",
    0x175: "SYSENTER_ESP",
    0x176: "SYSENTER_EIP",
    0xC0000081: "STAR",
    0xC0000082: "LSTAR",
    0xC0000083: "CSTAR",
    0xC0000084: "SFMASK",
    0xC0000102: "KERNEL_GS_BASE",
    0x277: "PAT",
    MSR_TSC: "TSC",
    # What the guest added to its TSC with wrmsr; a host write of the TSC
    # leaves it alone, so it is state of its own.
    0x3B: "TSC_ADJUST",
    0xC0000103: "TSC_AUX",
    0x1A0: "MISC_ENABLE",
}

_FIXED_MTRRS: Final[dict[int, str]] = {
    0x250: "MTRR_FIX64K_00000",
    0x258: "MTRR_FIX16K_80000",
    0x259: "MTRR_FIX16K_A0000",
    **{0x268 + i: f"MTRR_FIX4K_{0xC0000 + 0x8000 * i:05X}" for i in range(8)},
}

_E2BIG: Final = 7
_index_lists: weakref.WeakKeyDictionary[Kvm, frozenset[int]] = weakref.WeakKeyDictionary()
#: messages about missing MSRs already logged in this process
_reported: set[str] = set()


class MsrAccessError(KvmbaseError):
    """KVM read or wrote only some MSRs of a ``KVM_GET/SET_MSRS`` call."""

    def __init__(
        self, ioctl: str, *, vcpu_id: int, index: int, done: int, total: int, value: int | None
    ) -> None:
        self.ioctl = ioctl
        self.vcpu_id = vcpu_id
        self.index = index
        what = f"{msr_name(index)} ({index:#x})"
        if value is not None:
            what += f" = {value:#x}"
        super().__init__(
            f"{ioctl} on vCPU {vcpu_id} stopped at MSR {what}: KVM refused it "
            f"({done} of {total} MSRs done)"
        )


def msr_name(index: int) -> str:
    """The name kvm_x86 gives MSR ``index`` (its hex index if it has none)."""
    if index in KNOWN_MSRS:
        return KNOWN_MSRS[index]
    if index in _FIXED_MTRRS:
        return _FIXED_MTRRS[index]
    if index == MSR_MTRR_CAP:
        return "MTRR_CAP"
    if index == MSR_MTRR_DEF_TYPE:
        return "MTRR_DEF_TYPE"
    if MSR_MTRR_PHYS_BASE0 <= index < MSR_MTRR_PHYS_BASE0 + 2 * 256:
        pair, is_mask = divmod(index - MSR_MTRR_PHYS_BASE0, 2)
        return f"MTRR_PHYS_{'MASK' if is_mask else 'BASE'}{pair}"
    return f"{index:#x}"


def msr_index_list(kvm: Kvm) -> frozenset[int]:
    """``KVM_GET_MSR_INDEX_LIST`` (cached per Kvm).

    The first call asks with room for none: KVM answers E2BIG with the
    count, and the second call fetches that many (again if the list grew).
    """
    cached = _index_lists.get(kvm)
    if cached is not None:
        return cached
    room = 0
    while True:
        listing = ffi.new("struct kvm_msr_list *", {"nmsrs": room, "indices": room})
        try:
            kvm.ioctl(KVM_GET_MSR_INDEX_LIST, listing, action="listing the MSRs KVM saves")
        except KvmIoctlError as exc:
            if exc.errno == _E2BIG and listing.nmsrs > room:
                room = int(listing.nmsrs)
                continue
            raise
        indices = frozenset(int(listing.indices[i]) for i in range(listing.nmsrs))
        _index_lists[kvm] = indices
        return indices


def report_missing(what: str, indices: list[int]) -> None:
    """Log once per process and message that MSRs ``indices`` are not synced:
    every machine of the process would otherwise say the same again."""
    if not indices:
        return
    names = ", ".join(f"{msr_name(index)} ({index:#x})" for index in indices)
    message = f"{what}: {names}"
    if message not in _reported:
        _reported.add(message)
        log.warning("%s", message)


def _is_msr_key(key: object) -> bool:
    try:
        return isinstance(key, str) and f"{int(key, 16):#x}" == key
    except ValueError:
        return False


def _msr_buffer(count: int) -> Any:
    buffer = ffi.new("struct kvm_msrs *", {"nmsrs": count, "entries": max(count, 1)})
    buffer.nmsrs = count
    return buffer


@register_part
class Msrs(StatePart):
    """The MSRs of :data:`KNOWN_MSRS` and the MTRRs, as the host offers them."""

    name = "msrs"
    # Written after the special registers, before the general ones, in the
    # order gem5 writes them.
    order = 15

    def __init__(self, cpu: Any) -> None:
        super().__init__(cpu)
        #: the MSRs synced, in ioctl order; decided at the first sync
        self.indices: tuple[int, ...] = ()
        #: candidates this host's KVM does not offer, by index
        self.missing: dict[int, str] = {}
        self._resolved = False
        self._keys: tuple[str, ...] = ()
        self._get: Any = None
        self._set: Any = None
        self._one: Any = _msr_buffer(1)
        self._tsc_slot = -1
        #: the TSC this vCPU last read into a context: written back unchanged,
        #: it is left out (a write would pause or move a running TSC)
        self._tsc_read: int | None = None
        self._tsc_part: TscPart | None = None
        self._foreign_reported: set[frozenset[str]] = set()

    # -- which MSRs ------------------------------------------------------
    def resolve(self) -> tuple[int, ...]:
        """Decide once which MSRs to sync: needs the vCPU (and its CPUID)."""
        if self._resolved:
            return self.indices
        kvm = self.cpu.vm.kvm
        listed = msr_index_list(kvm)
        wanted = [index for index in KNOWN_MSRS if index in listed]
        not_listed = [index for index in KNOWN_MSRS if index not in listed]
        mtrrs, mtrr_missing = self._mtrrs()
        readable, unreadable = self._readable(wanted + mtrrs)
        self.indices = tuple(readable)
        lacking = not_listed + mtrr_missing + unreadable
        self.missing = {index: msr_name(index) for index in lacking}
        report_missing("MSRs this host's KVM does not offer, not synced", lacking)
        self._keys = tuple(f"{index:#x}" for index in self.indices)
        count = len(self.indices)
        self._get = _msr_buffer(count)
        for slot, index in enumerate(self.indices):
            self._get.entries[slot].index = index
        self._set = _msr_buffer(count)
        self._tsc_slot = self.indices.index(MSR_TSC) if MSR_TSC in self.indices else -1
        try:
            part = self.cpu.part("tsc")
        except KeyError:
            part = None
        self._tsc_part = part if isinstance(part, TscPart) else None
        self._resolved = True
        return self.indices

    def _read_one(self, index: int) -> int | None:
        one = self._one
        one.nmsrs = 1
        one.entries[0].index = index
        done = self.cpu.vcpu_ioctl(KVM_GET_MSRS, one, action=f"reading MSR {index:#x}")
        return int(one.entries[0].data) if done == 1 else None

    def read_msr(self, index: int) -> int:
        """One MSR straight from KVM (one ioctl), synced or not."""
        value = self._read_one(index)
        if value is None:
            raise MsrAccessError(
                "KVM_GET_MSRS",
                vcpu_id=self.cpu.vcpu_id,
                index=index,
                done=0,
                total=1,
                value=None,
            )
        return value

    def _mtrrs(self) -> tuple[list[int], list[int]]:
        """The MTRRs MTRRcap announces, or MTRRcap itself as missing."""
        cap = self._read_one(MSR_MTRR_CAP)
        if cap is None:
            return [], [MSR_MTRR_CAP]
        ranges = [MSR_MTRR_DEF_TYPE]
        if cap & _MTRR_CAP_FIX:
            ranges += list(_FIXED_MTRRS)
        for pair in range(cap & _MTRR_CAP_VCNT):
            ranges += [MSR_MTRR_PHYS_BASE0 + 2 * pair, MSR_MTRR_PHYS_BASE0 + 2 * pair + 1]
        return ranges, []

    def _readable(self, indices: list[int]) -> tuple[list[int], list[int]]:
        """Split ``indices`` into those KVM reads and those it refuses.

        KVM stops at the first MSR it cannot read: drop it and go on from
        the next.  Normally that is one call.
        """
        readable: list[int] = []
        refused: list[int] = []
        rest = list(indices)
        while rest:
            buffer = _msr_buffer(len(rest))
            for slot, index in enumerate(rest):
                buffer.entries[slot].index = index
            done = self.cpu.vcpu_ioctl(KVM_GET_MSRS, buffer, action="probing MSRs")
            readable += rest[:done]
            if done < len(rest):
                refused.append(rest[done])
            rest = rest[done + 1 :]
        return readable, refused

    # -- sync --------------------------------------------------------------
    def fetch(self) -> Any:
        """``KVM_GET_MSRS`` of every synced MSR into the reused buffer."""
        self.resolve()
        buffer = self._get
        total = len(self.indices)
        before = host_clock_ns()
        done = self.cpu.vcpu_ioctl(KVM_GET_MSRS, buffer, action="reading MSRs")
        if done != total:
            raise MsrAccessError(
                "KVM_GET_MSRS",
                vcpu_id=self.cpu.vcpu_id,
                index=int(buffer.entries[done].index),
                done=done,
                total=total,
                value=None,
            )
        tsc = self._tsc_part
        if tsc is not None and self._tsc_slot >= 0:
            # The TSC was read somewhere inside the ioctl: take the middle.
            now = host_clock_ns()
            tsc.anchor(int(buffer.entries[self._tsc_slot].data), (before + now) // 2)
        return buffer

    def read_into(self, tc: X86ThreadContext) -> None:
        buffer = self.fetch()
        state = tc.parts.get("msrs")
        if not isinstance(state, dict):
            state = tc.parts["msrs"] = {}
        entries = buffer.entries
        for slot, key in enumerate(self._keys):
            state[key] = int(entries[slot].data)
        if self._tsc_slot >= 0:
            self._tsc_read = int(entries[self._tsc_slot].data)

    def write_from(self, tc: X86ThreadContext) -> None:
        state = tc.parts.get("msrs")
        if not state:
            return
        self.resolve()
        buffer = self._set
        entries = buffer.entries
        count = 0
        skipped = 0
        tsc_written: int | None = None
        for index, key in zip(self.indices, self._keys, strict=True):
            value = state.get(key)
            if value is None:
                continue
            if index == MSR_TSC:
                if value == self._tsc_read:
                    skipped = 1
                    continue
                tsc_written = value
            entry = entries[count]
            entry.index = index
            entry.data = value
            count += 1
        if count + skipped != len(state):
            self._report_foreign(state)
        if not count:
            return
        buffer.nmsrs = count
        done = self.cpu.vcpu_ioctl(KVM_SET_MSRS, buffer, action="writing MSRs")
        if done != count:
            failed = entries[done]
            raise MsrAccessError(
                "KVM_SET_MSRS",
                vcpu_id=self.cpu.vcpu_id,
                index=int(failed.index),
                done=done,
                total=count,
                value=int(failed.data),
            )
        if tsc_written is not None:
            self._tsc_read = None
            if self._tsc_part is not None:
                self._tsc_part.check_write(tsc_written)

    def _report_foreign(self, state: dict[str, Any]) -> None:
        """MSRs in the context (a checkpoint from another host) not synced here."""
        foreign = frozenset(state) - frozenset(self._keys)
        if foreign and foreign not in self._foreign_reported:
            for key in foreign:
                if not _is_msr_key(key):
                    raise ValueError(
                        f"tc.parts['msrs'] has the key {key!r}: keys are MSR indices in "
                        "lower-case hex, as '0x174'"
                    )
            self._foreign_reported.add(foreign)
            indices = sorted(int(key, 16) for key in foreign)
            report_missing(
                f"{self.cpu.name}: MSRs in the thread context that this host's KVM does "
                "not offer, not written",
                indices,
            )

    def dump(self) -> dict[str, Any]:
        """Each synced MSR by name with its index and value, and MTRRcap."""
        buffer = self.fetch()
        result = {
            msr_name(index): {"index": index, "value": int(buffer.entries[slot].data)}
            for slot, index in enumerate(self.indices)
        }
        if MSR_MTRR_CAP not in self.missing:
            cap = self._read_one(MSR_MTRR_CAP)
            if cap is not None:
                result["MTRR_CAP"] = {"index": MSR_MTRR_CAP, "value": cap}
        return result
