"""ONE_REG register ids of arm64 KVM: build them, take them apart, name them.

An arm64 id is ``KVM_REG_ARM64 | size | group << 16 | index``.  The groups
(``KVM_REG_ARM_COPROC``, bits 16-27) are:

=========  ======================  ==============================================
group      what                    index
=========  ======================  ==============================================
``0x10``   core (``struct          offset of the field in ``struct kvm_regs`` in
           kvm_regs``)             32-bit words (``KVM_REG_ARM_CORE_REG``)
``0x11``   demux                   ``0x00 << 8 | CSSELR``: one CCSIDR per cache
``0x13``   AArch64 system regs     ``op0:2 op1:3 CRn:4 CRm:4 op2:3``
``0x14``   firmware (PSCI, SMCCC)  the firmware register number
``0x15``   SVE                     Z, P, FFR slices and the VLS pseudo-register
``0x16``   firmware feature maps   the bitmap number
=========  ======================  ==============================================

Everything here is pure computation, checked against the arm64 kernel
headers by ``tests/kvm_armv8/test_reg_ids.py`` on any host.  AArch32 guests
(``kvm_arm``) use the same ids: arm64 KVM shows their registers through the
AArch64 core registers and system registers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from kvm_armv8.arm.sysregs import SYSREG_NAMES, SYSREGS
from kvmbase import abi

KVM_REG_ARM64: Final = 0x6000000000000000
KVM_REG_ARM_COPROC_MASK: Final = 0x000000000FFF0000
KVM_REG_ARM_COPROC_SHIFT: Final = 16
KVM_REG_ARM_INDEX_MASK: Final = 0xFFFF


class RegGroup(enum.IntEnum):
    """``KVM_REG_ARM_COPROC`` values of arm64 KVM."""

    CORE = 0x10
    DEMUX = 0x11
    SYSREG = 0x13
    FW = 0x14
    SVE = 0x15
    FW_FEAT_BMAP = 0x16


KVM_REG_ARM_CORE: Final = RegGroup.CORE << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM_DEMUX: Final = RegGroup.DEMUX << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM64_SYSREG: Final = RegGroup.SYSREG << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM_FW: Final = RegGroup.FW << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM64_SVE: Final = RegGroup.SVE << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM_FW_FEAT_BMAP: Final = RegGroup.FW_FEAT_BMAP << KVM_REG_ARM_COPROC_SHIFT

KVM_REG_ARM_DEMUX_ID_SHIFT: Final = 8
KVM_REG_ARM_DEMUX_ID_MASK: Final = 0xFF00
KVM_REG_ARM_DEMUX_ID_CCSIDR: Final = 0x00
KVM_REG_ARM_DEMUX_VAL_MASK: Final = 0xFF

# -- struct kvm_regs (arch/arm64/include/uapi/asm/kvm.h) ----------------------
#: offsetof(struct kvm_regs, ...) in bytes: user_pt_regs is regs[31], sp, pc,
#: pstate (34 * 8 bytes); then sp_el1, elr_el1, spsr[5]; then the 16-byte
#: aligned user_fpsimd_state: vregs[32] (__uint128_t), fpsr, fpcr.
OFFSET_REGS: Final = 0
OFFSET_SP: Final = 31 * 8
OFFSET_PC: Final = 32 * 8
OFFSET_PSTATE: Final = 33 * 8
OFFSET_SP_EL1: Final = 34 * 8
OFFSET_ELR_EL1: Final = 35 * 8
OFFSET_SPSR: Final = 36 * 8
KVM_NR_SPSR: Final = 5
OFFSET_FP_REGS: Final = -(-(OFFSET_SPSR + KVM_NR_SPSR * 8) // 16) * 16
OFFSET_VREGS: Final = OFFSET_FP_REGS
OFFSET_FPSR: Final = OFFSET_VREGS + 32 * 16
OFFSET_FPCR: Final = OFFSET_FPSR + 4
SIZEOF_KVM_REGS: Final = OFFSET_FPCR + 4 + 8  # __reserved[2]

#: index of each SPSR in ``kvm_regs.spsr`` (KVM_SPSR_EL1 == KVM_SPSR_SVC)
SPSR_NAMES: Final = ("spsr_el1", "spsr_abt", "spsr_und", "spsr_irq", "spsr_fiq")

_SIZE_BYTES = {1: abi.KVM_REG_SIZE_U8, 2: abi.KVM_REG_SIZE_U16, 4: abi.KVM_REG_SIZE_U32,
               8: abi.KVM_REG_SIZE_U64, 16: abi.KVM_REG_SIZE_U128,
               32: abi.KVM_REG_SIZE_U256, 64: abi.KVM_REG_SIZE_U512,
               128: abi.KVM_REG_SIZE_U1024}


def size_field(size: int) -> int:
    """The ``KVM_REG_SIZE_*`` bits of a register of ``size`` bytes."""
    try:
        return _SIZE_BYTES[size]
    except KeyError:
        raise ValueError(f"no ONE_REG size of {size} bytes") from None


def reg_size(reg_id: int) -> int:
    """The size in bytes of the register an id names."""
    return abi.one_reg_size(reg_id)


def core_reg_id(offset: int, size: int = 8) -> int:
    """The id of the core register at byte ``offset`` of ``struct kvm_regs``."""
    if offset % 4 or not 0 <= offset < SIZEOF_KVM_REGS:
        raise ValueError(f"{offset:#x} is not a 32-bit word of struct kvm_regs")
    return KVM_REG_ARM64 | size_field(size) | KVM_REG_ARM_CORE | (offset // 4)


def _core_layout() -> dict[str, tuple[int, int]]:
    layout: dict[str, tuple[int, int]] = {}
    for n in range(31):
        layout[f"x{n}"] = (OFFSET_REGS + 8 * n, 8)
    layout["sp_el0"] = (OFFSET_SP, 8)
    layout["pc"] = (OFFSET_PC, 8)
    layout["pstate"] = (OFFSET_PSTATE, 8)
    layout["sp_el1"] = (OFFSET_SP_EL1, 8)
    layout["elr_el1"] = (OFFSET_ELR_EL1, 8)
    for index, name in enumerate(SPSR_NAMES):
        layout[name] = (OFFSET_SPSR + 8 * index, 8)
    for n in range(32):
        layout[f"v{n}"] = (OFFSET_VREGS + 16 * n, 16)
    layout["fpsr"] = (OFFSET_FPSR, 4)
    layout["fpcr"] = (OFFSET_FPCR, 4)
    return layout


#: core register name -> (byte offset in struct kvm_regs, size in bytes).
#: ``sp_el0`` is ``regs.sp``; ``spsr_el1`` is ``spsr[KVM_SPSR_EL1]``.
CORE_LAYOUT: Final[dict[str, tuple[int, int]]] = _core_layout()
#: core register name -> ONE_REG id
CORE_IDS: Final[dict[str, int]] = {
    name: core_reg_id(offset, size) for name, (offset, size) in CORE_LAYOUT.items()
}
_CORE_NAMES: Final[dict[int, str]] = {reg_id: name for name, reg_id in CORE_IDS.items()}
#: the core registers that make up the general-purpose set, in kvm_regs order
GP_NAMES: Final = tuple(name for name in CORE_LAYOUT if not name.startswith("v")
                        and name not in ("fpsr", "fpcr"))
FP_NAMES: Final = (*(f"v{n}" for n in range(32)), "fpsr", "fpcr")


def core_id(name: str) -> int:
    """The id of core register ``name`` (``x0``..``x30``, ``sp_el0``, ``pc``,
    ``pstate``, ``sp_el1``, ``elr_el1``, ``spsr_*``, ``v0``..``v31``,
    ``fpsr``, ``fpcr``)."""
    try:
        return CORE_IDS[name]
    except KeyError:
        raise KeyError(f"no arm64 core register {name!r}") from None


# -- system registers -----------------------------------------------------------
def sysreg_id(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    """``ARM64_SYS_REG(op0, op1, CRn, CRm, op2)``: a 64-bit system register."""
    for value, bits, what in ((op0, 2, "op0"), (op1, 3, "op1"), (crn, 4, "CRn"),
                              (crm, 4, "CRm"), (op2, 3, "op2")):
        if not 0 <= value < 1 << bits:
            raise ValueError(f"{what} {value} does not fit {bits} bits")
    return (KVM_REG_ARM64 | abi.KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG
            | op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2)


def sysreg_encoding(reg_id: int) -> tuple[int, int, int, int, int]:
    """(op0, op1, CRn, CRm, op2) of a system-register id."""
    if group_of(reg_id) != RegGroup.SYSREG:
        raise ValueError(f"{reg_id:#x} is not a system register id")
    return ((reg_id >> 14) & 3, (reg_id >> 11) & 7, (reg_id >> 7) & 0xF,
            (reg_id >> 3) & 0xF, reg_id & 7)


def sysreg_by_name(name: str) -> int:
    """The id of a system register by its architectural name (``SCTLR_EL1``),
    or by its generic form ``S3_0_C1_C0_0``.  CNTVCT_EL0 and CNTV_CVAL_EL0
    give KVM's ids for them (:data:`TIMER_IDS`), not their encodings."""
    upper = name.upper()
    if name.lower() in TIMER_IDS:  # KVM's own (swapped) timer ids
        return TIMER_IDS[name.lower()]
    if upper in SYSREGS:
        return sysreg_id(*SYSREGS[upper])
    parts = upper.split("_")
    if len(parts) == 5 and parts[0].startswith("S") and parts[2].startswith("C") \
            and parts[3].startswith("C"):
        try:
            return sysreg_id(int(parts[0][1:]), int(parts[1]), int(parts[2][1:]),
                             int(parts[3][1:]), int(parts[4]))
        except ValueError:
            pass
    raise KeyError(f"no arm64 system register {name!r}")


