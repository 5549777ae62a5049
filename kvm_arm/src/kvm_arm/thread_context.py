"""The AArch32 thread context and its mapping onto the arm64 KVM registers.

An AArch32 EL1 of arm64 KVM keeps its state in the AArch64 registers, as the
architecture maps them (Arm ARM, "Mapping of the AArch32 registers to the
AArch64 registers"):

* ``r0``-``r12`` = X0-X12; ``sp_usr``/``lr_usr`` = X13/X14, ``sp_hyp`` = X15,
  ``lr_irq``/``sp_irq`` = X16/X17, ``lr_svc``/``sp_svc`` = X18/X19,
  ``lr_abt``/``sp_abt`` = X20/X21, ``lr_und``/``sp_und`` = X22/X23,
  ``r8_fiq``-``r12_fiq`` = X24-X28, ``sp_fiq``/``lr_fiq`` = X29/X30;
* ``pc`` = PC, ``cpsr`` = PSTATE, ``spsr_svc`` = SPSR_EL1,
  ``spsr_abt``/``_und``/``_irq``/``_fiq`` = KVM's ``spsr[1..4]``;
* ``d0``-``d31``: D(2n) = V(n)[63:0], D(2n+1) = V(n)[127:64];
  ``fpscr`` = FPSR's (NZCV, QC, cumulative flags) | FPCR's bits; ``fpexc`` =
  FPEXC32_EL2;
* CP15: ``sctlr`` = SCTLR_EL1[31:0], ``ttbr0``/``ttbr1`` = TTBR0/1_EL1,
  ``ttbcr`` = TCR_EL1[31:0], ``dacr`` = DACR32_EL2, ``dfsr`` = ESR_EL1[31:0],
  ``ifsr`` = IFSR32_EL2, ``dfar``/``ifar`` = FAR_EL1[31:0]/[63:32],
  ``prrr``/``nmrr`` = MAIR_EL1[31:0]/[63:32], ``contextidr``, ``tpidrurw`` =
  TPIDR_EL0, ``tpidruro`` = TPIDRRO_EL0, ``tpidrprw`` = TPIDR_EL1, ``vbar``,
  and more (:data:`FIELDS`);
* the virtual timer: ``cntvct``, ``cntv_cval``, ``cntv_ctl``.

The AArch64 bits no AArch32 register shows (the top halves of X registers,
V16-V31 are raw registers) are kept in :attr:`ArmThreadContext32.a64`, the
AArch64 values last read, so a write back changes only what the AArch32 view
changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final, NamedTuple

from kvm_armv8.arm.thread_context import ArmThreadContext

M32: Final = 0xFFFF_FFFF
M64: Final = (1 << 64) - 1
#: FPSCR bits FPSR holds (N, Z, C, V, QC, IDC, IXC, UFC, OFC, DZC, IOC)
FPSR_MASK: Final = 0xF800_009F
#: FPSCR bits FPCR holds (AHP, DN, FZ, RMode, Stride, FZ16, Len, trap enables)
FPCR_MASK: Final = 0x07FF_9F00

#: CPSR at entry: SVC mode, A, I and F masked (KVM's reset value)
CPSR_SVC_MASKED: Final = 0x1D3


class Field(NamedTuple):
    """AArch32 register ``a32`` holds ``(a64 & mask) >> shift``."""

    a32: str
    a64: str
    mask: int
    shift: int = 0


GP_NAMES: Final = (
    *(f"r{n}" for n in range(13)), "sp_usr", "lr_usr", "sp_hyp", "lr_irq", "sp_irq",
    "lr_svc", "sp_svc", "lr_abt", "sp_abt", "lr_und", "sp_und",
    *(f"r{n}_fiq" for n in range(8, 13)), "sp_fiq", "lr_fiq",
)
SPSR_MAP: Final = (("spsr_svc", "spsr_el1"), ("spsr_abt", "spsr_abt"),
                   ("spsr_und", "spsr_und"), ("spsr_irq", "spsr_irq"),
                   ("spsr_fiq", "spsr_fiq"))
#: CP15 (and other system) registers: (a32 name, AArch64 name, mask, shift)
CP15: Final = (
    ("sctlr", "sctlr_el1", M32, 0), ("actlr", "actlr_el1", M32, 0),
    ("cpacr", "cpacr_el1", M32, 0),
    ("ttbr0", "ttbr0_el1", M64, 0), ("ttbr1", "ttbr1_el1", M64, 0),
    ("ttbcr", "tcr_el1", M32, 0), ("dacr", "dacr32_el2", M32, 0),
    ("dfsr", "esr_el1", M32, 0), ("ifsr", "ifsr32_el2", M32, 0),
    ("adfsr", "afsr0_el1", M32, 0), ("aifsr", "afsr1_el1", M32, 0),
    ("dfar", "far_el1", M32, 0), ("ifar", "far_el1", M32 << 32, 32),
    ("par", "par_el1", M64, 0),
    ("prrr", "mair_el1", M32, 0), ("nmrr", "mair_el1", M32 << 32, 32),
    ("amair0", "amair_el1", M32, 0), ("amair1", "amair_el1", M32 << 32, 32),
    ("vbar", "vbar_el1", M32, 0), ("contextidr", "contextidr_el1", M32, 0),
    ("tpidrurw", "tpidr_el0", M32, 0), ("tpidruro", "tpidrro_el0", M32, 0),
    ("tpidrprw", "tpidr_el1", M32, 0), ("csselr", "csselr_el1", M32, 0),
    ("mpidr", "mpidr_el1", M32, 0),
)
TIMER_MAP: Final = (("cntvct", "cntvct_el0"), ("cntv_cval", "cntv_cval_el0"),
                    ("cntv_ctl", "cntv_ctl_el0"))


def _fields() -> tuple[Field, ...]:
    fields = [Field(name, f"x{n}", M32) for n, name in enumerate(GP_NAMES)]
    fields += [Field("pc", "pc", M32), Field("cpsr", "pstate", M32)]
    fields += [Field(a32, a64, M32) for a32, a64 in SPSR_MAP]
    for n in range(32):
        fields.append(Field(f"d{n}", f"v{n // 2}", M64 << (64 * (n % 2)), 64 * (n % 2)))
    fields += [Field("fpscr", "fpsr", FPSR_MASK), Field("fpscr", "fpcr", FPCR_MASK),
               Field("fpexc", "fpexc32_el2", M32)]
    fields += [Field(*entry) for entry in CP15]
    fields += [Field(a32, a64, M64) for a32, a64 in TIMER_MAP]
    return tuple(fields)


#: every AArch32 register as fields of AArch64 ones
FIELDS: Final = _fields()
#: the AArch64 registers the AArch32 names cover (lower case)
A64_NAMES: Final = tuple(dict.fromkeys(field.a64 for field in FIELDS))
REGISTER_NAMES: Final = tuple(dict.fromkeys(field.a32 for field in FIELDS))


def to_a32(a64: Mapping[str, int]) -> dict[str, int]:
    """The AArch32 registers the AArch64 values ``a64`` hold (those present)."""
    out: dict[str, int] = {}
    for field in FIELDS:
        if field.a64 in a64:
            out[field.a32] = out.get(field.a32, 0) | (a64[field.a64] & field.mask) >> field.shift
    return out


def to_a64(a32: Mapping[str, int], base: Mapping[str, int]) -> dict[str, int]:
    """AArch64 values: ``base`` (the values last read) with the AArch32 registers
    ``a32`` put in their fields."""
    out = {name: base.get(name, 0) for name in A64_NAMES}
    for field in FIELDS:
        if field.a32 in a32:
            value = (a32[field.a32] << field.shift) & field.mask
            out[field.a64] = (out[field.a64] & ~field.mask) | value
    return out


class ArmThreadContext32(ArmThreadContext):
    """AArch32 registers by name; the rest of the arm64 state by ONE_REG id."""

    arch: ClassVar[str] = "arm"
    register_names: ClassVar[tuple[str, ...]] = REGISTER_NAMES

    def __init__(self) -> None:
        super().__init__()
        self.regs["cpsr"] = CPSR_SVC_MASKED
        #: the AArch64 registers behind the named ones, as last read from KVM
        self.a64: dict[str, int] = {}

    @property
    def pc(self) -> int:
        return self.regs["pc"]

    def save_state(self) -> dict[str, Any]:
        state = super().save_state()
        state["a64"] = {name: f"{value:#x}" for name, value in self.a64.items()}
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.a64 = {name: int(value, 16) for name, value in state.get("a64", {}).items()}
        super().load_state(state)
