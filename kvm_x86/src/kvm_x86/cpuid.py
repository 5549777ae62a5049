"""The guest's CPUID table: built from what the host's KVM gives.

:func:`build_cpuid` turns what the host's KVM offers (:func:`offered_table`:
``KVM_GET_SUPPORTED_CPUID`` plus the bits KVM sets on its own) and a
:class:`~kvm_x86.cpuid_config.CpuidConfig` into a :class:`CpuidTable`: the
standard leaves 0 to 0xD (fewer if the host has fewer) and the extended leaves
0x80000000 to 0x80000008, every leaf up to the maxima that leaves 0 and
0x80000000 advertise present, with all the sub-leaves the guest can enumerate
(leaf 7 up to its sub-leaf count, 0xB up to its terminating level, 0xD for each
state component).  :func:`apply_cpuid_config` stores the table in each CPU's
thread context (``tc.parts["cpuid"]``), so checkpoints and CPU switches carry
it; the ``cpuid`` state part inserts it with ``KVM_SET_CPUID2``.

The model, besides the config's changes:

* features: the host's, without x2APIC and the TSC deadline timer (both need
  KVM's in-kernel local APIC, which the machine does not create) and without
  AMX (KVM needs extra permission for its state);
* leaf 1 EBX: APIC ID = the vCPU id, one logical processor, the host's
  CLFLUSH line size; leaf 4 EAX and leaf 0xB: one thread per core, one core
  per package; 0x80000008 ECX: one core;
* XSAVE (leaf 0xD): only the state components whose features are on, none
  without ``xsave``; the size fields follow;
* 0x80000000 EBX/ECX/EDX and 0x80000001 EAX repeat the vendor string and the
  signature, as AMD's CPUs do, except with vendor GenuineIntel (zero there);
* no hypervisor leaves (0x40000000 up): the guest gets no KVM paravirtual
  features, whose state the simulator would not carry.

KVM may not keep a table as given: PVM, whose guests run CPL3 code natively,
puts the host's own bits into the feature registers that code can see (leaf 1
ECX/EDX, leaf 7, leaf 0xD).  So the model is set on a scratch vCPU first
(:func:`kvm_view`) and the table is what KVM held there: a guest reading
CPUID through KVM sees exactly the table, except where KVM computes a field
while the guest runs (:data:`RUNTIME_FIELDS`).  (On PVM, CPUID executed at
CPL3 is not intercepted at all and returns the host CPU's own values.)
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from kvm_x86 import abi
from kvm_x86.cpuid_config import DEFAULT_OFF, FEATURES, CpuidConfig, FeatureBit
from kvm_x86.thread_context import X86ThreadContext
from kvmbase.abi import KVMIO, ffi, iowr, register_ioctl_names
from kvmbase.config import ConfigError, ConfigIssue
from kvmbase.errors import ConfigurationError, KvmIoctlError
from kvmbase.ioctl import kvm_ioctl
from kvmbase.kvm import Kvm
from kvmbase.vm import KvmVM

if TYPE_CHECKING:
    from kvmbase.cpu import BaseKvmCPU
    from kvmbase.machine import Machine

log = logging.getLogger(__name__)

_E2BIG = 7
_cache: weakref.WeakKeyDictionary[Kvm, Any] = weakref.WeakKeyDictionary()
_offered: weakref.WeakKeyDictionary[Kvm, CpuidTable] = weakref.WeakKeyDictionary()
_views: weakref.WeakKeyDictionary[Kvm, dict[CpuidTable, CpuidTable]] = weakref.WeakKeyDictionary()

KVM_GET_CPUID2: Final = iowr(KVMIO, 0x91, "struct kvm_cpuid2")
register_ioctl_names({"KVM_GET_CPUID2": KVM_GET_CPUID2})

REGISTERS: Final = ("eax", "ebx", "ecx", "edx")
MAX_STANDARD_LEAF: Final = 0xD
"""The highest standard leaf the model describes."""
MAX_EXTENDED_LEAF: Final = 0x80000008
"""The highest extended leaf the model describes."""
EXTENDED_BASE: Final = 0x80000000
#: ``kvm_cpuid_entry2.flags``: the sub-leaf (ECX) selects the entry
FLAG_SIGNIFICANT_INDEX: Final = 1

RUNTIME_FIELDS: Final[dict[tuple[int, int, str], tuple[int, str]]] = {
    (0x1, 0, "ecx"): (1 << 27, "OSXSAVE = CR4.OSXSAVE"),
    (0x1, 0, "edx"): (1 << 9, "APIC cleared while IA32_APIC_BASE.EN is clear"),
    (0x7, 0, "ecx"): (1 << 4, "OSPKE = CR4.PKE"),
    (0xD, 0, "ebx"): (0xFFFFFFFF, "XSAVE area size for the current XCR0 (576 at reset)"),
    (0xD, 1, "ebx"): (
        0xFFFFFFFF,
        "with XSAVEC or XSAVES: compacted size for XCR0 | IA32_XSS (576 at reset)",
    ),
}
"""Fields KVM rewrites while the guest runs, as (leaf, sub-leaf, register) ->
(bits, why); the table holds the values a guest reads after reset (with
IA32_APIC_BASE enabled, as the machine sets it up)."""

FEATURE_REGISTERS: Final = frozenset(
    (bit.leaf, bit.subleaf, bit.register) for bit in FEATURES.values()
) | {(0xD, 0, "eax"), (0xD, 0, "edx"), (0xD, 1, "ecx"), (0xD, 1, "edx")}
"""Registers made of feature bits (and XSAVE component masks): a table may set
there only what the host offers (:func:`offered_table`)."""

# Leaf 1 EDX bits that AMD repeats in 0x80000001 EDX.
_AMD_MIRRORED_EDX: Final = frozenset((*range(0, 10), *range(12, 18), 23, 24))
_INTEL: Final = "GenuineIntel"
# XSAVE: the legacy area plus the header, the size at reset (XCR0 = x87).
_XSAVE_LEGACY_SIZE: Final = 512 + 64
# XSAVE state components and the features each needs (SDM vol. 1, 13.1).
_COMPONENT_FEATURES: Final = {
    2: ("avx",),
    3: ("mpx",),
    4: ("mpx",),
    5: ("avx", "avx512f"),
    6: ("avx", "avx512f"),
    7: ("avx", "avx512f"),
    9: ("pku",),
}
# AMX tile state is dynamic: KVM refuses it (ENXIO) unless user space asked
# for permission first (arch_prctl ARCH_REQ_XCOMP_GUEST_PERM).
_AMX_COMPONENTS: Final = (17, 18)
_AMX_LEAF7_EDX_BITS: Final = (22, 24, 25)  # amx_bf16, amx_tile, amx_int8


@dataclass(frozen=True)
class CpuidEntry:
    """One ``kvm_cpuid_entry2``: a leaf (``function``) and sub-leaf (``index``)."""

    function: int
    index: int = 0
    flags: int = 0
    eax: int = 0
    ebx: int = 0
    ecx: int = 0
    edx: int = 0

    @property
    def key(self) -> tuple[int, int]:
        return self.function, self.index

    def registers(self) -> tuple[int, int, int, int]:
        return self.eax, self.ebx, self.ecx, self.edx


@dataclass(frozen=True)
class CpuidTable:
    """A whole CPUID table, entries sorted by leaf then sub-leaf."""

    entries: tuple[CpuidEntry, ...]

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.entries, key=lambda entry: entry.key))
        object.__setattr__(self, "entries", ordered)
        keys = [entry.key for entry in ordered]
        if len(set(keys)) != len(keys):
            raise ValueError("a CPUID table lists one leaf/sub-leaf twice")

    # -- lookup ---------------------------------------------------------
    def get(self, function: int, index: int = 0) -> CpuidEntry | None:
        """The entry of ``function`` / ``index``, if the table has it."""
        for entry in self.entries:
            if entry.function == function and entry.index == index:
                return entry
        return None

    def __getitem__(self, key: tuple[int, int]) -> CpuidEntry:
        entry = self.get(*key)
        if entry is None:
            raise KeyError(f"no CPUID entry {key[0]:#x}.{key[1]}")
        return entry

    def __iter__(self) -> Iterator[CpuidEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def leaves(self) -> list[int]:
        """The distinct leaves, in order."""
        return sorted({entry.function for entry in self.entries})

    @property
    def max_standard_leaf(self) -> int:
        """The highest standard leaf, as leaf 0 EAX advertises it."""
        return self[0, 0].eax

    @property
    def max_extended_leaf(self) -> int:
        """The highest extended leaf, as leaf 0x80000000 EAX advertises it."""
        entry = self.get(EXTENDED_BASE)
        return entry.eax if entry is not None else 0

    @property
    def vendor(self) -> str:
        """The vendor string of leaf 0 (EBX, EDX, ECX)."""
        leaf0 = self[0, 0]
        return _regs_to_text((leaf0.ebx, leaf0.edx, leaf0.ecx))

    @property
    def signature(self) -> tuple[int, int, int]:
        """(family, model, stepping) from leaf 1 EAX."""
        return decode_signature(self[1, 0].eax)

    @property
    def brand(self) -> str:
        """The brand string of leaves 0x80000002 to 0x80000004."""
        regs: list[int] = []
        for leaf in range(EXTENDED_BASE + 2, EXTENDED_BASE + 5):
            entry = self.get(leaf)
            regs.extend(entry.registers() if entry is not None else (0, 0, 0, 0))
        return _regs_to_text(regs).split("\0", 1)[0]

    def has(self, feature: str) -> bool:
        """Whether the feature named ``feature`` (see FEATURES) is on."""
        where = FEATURES[feature]
        entry = self.get(where.leaf, where.subleaf)
        return entry is not None and bool(getattr(entry, where.register) >> where.bit & 1)

    def missing_leaves(self) -> list[tuple[int, int]]:
        """Leaves and sub-leaves up to the advertised maxima without an entry."""
        wanted = [(leaf, 0) for leaf in range(self.max_standard_leaf + 1)]
        if self.max_extended_leaf >= EXTENDED_BASE:
            wanted += [(leaf, 0) for leaf in range(EXTENDED_BASE, self.max_extended_leaf + 1)]
        seventh = self.get(7)
        if seventh is not None:
            wanted += [(7, sub) for sub in range(1, seventh.eax + 1)]
        xsave = self.get(0xD)
        if xsave is not None:
            components = xsave.eax | xsave.edx << 32 | _xss(self)
            wanted += [(0xD, 1)] if components else []
            wanted += [(0xD, bit) for bit in range(2, 64) if components >> bit & 1]
        return [key for key in wanted if self.get(*key) is None]

    # -- conversions ----------------------------------------------------
    def to_data(self) -> list[dict[str, int]]:
        """JSON-able form, for ``tc.parts["cpuid"]`` and checkpoints."""
        return [asdict(entry) for entry in self.entries]

    @classmethod
    def from_data(cls, data: Iterable[Mapping[str, int]]) -> CpuidTable:
        return cls(tuple(CpuidEntry(**{k: int(v) for k, v in item.items()}) for item in data))

    @classmethod
    def from_cdata(cls, table: Any) -> CpuidTable:
        """From a ``struct kvm_cpuid2 *``."""
        return cls(
            tuple(
                CpuidEntry(
                    int(e.function),
                    int(e.index),
                    int(e.flags),
                    int(e.eax),
                    int(e.ebx),
                    int(e.ecx),
                    int(e.edx),
                )
                for e in (table.entries[i] for i in range(table.nent))
            )
        )

    def to_cdata(self) -> Any:
        """A new ``struct kvm_cpuid2 *`` holding the table (for KVM_SET_CPUID2)."""
        count = len(self.entries)
        table = ffi.new("struct kvm_cpuid2 *", {"nent": count, "entries": count})
        for slot, entry in zip(table.entries, self.entries, strict=True):
            slot.function, slot.index, slot.flags = entry.function, entry.index, entry.flags
            slot.eax, slot.ebx, slot.ecx, slot.edx = entry.registers()
        return table

    def with_apic_id(self, apic_id: int) -> CpuidTable:
        """The same table for the vCPU with APIC ID ``apic_id``."""
        changed = []
        for entry in self.entries:
            if entry.function == 1:
                entry = replace(entry, ebx=entry.ebx & 0x00FFFFFF | (apic_id & 0xFF) << 24)
            elif entry.function == 0xB:
                entry = replace(entry, edx=apic_id)
            changed.append(entry)
        return CpuidTable(tuple(changed))


def _regs_to_text(regs: Iterable[int]) -> str:
    return b"".join(reg.to_bytes(4, "little") for reg in regs).decode("latin-1")


def _text_to_regs(text: str, count: int) -> list[int]:
    raw = text.encode("ascii").ljust(4 * count, b"\0")
    return [int.from_bytes(raw[4 * i : 4 * i + 4], "little") for i in range(count)]


def _xss(table: CpuidTable) -> int:
    sub1 = table.get(0xD, 1)
    return 0 if sub1 is None else sub1.ecx | sub1.edx << 32


def encode_signature(family: int, model: int, stepping: int) -> int:
    """Leaf 1 EAX for a family, model and stepping (processor type 0)."""
    base_family = min(family, 0xF)
    extended_family = family - 0xF if family >= 0xF else 0
    return (
        stepping & 0xF
        | (model & 0xF) << 4
        | base_family << 8
        | (model >> 4 & 0xF) << 16
        | extended_family << 20
    )


def decode_signature(eax: int) -> tuple[int, int, int]:
    """(family, model, stepping) of a leaf 1 EAX value."""
    base_family = eax >> 8 & 0xF
    family = base_family + (eax >> 20 & 0xFF if base_family == 0xF else 0)
    model = eax >> 4 & 0xF
    if base_family in (6, 0xF):
        model |= (eax >> 16 & 0xF) << 4
    return family, model, eax & 0xF


# -- the host's side ---------------------------------------------------------
def supported_cpuid(kvm: Kvm) -> Any:
    """``KVM_GET_SUPPORTED_CPUID`` as a ``struct kvm_cpuid2 *`` (cached per Kvm)."""
    cached = _cache.get(kvm)
    if cached is not None:
        return cached
    entries = 64
    while True:
        table = ffi.new("struct kvm_cpuid2 *", {"nent": entries, "entries": entries})
        table.nent = entries
        try:
            kvm.ioctl(abi.KVM_GET_SUPPORTED_CPUID, table, action="supported CPUID")
        except KvmIoctlError as exc:
            if exc.errno == _E2BIG and entries < 4096:
                entries *= 2
                continue
            raise
        _cache[kvm] = table
        return table


def supported_table(kvm: Kvm) -> CpuidTable:
    """``KVM_GET_SUPPORTED_CPUID`` as a :class:`CpuidTable`."""
    return CpuidTable.from_cdata(supported_cpuid(kvm))


def unsupported_bits(table: CpuidTable, offered: CpuidTable) -> list[str]:
    """Feature bits ``table`` sets that ``offered`` lacks, described."""
    problems = []
    names = {(b.leaf, b.subleaf, b.register, b.bit): n for n, b in FEATURES.items()}
    for entry in table:
        for register in REGISTERS:
            if (entry.function, entry.index, register) not in FEATURE_REGISTERS:
                continue
            host = offered.get(entry.function, entry.index)
            extra = getattr(entry, register) & ~(getattr(host, register) if host else 0)
            for bit in range(32):
                if extra >> bit & 1:
                    name = names.get((entry.function, entry.index, register, bit))
                    label = f" ({name})" if name else ""
                    problems.append(
                        f"leaf {entry.function:#x}.{entry.index} {register} bit {bit}{label}"
                    )
    return problems


def read_vcpu_cpuid(fd: int, count: int, *, target: str, vcpu_id: int | None = None) -> CpuidTable:
    """``KVM_GET_CPUID2``: the table a vCPU holds (``count`` entries)."""
    cdata = ffi.new("struct kvm_cpuid2 *", {"nent": count, "entries": count})
    kvm_ioctl(fd, KVM_GET_CPUID2, cdata, target=target, action="reading CPUID", vcpu_id=vcpu_id)
    return CpuidTable.from_cdata(cdata)


def kvm_view(kvm: Kvm, table: CpuidTable) -> CpuidTable:
    """The table as this host's KVM holds it after ``KVM_SET_CPUID2`` of
    ``table`` on a new vCPU (in a scratch VM), before it has run.

    KVM may change what it is given: it computes the runtime fields
    (:data:`RUNTIME_FIELDS`), and PVM, whose guests run CPL3 code natively,
    puts the host's own bits into the feature registers such code can see
    (leaf 1 ECX/EDX, leaf 7, leaf 0xD), whatever user space asked for.
    """
    views = _views.setdefault(kvm, {})
    view = views.get(table)
    if view is None:
        target = "a scratch vCPU"
        with KvmVM(kvm) as vm:
            fd = vm.create_vcpu(0)
            kvm_ioctl(
                fd,
                abi.KVM_SET_CPUID2,
                table.to_cdata(),
                target=target,
                action="checking what this host's KVM makes of a CPUID table",
            )
            view = read_vcpu_cpuid(fd, len(table), target=target)
        views[table] = view
    return view


def offered_table(kvm: Kvm) -> CpuidTable:
    """What this host's KVM can give a guest: ``KVM_GET_SUPPORTED_CPUID``, with
    the feature bits KVM sets whatever it is given (PVM) added.

    A config's features are checked against this table.
    """
    cached = _offered.get(kvm)
    if cached is not None:
        return cached
    supported = supported_table(kvm)
    feature_free = CpuidTable(
        tuple(_with_features(entry, lambda reg, value: 0) for entry in supported)
    )
    forced = kvm_view(kvm, feature_free)

    def add_forced(entry: CpuidEntry) -> CpuidEntry:
        held = forced.get(*entry.key)
        if held is None:
            return entry
        return _with_features(entry, lambda reg, value: value | getattr(held, reg))

    offered = CpuidTable(tuple(add_forced(entry) for entry in supported))
    _offered[kvm] = offered
    return offered


def _with_features(entry: CpuidEntry, change: Callable[[str, int], int]) -> CpuidEntry:
    """``entry`` with each feature register passed through ``change(reg, value)``."""
    values = {
        register: change(register, getattr(entry, register))
        for register in REGISTERS
        if (entry.function, entry.index, register) in FEATURE_REGISTERS
    }
    return replace(entry, **values) if values else entry


def differences(table: CpuidTable, held: CpuidTable) -> list[str]:
    """Where a vCPU's table ``held`` differs from ``table``, runtime fields
    (:data:`RUNTIME_FIELDS`) left aside."""
    problems = []
    for entry in table:
        other = held.get(*entry.key)
        if other is None:
            problems.append(f"leaf {entry.function:#x}.{entry.index} is missing")
            continue
        for register in REGISTERS:
            mask = ~RUNTIME_FIELDS.get((entry.function, entry.index, register), (0, ""))[0]
            want, got = getattr(entry, register) & mask, getattr(other, register) & mask
            if want != got:
                problems.append(
                    f"leaf {entry.function:#x}.{entry.index} {register}: "
                    f"table {want:#010x}, KVM {got:#010x}"
                )
    return problems


# -- building the table -------------------------------------------------------
class _Builder:
    """A mutable table keyed by (leaf, sub-leaf) while the model is shaped."""

    def __init__(self, offered: CpuidTable) -> None:
        self.offered = offered
        self.rows: dict[tuple[int, int], dict[str, int]] = {}

    def copy_leaf(self, function: int) -> None:
        """Every sub-leaf the host has for ``function``; a zero entry if none."""
        found = [entry for entry in self.offered if entry.function == function]
        for entry in found or [CpuidEntry(function)]:
            self.rows[entry.key] = {
                "flags": entry.flags,
                **dict(zip(REGISTERS, entry.registers(), strict=True)),
            }

    def row(self, function: int, index: int = 0, flags: int = 0) -> dict[str, int]:
        """The entry, created empty if the table lacks it."""
        return self.rows.setdefault(
            (function, index), {"flags": flags, **dict.fromkeys(REGISTERS, 0)}
        )

    def drop_leaf(self, function: int) -> None:
        for key in [key for key in self.rows if key[0] == function]:
            del self.rows[key]

    def set_bit(self, where: FeatureBit, on: bool) -> None:
        row = self.rows.get((where.leaf, where.subleaf))
        if row is None:
            return
        mask = 1 << where.bit
        row[where.register] = row[where.register] | mask if on else row[where.register] & ~mask

    def has(self, where: FeatureBit) -> bool:
        row = self.rows.get((where.leaf, where.subleaf))
        return row is not None and bool(row[where.register] >> where.bit & 1)

    def table(self) -> CpuidTable:
        return CpuidTable(
            tuple(
                CpuidEntry(function, index, **row) for (function, index), row in self.rows.items()
            )
        )


def build_cpuid(kvm: Kvm, config: CpuidConfig, *, apic_id: int = 0) -> CpuidTable:
    """The guest's CPUID table for ``config`` on this host's KVM.

    The table is what the host's KVM will hold once it is set (see
    :func:`kvm_view`), so a guest reads exactly this table.  A requested
    feature the guest would not get, or a removed one it would keep, raises
    :class:`ConfigError` naming ``x86.cpuid.features.<name>``; with
    ``on_unsupported = "mask"`` it is logged instead and the table says what
    the guest gets.
    """
    offered = offered_table(kvm)
    host_leaf0 = offered.get(0)
    host_ext = offered.get(EXTENDED_BASE)
    if host_leaf0 is None or host_ext is None:
        raise ConfigurationError("KVM_GET_SUPPORTED_CPUID lacks leaf 0 or 0x80000000")
    max_standard = min(host_leaf0.eax, MAX_STANDARD_LEAF)
    max_extended = min(host_ext.eax, MAX_EXTENDED_LEAF)

    build = _Builder(offered)
    for leaf in [*range(max_standard + 1), *range(EXTENDED_BASE, max_extended + 1)]:
        build.copy_leaf(leaf)
    build.row(0)["eax"] = max_standard
    build.row(EXTENDED_BASE)["eax"] = max_extended

    _apply_features(build, config)
    issues = _shape_identity(build, config, host_leaf0, max_extended)
    _shape_topology(build, max_standard, max_extended, apic_id)
    if max_standard >= 7:
        _shape_leaf7(build)
    if max_standard >= 0xD:
        _shape_xsave(build)
    if issues:
        raise ConfigError(issues)
    candidate = build.table()
    table = _settle(candidate, kvm_view(kvm, candidate), offered)
    issues = _feature_issues(config, table)
    if issues:
        raise ConfigError(issues)
    missing = table.missing_leaves()
    if missing:
        shown = ", ".join(f"{leaf:#x}.{index}" for leaf, index in missing)
        raise ConfigurationError(f"the host's KVM left CPUID leaves without entries: {shown}")
    return table


def _settle(candidate: CpuidTable, held: CpuidTable, offered: CpuidTable) -> CpuidTable:
    """The table KVM holds, with the runtime bits at the guest's reset values
    and an entry for every XSAVE component KVM advertises."""
    entries = {entry.key: entry for entry in held}
    for (function, index, register), (mask, _why) in RUNTIME_FIELDS.items():
        if mask == 0xFFFFFFFF or (function, index) not in entries:
            continue  # KVM's own value at reset is what the guest reads
        mine = getattr(candidate[function, index], register) & mask
        entry = entries[(function, index)]
        entries[entry.key] = replace(entry, **{register: getattr(entry, register) & ~mask | mine})
    table = CpuidTable(tuple(entries.values()))
    for function, index in table.missing_leaves():
        if function == 0xD:
            host = offered.get(0xD, index) or CpuidEntry(0xD, index)
            entries[(0xD, index)] = replace(host, flags=FLAG_SIGNIFICANT_INDEX)
    return CpuidTable(tuple(entries.values()))


def _feature_issues(config: CpuidConfig, table: CpuidTable) -> list[ConfigIssue]:
    """The config's feature requests the guest's table does not honour."""
    issues = []
    for name, wanted in config.features.items():
        if table.has(name) == wanted:
            continue
        if wanted:
            problem, outcome = "cannot give this feature", "the guest will not have it"
        else:
            problem = "cannot hide this feature (it gives guests the host's own bit)"
            outcome = "the guest will have it"
        if config.on_unsupported == "error":
            issues.append(
                ConfigIssue(("x86", "cpuid", "features", name), f"the host's KVM {problem}", wanted)
            )
        else:
            log.warning("x86.cpuid.features.%s: the host's KVM %s; %s", name, problem, outcome)
    return issues


def _apply_features(build: _Builder, config: CpuidConfig) -> None:
    """Default features, then the config's additions and removals; whether
    the host honours them is checked on the table KVM ends up with."""
    for name in (*DEFAULT_OFF, "osxsave", "ospke"):
        # osxsave and ospke: KVM sets them from CR4 while the guest runs.
        build.set_bit(FEATURES[name], False)
    for name, wanted in config.features.items():
        where = FEATURES[name]
        mirror = _amd_mirror(where)
        if not wanted:
            build.set_bit(where, False)
            if mirror is not None:
                build.set_bit(mirror, False)
        elif _offers(build.offered, where):
            build.set_bit(where, True)
            if mirror is not None and _offers(build.offered, mirror):
                build.set_bit(mirror, True)


def _offers(offered: CpuidTable, where: FeatureBit) -> bool:
    entry = offered.get(where.leaf, where.subleaf)
    return entry is not None and bool(getattr(entry, where.register) >> where.bit & 1)


def _amd_mirror(where: FeatureBit) -> FeatureBit | None:
    """The copy of a leaf 1 EDX bit that AMD keeps in 0x80000001 EDX."""
    if (where.leaf, where.register) == (1, "edx") and where.bit in _AMD_MIRRORED_EDX:
        return FeatureBit(EXTENDED_BASE + 1, 0, "edx", where.bit)
    return None


def _shape_identity(
    build: _Builder,
    config: CpuidConfig,
    host_leaf0: CpuidEntry,
    max_extended: int,
) -> list[ConfigIssue]:
    """Vendor, signature and brand string; the issues of the config's values."""
    issues = []
    vendor = config.vendor or _regs_to_text((host_leaf0.ebx, host_leaf0.edx, host_leaf0.ecx))
    leaf0 = build.row(0)
    leaf0["ebx"], leaf0["edx"], leaf0["ecx"] = _text_to_regs(vendor, 3)
    leaf1 = build.row(1)
    family, model, stepping = decode_signature(leaf1["eax"])
    family = config.family if config.family is not None else family
    model = config.model if config.model is not None else model
    stepping = config.stepping if config.stepping is not None else stepping
    if model > 0xF and family != 6 and family < 0xF:
        issues.append(
            ConfigIssue(
                ("x86", "cpuid", "model"),
                f"model {model:#x} needs the extended model field, which only family 6 "
                f"or 0xF and up have (family is {family:#x})",
                model,
            )
        )
    signature = encode_signature(family, model, stepping)
    leaf1["eax"] = signature
    amd_style = vendor != _INTEL
    ext0 = build.row(EXTENDED_BASE)
    ext0["ebx"], ext0["edx"], ext0["ecx"] = _text_to_regs(vendor, 3) if amd_style else [0] * 3
    if max_extended >= EXTENDED_BASE + 1:
        build.row(EXTENDED_BASE + 1)["eax"] = signature if amd_style else 0
    if max_extended >= EXTENDED_BASE + 4:
        brand = _text_to_regs(config.brand, 12)
        for number, leaf in enumerate(range(EXTENDED_BASE + 2, EXTENDED_BASE + 5)):
            row = build.row(leaf)
            for register, value in zip(REGISTERS, brand[4 * number : 4 * number + 4], strict=True):
                row[register] = value
    return issues