#: the virtual timer as KVM names it.  The kernel header swapped the encodings
#: of CNT and CVAL by accident, and that is ABI now: KVM_REG_ARM_TIMER_CNT is
#: the encoding of CNTV_CVAL_EL0 (3,3,14,3,2) and KVM_REG_ARM_TIMER_CVAL that
#: of CNTVCT_EL0 (3,3,14,0,2); each still means what its name says.
KVM_REG_ARM_TIMER_CTL: Final = sysreg_id(3, 3, 14, 3, 1)
KVM_REG_ARM_TIMER_CVAL: Final = sysreg_id(3, 3, 14, 0, 2)
KVM_REG_ARM_TIMER_CNT: Final = sysreg_id(3, 3, 14, 3, 2)
KVM_REG_ARM_PTIMER_CTL: Final = sysreg_id(3, 3, 14, 2, 1)
KVM_REG_ARM_PTIMER_CVAL: Final = sysreg_id(3, 3, 14, 2, 2)
KVM_REG_ARM_PTIMER_CNT: Final = sysreg_id(3, 3, 14, 0, 1)
#: the virtual-timer registers by the names the thread context uses
TIMER_IDS: Final[dict[str, int]] = {
    "cntvct_el0": KVM_REG_ARM_TIMER_CNT,
    "cntv_cval_el0": KVM_REG_ARM_TIMER_CVAL,
    "cntv_ctl_el0": KVM_REG_ARM_TIMER_CTL,
}
_TIMER_NAMES: Final = {reg_id: name.upper() for name, reg_id in TIMER_IDS.items()}


