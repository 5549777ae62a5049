"""``ArmV8KvmCPU``: the AArch64 vCPU."""

from __future__ import annotations

from typing import ClassVar

from kvm_armv8.arm import regs
from kvm_armv8.arm.vcpu import BaseArmKvmCPU
from kvm_armv8.thread_context import SYSREG_NAMES, ArmV8ThreadContext


def _named_ids() -> dict[int, str]:
    named = {regs.core_id(name): name for name in (*regs.GP_NAMES, *regs.FP_NAMES)}
    named.update({regs.sysreg_by_name(name): name for name in SYSREG_NAMES})
    named.update({reg_id: name for name, reg_id in regs.TIMER_IDS.items()})
    return named


NAMED_IDS = _named_ids()


class ArmV8KvmCPU(BaseArmKvmCPU):
    """Syncs an :class:`ArmV8ThreadContext` with KVM through ONE_REG."""

    thread_context_class: ClassVar[type[ArmV8ThreadContext]] = ArmV8ThreadContext
    thread: ArmV8ThreadContext

    def named_registers(self) -> dict[int, str]:
        return NAMED_IDS