def _shape_topology(build: _Builder, max_standard: int, max_extended: int, apic_id: int) -> None:
    """One logical processor: leaf 1 EBX, leaf 4 EAX, leaf 0xB, 0x80000008 ECX."""
    leaf1 = build.row(1)
    clflush = leaf1["ebx"] >> 8 & 0xFF or 8  # in 8-byte units: 64 bytes
    leaf1["ebx"] = (apic_id & 0xFF) << 24 | 1 << 16 | clflush << 8
    for (function, _index), row in build.rows.items():
        if function == 4:
            # Intel's cache leaf: EAX 31:14 count cores and sharing threads.
            row["eax"] &= 0x3FFF
    if max_standard >= 0xB:
        build.drop_leaf(0xB)
        # Level 0: SMT, 1 thread; level 1: core, 1 core; level 2: invalid (end).
        for index, (ebx, level_type) in enumerate(((1, 1), (1, 2), (0, 0))):
            build.rows[(0xB, index)] = {
                "flags": FLAG_SIGNIFICANT_INDEX,
                "eax": 0,
                "ebx": ebx,
                "ecx": level_type << 8 | index,
                "edx": apic_id,
            }
    if max_extended >= EXTENDED_BASE + 8:
        # AMD: NC (cores - 1) and ApicIdCoreIdSize; reserved (0) on Intel.
        build.row(EXTENDED_BASE + 8)["ecx"] &= ~0xF0FF