# -- firmware, demux, SVE --------------------------------------------------------
def fw_reg_id(number: int) -> int:
    """``KVM_REG_ARM_FW_REG(n)``: a KVM-as-firmware pseudo-register."""
    return KVM_REG_ARM64 | abi.KVM_REG_SIZE_U64 | KVM_REG_ARM_FW | (number & 0xFFFF)


def fw_feat_bmap_id(number: int) -> int:
    """``KVM_REG_ARM_FW_FEAT_BMAP_REG(n)``: a firmware feature bitmap."""
    return KVM_REG_ARM64 | abi.KVM_REG_SIZE_U64 | KVM_REG_ARM_FW_FEAT_BMAP | (number & 0xFFFF)


KVM_REG_ARM_PSCI_VERSION: Final = fw_reg_id(0)
KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1: Final = fw_reg_id(1)
KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2: Final = fw_reg_id(2)
KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_3: Final = fw_reg_id(3)
KVM_REG_ARM_STD_BMAP: Final = fw_feat_bmap_id(0)
KVM_REG_ARM_STD_HYP_BMAP: Final = fw_feat_bmap_id(1)
KVM_REG_ARM_VENDOR_HYP_BMAP: Final = fw_feat_bmap_id(2)
FW_NAMES: Final[dict[int, str]] = {
    KVM_REG_ARM_PSCI_VERSION: "PSCI_VERSION",
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1: "SMCCC_ARCH_WORKAROUND_1",
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2: "SMCCC_ARCH_WORKAROUND_2",
    KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_3: "SMCCC_ARCH_WORKAROUND_3",
    KVM_REG_ARM_STD_BMAP: "STD_BMAP",
    KVM_REG_ARM_STD_HYP_BMAP: "STD_HYP_BMAP",
    KVM_REG_ARM_VENDOR_HYP_BMAP: "VENDOR_HYP_BMAP",
}


def ccsidr_id(csselr: int) -> int:
    """The demux id of CCSIDR for cache selector ``csselr`` (a U32)."""
    if not 0 <= csselr <= KVM_REG_ARM_DEMUX_VAL_MASK:
        raise ValueError(f"CSSELR value {csselr} does not fit 8 bits")
    return (KVM_REG_ARM64 | abi.KVM_REG_SIZE_U32 | KVM_REG_ARM_DEMUX
            | KVM_REG_ARM_DEMUX_ID_CCSIDR << KVM_REG_ARM_DEMUX_ID_SHIFT | csselr)


