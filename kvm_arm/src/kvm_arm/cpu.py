"""``ArmKvmCPU``: an AArch32 (EL1 32-bit) vCPU of arm64 KVM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from kvm_arm.thread_context import A64_NAMES, ArmThreadContext32, to_a32, to_a64
from kvm_armv8.arm import regs
from kvm_armv8.arm.features import VcpuFeatures
from kvm_armv8.arm.vcpu import BaseArmKvmCPU


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
        a64 = to_a64(tc.regs, tc.a64)
        self._write_registers(a64)
        tc.a64 = {name: a64[name] for name in self._named.values()}

    # -- dumps ----------------------------------------------------------
    def dump_aarch32(self) -> dict[str, int]:
        """The AArch32 registers as KVM holds them now."""
        a64 = {name: _as_int(self.read_reg_id(reg_id)) for reg_id, name in self._named.items()}
        return to_a32(a64)

    def own_dump_sections(self) -> dict[str, Callable[[], Any]]:
        return {"aarch32": self.dump_aarch32, **super().own_dump_sections()}
