"""``ArmV8KvmCPU``: the AArch64 vCPU."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

from kvm_armv8.arm import regs
from kvm_armv8.arm.vcpu import BaseArmKvmCPU
from kvm_armv8.thread_context import SYSREG_NAMES, ArmV8ThreadContext

#: the dump sections, in order
SECTIONS = ("core", "fpsimd", "sysregs", "timer", "firmware", "invariant", "vcpu", "gic")


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

    # -- dumps ----------------------------------------------------------
    def _ids(self, section: str) -> list[int]:
        listed = self.reg_list
        if section == "core":
            return [regs.core_id(name) for name in regs.GP_NAMES]
        if section == "fpsimd":
            return [regs.core_id(name) for name in regs.FP_NAMES]
        if section == "timer":
            return [i for i in regs.TIMER_IDS.values() if i in listed]
        groups = {"sysregs": (regs.RegGroup.SYSREG,),
                  "firmware": (regs.RegGroup.FW, regs.RegGroup.FW_FEAT_BMAP)}
        if section == "invariant":
            return [i for i in listed if regs.is_invariant(i)]
        timer = set(regs.TIMER_IDS.values())
        return [i for i in listed if regs.group_of(i) in groups[section]
                and not regs.is_invariant(i) and i not in timer]

    def _own_sections(self) -> dict[str, Callable[[], Any]]:
        own: dict[str, Callable[[], Any]] = {}
        for section in SECTIONS:
            if section == "vcpu":
                own[section] = self.dump_host
            elif section == "gic":
                if self.gic is not None:
                    own[section] = self.gic.dump
            else:
                own[section] = partial(self._dump_group, section)
        return own

    def _dump_group(self, section: str) -> Any:
        return self.dump_registers(self._ids(section))

    def dump_sections(self) -> tuple[str, ...]:
        return self.collect_dump_sections(tuple(self._own_sections()))

    def dump(self, *sections: str) -> dict[str, Any]:
        """Structured vCPU state read from KVM now (the context is untouched)."""
        return self.collect_dump(sections, self._own_sections())