def sve_zreg_id(n: int, slice_: int = 0) -> int:
    """``KVM_REG_ARM64_SVE_ZREG(n, i)`` (U2048)."""
    return (KVM_REG_ARM64 | KVM_REG_ARM64_SVE | 0x0080000000000000
            | (n & 31) << 5 | (slice_ & 31))


# -- decoding --------------------------------------------------------------------
def group_of(reg_id: int) -> int:
    """The ``KVM_REG_ARM_COPROC`` group of an id."""
    return (reg_id & KVM_REG_ARM_COPROC_MASK) >> KVM_REG_ARM_COPROC_SHIFT


def is_arm64(reg_id: int) -> bool:
    return reg_id & abi.KVM_REG_ARCH_MASK == KVM_REG_ARM64


@dataclass(frozen=True)
class RegisterId:
    """An id taken apart: its group, size, name and group-specific fields."""

    reg_id: int
    group: int
    size: int
    name: str
    #: core: byte offset in kvm_regs; sysreg: (op0, op1, CRn, CRm, op2);
    #: demux: the CSSELR value; firmware: the register number
    fields: tuple[int, ...]


def decode(reg_id: int) -> RegisterId:
    """Take a ONE_REG id apart (any arm64 id; unknown groups keep their index)."""
    if not is_arm64(reg_id):
        raise ValueError(f"{reg_id:#x} is not an arm64 ONE_REG id")
    group = group_of(reg_id)
    size = reg_size(reg_id)
    index = reg_id & KVM_REG_ARM_INDEX_MASK
    fields: tuple[int, ...]
    if group == RegGroup.CORE:
        fields = (index * 4,)
    elif group == RegGroup.SYSREG:
        fields = sysreg_encoding(reg_id)
    elif group == RegGroup.DEMUX:
        fields = (index & KVM_REG_ARM_DEMUX_VAL_MASK,)
    else:
        fields = (index,)
    return RegisterId(reg_id, group, size, register_name(reg_id), fields)


def register_name(reg_id: int) -> str:
    """A name for people: ``x0``, ``SCTLR_EL1``, ``S3_0_C0_C7_3``,
    ``CCSIDR[1]``, ``PSCI_VERSION``, ``CNTVCT_EL0`` (the timer by meaning,
    not by its swapped encoding)."""
    group = group_of(reg_id)
    index = reg_id & KVM_REG_ARM_INDEX_MASK
    if group == RegGroup.CORE:
        name = _CORE_NAMES.get(reg_id)
        return name if name is not None else f"core[{index * 4:#x}]"
    if group == RegGroup.SYSREG:
        if reg_id in _TIMER_NAMES:
            return _TIMER_NAMES[reg_id]
        encoding = sysreg_encoding(reg_id)
        known = SYSREG_NAMES.get(encoding)
        if known is not None:
            return known
        op0, op1, crn, crm, op2 = encoding
        return f"S{op0}_{op1}_C{crn}_C{crm}_{op2}"
    if group == RegGroup.DEMUX:
        if (index & KVM_REG_ARM_DEMUX_ID_MASK) >> 8 == KVM_REG_ARM_DEMUX_ID_CCSIDR:
            return f"CCSIDR[{index & KVM_REG_ARM_DEMUX_VAL_MASK}]"
        return f"demux[{index:#x}]"
    if group in (RegGroup.FW, RegGroup.FW_FEAT_BMAP):
        default = f"fw[{index}]" if group == RegGroup.FW else f"fw_bmap[{index}]"
        return FW_NAMES.get(reg_id, default)
    if group == RegGroup.SVE:
        return f"sve[{index:#x}]"
    return f"arm64[{group:#x}:{index:#x}]"


def is_invariant(reg_id: int) -> bool:
    """Whether KVM holds the register fixed for the vCPU (it refuses writes of
    other values): MIDR, REVIDR, CLIDR, AIDR, CTR and the feature ID
    registers (op0 3, op1 0, CRn 0, CRm 1-7), and every CCSIDR.  The sync
    reads them and never writes them."""
    group = group_of(reg_id)
    if group == RegGroup.DEMUX:
        return True
    if group != RegGroup.SYSREG:
        return False
    encoding = sysreg_encoding(reg_id)
    op0, op1, crn, crm, _ = encoding
    if op0 == 3 and op1 == 0 and crn == 0 and 1 <= crm <= 7:
        return True
    return encoding in INVARIANT_ENCODINGS


INVARIANT_ENCODINGS: Final = frozenset({
    SYSREGS["MIDR_EL1"], SYSREGS["REVIDR_EL1"], SYSREGS["CLIDR_EL1"],
    SYSREGS["AIDR_EL1"], SYSREGS["CTR_EL0"],
})