def _shape_leaf7(build: _Builder) -> None:
    """Sub-leaves 0 to the count in 7.0 EAX, each present; no AMX."""
    leaf7 = build.row(7, 0, FLAG_SIGNIFICANT_INDEX)
    for index in range(1, leaf7["eax"] + 1):
        build.row(7, index, FLAG_SIGNIFICANT_INDEX)
    for bit in _AMX_LEAF7_EDX_BITS:
        leaf7["edx"] &= ~(1 << bit)


def _shape_xsave(build: _Builder) -> None:
    """Leaf 0xD: the state components whose features are on, their sizes."""
    supported = build.offered
    host0 = supported.get(0xD, 0) or CpuidEntry(0xD)
    host1 = supported.get(0xD, 1) or CpuidEntry(0xD, 1)
    components = xss = sub1_eax = 0
    if build.has(FEATURES["xsave"]):
        components = host0.eax | host0.edx << 32
        for bit, needs in _COMPONENT_FEATURES.items():
            if not all(build.has(FEATURES[name]) for name in needs):
                components &= ~(1 << bit)
        for bit in _AMX_COMPONENTS:
            components &= ~(1 << bit)
        # 0xD.1 EAX as the features left it (xsaveopt, xsavec, ...).
        sub1_eax = build.row(0xD, 1, FLAG_SIGNIFICANT_INDEX)["eax"]
        if build.has(FEATURES["xsaves"]):
            xss = host1.ecx | host1.edx << 32
    build.drop_leaf(0xD)
    end = _XSAVE_LEGACY_SIZE
    for bit in range(2, 64):
        if (components | xss) >> bit & 1:
            host = supported.get(0xD, bit) or CpuidEntry(0xD, bit)
            build.rows[(0xD, bit)] = {
                "flags": FLAG_SIGNIFICANT_INDEX,
                **dict(zip(REGISTERS, host.registers(), strict=True)),
            }
            if components >> bit & 1:
                end = max(end, host.ebx + host.eax)  # offset + size
    build.rows[(0xD, 0)] = {
        "flags": FLAG_SIGNIFICANT_INDEX,
        "eax": components & 0xFFFFFFFF,
        "ebx": _XSAVE_LEGACY_SIZE,  # KVM keeps it at the size for the guest's XCR0
        "ecx": end if components else 0,
        "edx": components >> 32,
    }
    compacting = build.has(FEATURES["xsavec"]) or build.has(FEATURES["xsaves"])
    build.rows[(0xD, 1)] = {
        "flags": FLAG_SIGNIFICANT_INDEX,
        "eax": sub1_eax,
        "ebx": _XSAVE_LEGACY_SIZE if compacting and components else 0,
        "ecx": xss & 0xFFFFFFFF,
        "edx": xss >> 32,
    }


# -- machine set-up ------------------------------------------------------------
def apply_cpuid_config(
    machine: Machine, config: CpuidConfig, *, cpus: Iterable[BaseKvmCPU] | None = None
) -> None:
    """Give each CPU's thread context the CPUID table for ``config``.

    The table lands in ``tc.parts["cpuid"]``; the ``cpuid`` state part
    inserts it into the vCPU before any other state.  Each CPU's copy carries
    its own APIC ID (the vCPU id).  ``cpus``: only these (a CPU added later);
    all of the machine's by default.
    """
    table = build_cpuid(machine.vm.kvm, config)
    for cpu in machine.cpus if cpus is None else cpus:
        tc = cpu.thread
        if not isinstance(tc, X86ThreadContext):
            raise ConfigurationError(f"{cpu.name} is not an x86 CPU")
        tc.parts["cpuid"] = table.with_apic_id(cpu.vcpu_id).to_data()
        tc.mark_dirty()
