"""The XSAVE area in KVM's (standard, uncompacted) format, and its thread-context form.

``KVM_GET/SET_XSAVE`` exchange the area as the ``XSAVE`` instruction writes it
without compaction: the 512-byte legacy (FXSAVE) region with x87 and SSE, the
64-byte header (XSTATE_BV at 512, XCOMP_BV at 520, which must be 0 here), then
each further component at the offset CPUID leaf 0xD sub-leaf *n* gives (EBX),
with its size (EAX).  Sub-leaf 0 lists the XCR0 bits the host supports.

In the thread context the legacy region is :attr:`X86ThreadContext.fpu`; the
rest lives in ``tc.parts["xsave"]`` as JSON data::

    {"xstate_bv": 7,
     "ymm_hi128": ["<32 hex digits>", ... 16 rows],   # AVX, component 2
     "opmask": [... 8 rows of 8 bytes],                # AVX-512, component 5
     "zmm_hi256": [... 16 rows of 32 bytes],           # component 6
     "hi16_zmm": [... 16 rows of 64 bytes],            # component 7
     "pkru": ["<8 bytes>"], "component<n>": [...]}     # others, one row

Rows are the component's bytes in memory order, as hex, like ``fpu.xmm``.
Only components the host supports appear.
"""

from __future__ import annotations

import struct
import weakref
from dataclasses import dataclass
from typing import Any, Final

from kvm_x86.cpuid import supported_cpuid
from kvmbase import abi as core_abi
from kvmbase.kvm import Kvm

#: XSAVE component numbers (bits of XCR0 and XSTATE_BV)
X87: Final = 0
SSE: Final = 1
AVX: Final = 2
OPMASK: Final = 5
ZMM_HI256: Final = 6
HI16_ZMM: Final = 7
PKRU: Final = 9

#: what each component is called, in dumps and decoded masks
COMPONENT_NAMES: Final = {
    0: "x87", 1: "sse", 2: "avx", 3: "bndregs", 4: "bndcsr", 5: "opmask",
    6: "zmm_hi256", 7: "hi16_zmm", 8: "pt", 9: "pkru", 10: "pasid", 11: "cet_user",
    12: "cet_supervisor", 13: "hdc", 14: "uintr", 15: "lbr", 16: "hwp",
    17: "xtilecfg", 18: "xtiledata", 19: "apx",
}  # fmt: skip

#: components with a register file: thread-context key, register count and
#: register size (architectural; CPUID only says where they are)
REGISTER_FILES: Final = {
    AVX: ("ymm_hi128", 16, 16),
    3: ("bnd", 4, 16),
    OPMASK: ("opmask", 8, 8),
    ZMM_HI256: ("zmm_hi256", 16, 32),
    HI16_ZMM: ("hi16_zmm", 16, 64),
}

LEGACY_SIZE: Final = 512
XSTATE_BV_OFFSET: Final = 512
XCOMP_BV_OFFSET: Final = 520
HEADER_SIZE: Final = 64
#: the smallest area KVM exchanges (``struct kvm_xsave``)
MIN_AREA_SIZE: Final = 4096
#: x87 and SSE, always carried (their state is :attr:`X86ThreadContext.fpu`)
LEGACY_COMPONENTS: Final = (1 << X87) | (1 << SSE)

_CPUID_XSAVE_LEAF = 0xD
_QWORD = struct.Struct("<Q")


@dataclass(frozen=True)
class Component:
    """One XSAVE component beyond x87/SSE, where it sits in the area."""

    number: int
    name: str
    #: key of its rows in ``tc.parts["xsave"]``
    key: str
    offset: int
    size: int
    rows: int

    @property
    def mask(self) -> int:
        return 1 << self.number

    @property
    def row_size(self) -> int:
        return self.size // self.rows

    def read_rows(self, area: Any) -> list[str]:
        """The component's rows in ``area`` (a buffer), as hex."""
        step = self.row_size
        start = self.offset
        return [
            bytes(area[start + i * step : start + (i + 1) * step]).hex() for i in range(self.rows)
        ]

    def write_rows(self, area: Any, rows: list[str]) -> None:
        """Put hex ``rows`` (as :meth:`read_rows` gives) into ``area``."""
        if len(rows) != self.rows:
            raise ValueError(f"XSAVE component {self.name} has {self.rows} rows, got {len(rows)}")
        step = self.row_size
        for i, row in enumerate(rows):
            data = bytes.fromhex(row)
            if len(data) != step:
                raise ValueError(
                    f"XSAVE component {self.name} row {i} is {step} bytes, got {len(data)}"
                )
            start = self.offset + i * step
            area[start : start + step] = data


