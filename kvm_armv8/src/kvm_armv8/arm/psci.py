"""PSCI: function ids a guest calls (HVC/SMC) and what its system events mean.

KVM serves PSCI itself (``KVM_ARM_VCPU_PSCI_0_2``): CPU_ON/OFF/SUSPEND stay
in the kernel; SYSTEM_OFF and SYSTEM_RESET come out as
``KVM_EXIT_SYSTEM_EVENT`` of type SHUTDOWN or RESET, which end the run
(:meth:`kvm_armv8.arm.vcpu.BaseArmKvmCPU.handle_system_event_exit`).
"""

from __future__ import annotations

from typing import Final

PSCI_0_2_FN_BASE: Final = 0x84000000
PSCI_0_2_FN64_BASE: Final = 0xC4000000
PSCI_0_2_FN_PSCI_VERSION: Final = PSCI_0_2_FN_BASE + 0
PSCI_0_2_FN_CPU_SUSPEND: Final = PSCI_0_2_FN_BASE + 1
PSCI_0_2_FN_CPU_OFF: Final = PSCI_0_2_FN_BASE + 2
PSCI_0_2_FN_CPU_ON: Final = PSCI_0_2_FN_BASE + 3
PSCI_0_2_FN_AFFINITY_INFO: Final = PSCI_0_2_FN_BASE + 4
PSCI_0_2_FN_SYSTEM_OFF: Final = PSCI_0_2_FN_BASE + 8
PSCI_0_2_FN_SYSTEM_RESET: Final = PSCI_0_2_FN_BASE + 9
PSCI_0_2_FN64_CPU_SUSPEND: Final = PSCI_0_2_FN64_BASE + 1
PSCI_0_2_FN64_CPU_ON: Final = PSCI_0_2_FN64_BASE + 3
PSCI_0_2_FN64_AFFINITY_INFO: Final = PSCI_0_2_FN64_BASE + 4
PSCI_1_0_FN_PSCI_FEATURES: Final = PSCI_0_2_FN_BASE + 10
PSCI_1_1_FN64_SYSTEM_RESET2: Final = PSCI_0_2_FN64_BASE + 18
PSCI_RET_SUCCESS: Final = 0
PSCI_RET_NOT_SUPPORTED: Final = -1
PSCI_RET_INVALID_PARAMS: Final = -2
PSCI_RET_DENIED: Final = -3
PSCI_RET_INTERNAL_FAILURE: Final = -6

#: the names above that linux/psci.h defines (checked by the header test)
HEADER_NAMES: Final = tuple(
    name for name in dir() if (name.startswith("PSCI_") and name[5:6].isdigit())
    or name.startswith("PSCI_RET_")
)


def psci_version(major: int, minor: int) -> int:
    """The value of the PSCI_VERSION firmware register for ``major.minor``."""
    return (major << 16) | minor
