"""``ArmKvmCPU``: an AArch32 (EL1 32-bit) vCPU of arm64 KVM."""

from __future__ import annotations

from typing import Any, ClassVar

from kvm_arm.thread_context import A64_NAMES, ArmThreadContext32, to_a32, to_a64
from kvm_armv8.arm import regs
from kvm_armv8.arm.features import VcpuFeatures
from kvm_armv8.arm.vcpu import BaseArmKvmCPU
from kvmbase.plugins import dump_sections as plugin_dump_sections

#: the dump sections, in order ("aarch32" is the context's view, read from KVM)
SECTIONS = ("aarch32", "core", "fpsimd", "sysregs", "timer", "firmware", "invariant", "vcpu",
            "gic")


def _a64_id(name: str) -> int:
    if name in regs.CORE_IDS:
        return regs.core_id(name)
    return regs.sysreg_by_name(name)


#: ONE_REG id -> AArch64 name of every register behind the AArch32 names
NAMED_IDS = {_a64_id(name): name for name in A64_NAMES}


def _as_int(value: int | bytes) -> int:
    return int.from_bytes(value, "little") if isinstance(value, bytes) else value


class ArmKvmCPU(BaseArmKvmCPU):
    """Syncs an :class:`ArmThreadContext32` with KVM: the AArch32 registers are
    fields of AArch64 ones, read and written through ONE_REG."""

    thread_context_class: ClassVar[type[ArmThreadContext32]] = ArmThreadContext32
    thread: ArmThreadContext32

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.features = VcpuFeatures(el1_32bit=True)

    def named_registers(self) -> dict[int, str]:
        return NAMED_IDS

    def _a64_values(self) -> dict[str, int]:
        values = self._kvm_values
        return {name: _as_int(values[reg_id]) for reg_id, name in self._named.items()}

    def _complete_context(self) -> None:
        tc = self.thread
        if tc.complete:
            return
        self._read_all()
        a64 = self._a64_values()
        for name, value in to_a32(a64).items():
            if name not in tc.assigned:
                tc.regs[name] = value
        tc.a64 = a64
        self._fill_raw(self._kvm_values)
        tc.complete = True
        tc.assigned = set()

    def update_thread_context(self) -> None:
        self._read_all()
        a64 = self._a64_values()
        tc = self.thread
        tc.regs.update(to_a32(a64))
        tc.a64 = a64
        self._fill_raw(self._kvm_values)

    def update_kvm_state(self) -> None:
        tc = self.thread
        named = self._named
        known = self._kvm_values
        a64 = to_a64(tc.regs, tc.a64)
        for reg_id in self._write_order:
            name = named.get(reg_id)
            value: int | bytes
            if name is not None:
                value = a64[name]
            elif reg_id in tc.raw:
                value = tc.raw[reg_id]
            else:
                continue
            if known.get(reg_id) != value:
                self.write_reg_id(reg_id, value)
                known[reg_id] = value
        tc.a64 = {name: a64[name] for name in named.values()}
        self._check_invariants()

    # -- dumps ----------------------------------------------------------
    def _ids(self, section: str) -> list[int]:
        listed = self.reg_list
        if section == "core":
            return [regs.core_id(name) for name in regs.GP_NAMES]
        if section == "fpsimd":
            return [regs.core_id(name) for name in regs.FP_NAMES]
        if section == "timer":
            return [i for i in regs.TIMER_IDS.values() if i in listed]
        if section == "invariant":
            return [i for i in listed if regs.is_invariant(i)]
        groups = {"sysregs": (regs.RegGroup.SYSREG,),
                  "firmware": (regs.RegGroup.FW, regs.RegGroup.FW_FEAT_BMAP)}
        timer = set(regs.TIMER_IDS.values())
        return [i for i in listed if regs.group_of(i) in groups[section]
                and not regs.is_invariant(i) and i not in timer]

    def dump_aarch32(self) -> dict[str, int]:
        """The AArch32 registers as KVM holds them now."""
        a64 = {name: _as_int(self.read_reg_id(reg_id)) for reg_id, name in self._named.items()}
        return to_a32(a64)

    def dump_sections(self) -> tuple[str, ...]:
        own = tuple(s for s in SECTIONS if s != "gic" or self.gic is not None)
        return own + tuple(plugin_dump_sections(self))

    def dump(self, *sections: str) -> dict[str, Any]:
        """Structured vCPU state read from KVM now (the context is untouched)."""
        extra = plugin_dump_sections(self)
        result: dict[str, Any] = {}
        for section in sections or self.dump_sections():
            if section == "aarch32":
                result[section] = self.dump_aarch32()
            elif section == "vcpu":
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
