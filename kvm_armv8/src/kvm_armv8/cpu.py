"""``ArmV8KvmCPU``: the AArch64 vCPU (gem5's ``ArmV8KvmCPU``)."""

from __future__ import annotations

from typing import Any, ClassVar

from kvm_armv8.arm import regs
from kvm_armv8.arm.vcpu import BaseArmKvmCPU
from kvm_armv8.thread_context import SYSREG_NAMES, ArmV8ThreadContext
from kvmbase.plugins import dump_sections as plugin_dump_sections

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

    def dump_sections(self) -> tuple[str, ...]:
        own = tuple(s for s in SECTIONS if s != "gic" or self.gic is not None)
        return own + tuple(plugin_dump_sections(self))

    def dump(self, *sections: str) -> dict[str, Any]:
        """Structured vCPU state read from KVM now (the context is untouched)."""
        extra = plugin_dump_sections(self)
        result: dict[str, Any] = {}
        for section in sections or self.dump_sections():
            if section == "vcpu":
                result[section] = self.dump_host()
            elif section == "gic" and self.gic is not None:
                result[section] = self.gic.dump()
            elif section in SECTIONS and section != "gic":
                result[section] = self.dump_registers(self._ids(section))
            elif section in extra:
                result[section] = extra[section]()
            else:
                raise KeyError(
                    f"no dump section {section!r}; sections: {', '.join(self.dump_sections())}"
                )
        return result