@dataclass(frozen=True)
class XsaveLayout:
    """The host's XSAVE area: supported components and where they are."""

    #: XCR0 bits the host's KVM supports (CPUID 0xD.0 EDX:EAX)
    supported: int
    #: the components beyond x87/SSE, in bit order
    components: tuple[Component, ...]
    #: bytes KVM exchanges (at least 4096)
    size: int

    def component(self, name: str) -> Component:
        """The component called ``name`` (``"avx"``) or keyed so (``"ymm_hi128"``)."""
        for component in self.components:
            if name in (component.name, component.key):
                return component
        raise KeyError(
            f"the host's XSAVE area has no component {name!r}; it has "
            f"{', '.join(c.name for c in self.components) or 'only x87 and SSE'}"
        )


def decode_xfeatures(mask: int) -> list[str]:
    """The component names of the set bits of an XCR0 / XSTATE_BV value."""
    return [COMPONENT_NAMES.get(bit, f"component{bit}") for bit in range(64) if mask >> bit & 1]


def layout_from_cpuid(
    entries: dict[tuple[int, int], tuple[int, int, int, int]], size: int
) -> XsaveLayout:
    """The layout CPUID leaf 0xD describes.

    ``entries`` maps (leaf, sub-leaf) to (eax, ebx, ecx, edx).  Supervisor
    components (ECX bit 0 of their sub-leaf) are not in the user area and are
    left out, as are components whose sub-leaf is missing or empty.
    """
    eax, _, _, edx = entries.get((_CPUID_XSAVE_LEAF, 0), (0, 0, 0, 0))
    supported = eax | edx << 32
    components = []
    for bit in range(2, 64):
        if not supported >> bit & 1:
            continue
        c_size, c_offset, c_flags, _ = entries.get((_CPUID_XSAVE_LEAF, bit), (0, 0, 0, 0))
        if c_size == 0 or c_flags & 1 or c_offset < LEGACY_SIZE + HEADER_SIZE:
            continue
        name = COMPONENT_NAMES.get(bit, f"component{bit}")
        key, rows, row_size = REGISTER_FILES.get(bit, (name, 1, c_size))
        if rows * row_size != c_size:
            key, rows = name, 1  # not the architectural shape: carry it raw
        components.append(Component(bit, name, key, c_offset, c_size, rows))
    end = max((c.offset + c.size for c in components), default=0)
    return XsaveLayout(supported, tuple(components), max(size, end, MIN_AREA_SIZE))


_cache: weakref.WeakKeyDictionary[Kvm, XsaveLayout] = weakref.WeakKeyDictionary()


def area_size(kvm: Kvm) -> int:
    """The bytes of the XSAVE area KVM exchanges: ``KVM_CAP_XSAVE2`` or 4096."""
    return max(kvm.check_extension(core_abi.KVM_CAP_XSAVE2), MIN_AREA_SIZE)


def host_layout(kvm: Kvm) -> XsaveLayout:
    """The XSAVE layout of this host's KVM, from ``KVM_GET_SUPPORTED_CPUID``.

    The supported table carries the host's own leaf 0xD offsets and sizes,
    which are the ones KVM's uncompacted area uses.
    """
    cached = _cache.get(kvm)
    if cached is None:
        table = supported_cpuid(kvm)
        entries = {}
        for i in range(table.nent):
            entry = table.entries[i]
            if entry.function == _CPUID_XSAVE_LEAF:
                entries[(entry.function, entry.index)] = (
                    int(entry.eax),
                    int(entry.ebx),
                    int(entry.ecx),
                    int(entry.edx),
                )
        cached = layout_from_cpuid(entries, area_size(kvm))
        _cache[kvm] = cached
    return cached


def zero_rows(number: int) -> list[str]:
    """The reset (all-zero) rows of register-file component ``number``."""
    _, rows, row_size = REGISTER_FILES[number]
    return [bytes(row_size).hex()] * rows


def read_xstate_bv(area: Any) -> int:
    value: int = _QWORD.unpack_from(area, XSTATE_BV_OFFSET)[0]
    return value


def write_header(area: Any, xstate_bv: int) -> None:
    """Set XSTATE_BV; XCOMP_BV and the reserved header bytes must be 0."""
    _QWORD.pack_into(area, XSTATE_BV_OFFSET, xstate_bv)
    area[XCOMP_BV_OFFSET : XSTATE_BV_OFFSET + HEADER_SIZE] = bytes(
        XSTATE_BV_OFFSET + HEADER_SIZE - XCOMP_BV_OFFSET
    )
