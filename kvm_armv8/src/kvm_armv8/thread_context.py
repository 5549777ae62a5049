"""The AArch64 thread context: the register file the simulator owns.

Named registers (in :attr:`regs`, as ints; V registers are 128-bit ints):

* ``x0``-``x30``, ``sp_el0``, ``pc``, ``pstate``, ``sp_el1``, ``elr_el1``,
  and the SPSR bank ``spsr_el1`` (= SVC), ``spsr_abt``, ``spsr_und``,
  ``spsr_irq``, ``spsr_fiq`` (the 32-bit ones are for EL1 AArch32 state);
* ``v0``-``v31``, ``fpsr``, ``fpcr``;
* the EL0/EL1 system registers an OS keeps (:data:`SYSREG_NAMES`), lower case;
* the virtual timer: ``cntvct_el0`` (the guest's counter), ``cntv_cval_el0``,
  ``cntv_ctl_el0``.

Every other register the host lists is carried in :attr:`raw` by ONE_REG id
and every invariant one in :attr:`invariant` (see
:class:`~kvm_armv8.arm.thread_context.ArmThreadContext`).
"""

from __future__ import annotations

from typing import ClassVar, Final

from kvm_armv8.arm.regs import FP_NAMES, GP_NAMES, TIMER_IDS
from kvm_armv8.arm.thread_context import ArmThreadContext

#: the system registers the context names (an OS's EL1/EL0 state)
SYSREG_NAMES: Final = (
    "sctlr_el1", "actlr_el1", "cpacr_el1", "ttbr0_el1", "ttbr1_el1", "tcr_el1",
    "esr_el1", "afsr0_el1", "afsr1_el1", "far_el1", "par_el1", "mair_el1", "amair_el1",
    "vbar_el1", "contextidr_el1", "tpidr_el1", "tpidr_el0", "tpidrro_el0",
    "cntkctl_el1", "csselr_el1", "mdscr_el1", "mpidr_el1",
)
TIMER_NAMES: Final = tuple(TIMER_IDS)

#: PSTATE at entry: EL1h (SP_EL1), D, A, I and F masked (KVM's reset value)
PSTATE_EL1H_MASKED: Final = 0x3C5


class ArmV8ThreadContext(ArmThreadContext):
    """AArch64 registers by name, the rest by ONE_REG id."""

    arch: ClassVar[str] = "armv8"
    register_names: ClassVar[tuple[str, ...]] = (
        *GP_NAMES, *FP_NAMES, *SYSREG_NAMES, *TIMER_NAMES,
    )

    def __init__(self) -> None:
        super().__init__()
        self.regs["pstate"] = PSTATE_EL1H_MASKED

    @property
    def pc(self) -> int:
        return self.regs["pc"]
