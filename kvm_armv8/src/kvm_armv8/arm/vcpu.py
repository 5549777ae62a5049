"""``BaseArmKvmCPU``: what every ARM vCPU does, whatever its register file.

It does vCPU initialisation (``KVM_ARM_PREFERRED_TARGET``
then ``KVM_ARM_VCPU_INIT`` with the features asked for), register discovery
(``KVM_GET_REG_LIST``), and interrupt lines.  Added here: the ONE_REG sync of
a whole register list against an :class:`ArmThreadContext` (named, raw and
invariant registers; only changed registers are written; the virtual timer
last), the in-kernel GIC's start-up once every vCPU exists, PSCI system
events and the exits arm64 KVM adds.

A subclass names its registers (:meth:`named_registers`) and says which of
them it writes last; the AArch64 and the AArch32 CPUs differ only there and
in their dumps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from kvm_armv8.arm import abi as arm_abi
from kvm_armv8.arm import regs
from kvm_armv8.arm.features import VcpuFeatures
from kvm_armv8.arm.irq import IrqType, irq_line
from kvm_armv8.arm.thread_context import ArmThreadContext
from kvmbase import abi
from kvmbase.abi import ffi
from kvmbase.cpu import BaseKvmCPU
from kvmbase.errors import EmulationFailureError, KvmIoctlError, UnhandledExitError

if TYPE_CHECKING:
    from kvm_armv8.arm.gic import InKernelGic

log = logging.getLogger(__name__)
_E2BIG = 7


#: the dump sections every ARM vCPU has, in order
DUMP_SECTIONS = ("core", "fpsimd", "sysregs", "timer", "firmware", "invariant", "vcpu", "gic")


class BaseArmKvmCPU(BaseKvmCPU):
    """An arm64 KVM vCPU synced register by register with ONE_REG."""

    thread_context_class: ClassVar[type[ArmThreadContext]] = ArmThreadContext
    thread: ArmThreadContext
    # KVM_CREATE_VCPU fails with EBUSY once the vGIC is initialised
    new_vcpus_after_start: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: what KVM_ARM_VCPU_INIT is given; set before start-up
        self.features = VcpuFeatures()
        #: the MPIDR_EL1 the vCPU gets (KVM's own scheme for its id by default)
        self.mpidr = default_mpidr(self.vcpu_id)
        #: the in-kernel GIC the vCPU's interrupts go through, if any
        self.gic: InKernelGic | None = None
        #: the target KVM_ARM_VCPU_INIT used (KVM_ARM_PREFERRED_TARGET)
        self.target = -1
        #: every register id the host lists for this vCPU, in its order
        self.reg_list: tuple[int, ...] = ()
        self._named: dict[int, str] = {}
        self._write_order: tuple[int, ...] = ()
        # What KVM holds, as of the last read or write: only registers that
        # differ from it are written (a sync after a read writes nothing, and
        # the timer counter is not set back by the time the sync took).
        self._kvm_values: dict[int, int | bytes] = {}
        self._one_reg = ffi.new("struct kvm_one_reg *")
        self._cell = ffi.new("uint8_t[]", 256)
        self._cell_address = int(ffi.cast("uintptr_t", self._cell))
        self._irq_level = ffi.new("struct kvm_irq_level *")
        self._layout_2 = False

    # ------------------------------------------------------------------
    # What a subclass says
    # ------------------------------------------------------------------
    def named_registers(self) -> dict[int, str]:
        """ONE_REG id -> thread-context name of every register the context names."""
        raise NotImplementedError

    def last_written(self) -> tuple[int, ...]:
        """Ids written after all others, in this order (the virtual timer)."""
        return (regs.KVM_REG_ARM_TIMER_CNT, regs.KVM_REG_ARM_TIMER_CVAL,
                regs.KVM_REG_ARM_TIMER_CTL)

    # ------------------------------------------------------------------
    # Start-up
    # ------------------------------------------------------------------
    def arch_startup(self) -> None:
        self._layout_2 = bool(self.vm.kvm.check_extension(arm_abi.KVM_CAP_ARM_IRQ_LINE_LAYOUT_2))
        self.vcpu_init()
        self.reg_list = self.get_reg_list()
        self._classify_registers()
        self._complete_context()

    def vcpu_init(self) -> None:
        """``KVM_ARM_PREFERRED_TARGET`` and ``KVM_ARM_VCPU_INIT``."""
        self.features.check_host(self.vm.kvm)
        init = ffi.new("struct kvm_vcpu_init *")
        self.vm.ioctl(arm_abi.KVM_ARM_PREFERRED_TARGET, init,
                      action="asking for the preferred vCPU target")
        self.target = int(init.target)
        for bit in self.features.bits():
            init.features[bit // 32] |= 1 << (bit % 32)
        self.vcpu_ioctl(arm_abi.KVM_ARM_VCPU_INIT, init,
                        action=f"initialising the vCPU (target {self.target}, {self.features})")

    def get_reg_list(self) -> tuple[int, ...]:
        """``KVM_GET_REG_LIST``: ask with n = 0 for the count (E2BIG), then fetch."""
        probe = ffi.new("struct kvm_reg_list *")
        probe.n = 0
        try:
            self.vcpu_ioctl(arm_abi.KVM_GET_REG_LIST, probe, action="counting registers")
        except KvmIoctlError as exc:
            if exc.errno != _E2BIG:
                raise
        count = int(probe.n)
        buffer = ffi.new("uint64_t[]", 1 + count)
        buffer[0] = count
        self.vcpu_ioctl(arm_abi.KVM_GET_REG_LIST, ffi.cast("struct kvm_reg_list *", buffer),
                        action="listing registers")
        return tuple(int(buffer[1 + index]) for index in range(int(buffer[0])))

    def _classify_registers(self) -> None:
        named = self.named_registers()
        listed = set(self.reg_list)
        self._named = {reg_id: name for reg_id, name in named.items() if reg_id in listed}
        last = [reg_id for reg_id in self.last_written() if reg_id in listed]
        first = [reg_id for reg_id in self.reg_list
                 if reg_id not in last and not regs.is_invariant(reg_id)]
        self._write_order = (*first, *last)
        missing = sorted(set(named.values()) - set(self._named.values()))
        if missing:
            log.info("%s: the host does not list %s; they are not synced",
                     self.name, ", ".join(missing))

    def _complete_context(self) -> None:
        """Fill a context that holds only a boot state with the reset values."""
        tc = self.thread
        if tc.complete:
            return
        assigned = tc.assigned
        self._read_all()
        values = self._kvm_values
        for reg_id, name in self._named.items():
            if name not in assigned:
                tc.regs[name] = _as_int(values[reg_id])
        self._fill_raw(values)
        tc.complete = True
        tc.assigned = set()

    def startup(self) -> None:
        super().startup()
        gic = self.gic
        if gic is not None and not gic.initialized:
            cpus = [cpu for cpu in self.system.cpus if isinstance(cpu, BaseArmKvmCPU)]
            if all(cpu.vcpu_fd >= 0 for cpu in cpus):
                gic.initialize(cpus)

    def after_gic_init(self) -> None:
        """Per-vCPU set-up that needs the initialised GIC (the PMU)."""
        if self.features.pmu_v3:
            self.set_vcpu_attr(arm_abi.KVM_ARM_VCPU_PMU_V3_CTRL, arm_abi.KVM_ARM_VCPU_PMU_V3_IRQ,
                               23)
            self.set_vcpu_attr(arm_abi.KVM_ARM_VCPU_PMU_V3_CTRL,
                               arm_abi.KVM_ARM_VCPU_PMU_V3_INIT, None)

    def set_vcpu_attr(self, group: int, attribute: int, value: int | None) -> None:
        """``KVM_SET_DEVICE_ATTR`` on the vCPU fd (a 32-bit value, or none)."""
        attr = ffi.new("struct kvm_device_attr *")
        attr.group, attr.attr = group, attribute
        cell = ffi.new("uint32_t *", value or 0)
        attr.addr = int(ffi.cast("uintptr_t", cell)) if value is not None else 0
        self.vcpu_ioctl(abi.KVM_SET_DEVICE_ATTR, attr,
                        action=f"vCPU attribute group {group} attr {attribute}")

    # ------------------------------------------------------------------
    # ONE_REG
    # ------------------------------------------------------------------
    def read_reg_id(self, reg_id: int) -> int | bytes:
        """One register by id: an int up to 64 bits, bytes above."""
        size = regs.reg_size(reg_id)
        one = self._one_reg
        one.id, one.addr = reg_id, self._cell_address
        self.vcpu_ioctl(abi.KVM_GET_ONE_REG, one, action=f"reading {regs.register_name(reg_id)}")
        raw = bytes(ffi.buffer(self._cell, size))
        return int.from_bytes(raw, "little") if size <= 16 else raw

    def write_reg_id(self, reg_id: int, value: int | bytes) -> None:
        size = regs.reg_size(reg_id)
        raw = value.to_bytes(size, "little") if isinstance(value, int) else value
        if len(raw) != size:
            raise ValueError(f"{regs.register_name(reg_id)} is {size} bytes, got {len(raw)}")
        ffi.memmove(self._cell, raw, size)
        one = self._one_reg
        one.id, one.addr = reg_id, self._cell_address
        self.vcpu_ioctl(abi.KVM_SET_ONE_REG, one,
                        action=f"writing {regs.register_name(reg_id)} = {_show(value)}")

    def _read_all(self) -> None:
        self._kvm_values = {reg_id: self.read_reg_id(reg_id) for reg_id in self.reg_list}

    def _fill_raw(self, values: dict[int, int | bytes]) -> None:
        tc = self.thread
        named = self._named
        tc.raw = {i: v for i, v in values.items() if i not in named and not regs.is_invariant(i)}
        tc.invariant = {i: v for i, v in values.items() if regs.is_invariant(i)}

    # ------------------------------------------------------------------
    # The sync contract
    # ------------------------------------------------------------------
    def update_thread_context(self) -> None:
        self._read_all()
        values = self._kvm_values
        tc_regs = self.thread.regs
        for reg_id, name in self._named.items():
            tc_regs[name] = _as_int(values[reg_id])
        self._fill_raw(values)

    def update_kvm_state(self) -> None:
        self._write_registers(self.thread.regs)

    def _write_registers(self, named_values: Mapping[str, int | bytes]) -> None:
        """Write every listed register KVM does not hold yet, in write order:
        named ones from ``named_values``, the others from the context's raw
        values; then check the invariant registers."""
        raw = self.thread.raw
        named = self._named
        known = self._kvm_values
        for reg_id in self._write_order:
            name = named.get(reg_id)
            if name is not None:
                value = named_values[name]
            elif reg_id in raw:
                value = raw[reg_id]
            else:
                continue
            if known.get(reg_id) != value:
                self.write_reg_id(reg_id, value)
                known[reg_id] = value
        self._check_invariants()

    def _check_invariants(self) -> None:
        known = self._kvm_values
        for reg_id, value in self.thread.invariant.items():
            if reg_id in known and known[reg_id] != value:
                self._warn_once(
                    f"invariant-{reg_id:#x}",
                    f"{self.name}: {regs.register_name(reg_id)} is {_show(known[reg_id])} on "
                    f"this host, the context says {_show(value)} (another host's state?); "
                    "KVM keeps its own",
                )

    def unserialize_thread(self, state: Any) -> None:
        self._kvm_values = {}
        super().unserialize_thread(state)

    def take_over_from(self, other: BaseKvmCPU) -> None:
        self._kvm_values = {}
        if isinstance(other, BaseArmKvmCPU) and self.vcpu_fd < 0 and other.vcpu_fd >= 0:
            # This CPU carries on on other's vCPU: the same identity, and the
            # features KVM_ARM_VCPU_INIT must be given again unchanged.
            self.mpidr, self.features, self.gic = other.mpidr, other.features, other.gic
        super().take_over_from(other)

    # ------------------------------------------------------------------
    # Dumps
    # ------------------------------------------------------------------
    def _ids(self, section: str) -> list[int]:
        """The listed register ids a register-group dump section shows."""
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

    def own_dump_sections(self) -> dict[str, Callable[[], Any]]:
        """This vCPU's dump sections in order; a subclass may add its own."""
        own: dict[str, Callable[[], Any]] = {}
        for section in DUMP_SECTIONS:
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
        return self.collect_dump_sections(tuple(self.own_dump_sections()))

    def dump(self, *sections: str) -> dict[str, Any]:
        """Structured vCPU state read from KVM now (the context is untouched)."""
        return self.collect_dump(sections, self.own_dump_sections())

    # ------------------------------------------------------------------
    # Interrupt lines
    # ------------------------------------------------------------------
    def set_irq_line(self, irq_type: IrqType | int, number: int, high: bool) -> None:
        """``KVM_IRQ_LINE`` for this vCPU: a PPI (16-31) of its GIC redistributor or
        CPU interface, its IRQ/FIQ pin (no in-kernel GIC), or an SPI."""
        level = self._irq_level
        level.irq = irq_line(irq_type, number, self.vcpu_id, layout_2=self._layout_2)
        level.level = int(high)
        kind = IrqType(irq_type).name
        self.vm.ioctl(abi.KVM_IRQ_LINE, level,
                      action=f"{kind} {number} of vCPU {self.vcpu_id} {'high' if high else 'low'}")

    # ------------------------------------------------------------------
    # Exits
    # ------------------------------------------------------------------
    def handle_system_event_exit(self) -> int:
        """PSCI SYSTEM_OFF/RESET end the run (the base); a wake-up from PSCI
        SYSTEM_SUSPEND goes on; the rest is an error."""
        kind = self._run.system_event.type
        if kind == arm_abi.KVM_SYSTEM_EVENT_WAKEUP:
            return 0
        if kind == abi.KVM_SYSTEM_EVENT_RESET and self._run.system_event.ndata >= 1 and (
            self._run.system_event.data[0] & arm_abi.KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2
        ):
            self.system.exit_simulation("guest requested a reset (PSCI SYSTEM_RESET2)", 0)
            return 0
        return super().handle_system_event_exit()

    def handle_unexpected_exit(self) -> int:
        if self._run.exit_reason == arm_abi.KVM_EXIT_ARM_NISV:
            raise self._guest_error(
                UnhandledExitError,
                "KVM_EXIT_ARM_NISV: a data abort outside RAM that KVM cannot decode "
                "(no instruction syndrome: a load/store pair, writeback or SIMD access "
                f"to MMIO) at PC {self._pc():#x}",
            )
        return super().handle_unexpected_exit()

    def _pc(self) -> int:
        try:
            return _as_int(self.read_reg_id(regs.core_id("pc")))
        except KvmIoctlError:
            return -1

    def emulation_failure(self, insn: bytes) -> EmulationFailureError:
        pc = self._pc()
        return EmulationFailureError(
            f"KVM could not emulate the instruction at PC {pc:#x}", vcpu_id=self.vcpu_id,
            insn_bytes=insn, pc=pc, state=self._safe_dump(),
        )

    # ------------------------------------------------------------------
    # Dumps
    # ------------------------------------------------------------------
    def dump_registers(self, ids: Iterable[int]) -> dict[str, int | str]:
        """Registers read from KVM now, by name; values above 64 bits in hex."""
        out: dict[str, int | str] = {}
        for reg_id in ids:
            value = self.read_reg_id(reg_id)
            out[regs.register_name(reg_id)] = (
                value.hex() if isinstance(value, bytes) else value
            )
        return out

    def dump_host(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "features": {name: getattr(self.features, name)
                         for name in ("psci_0_2", "el1_32bit", "pmu_v3", "power_off")},
            "mpidr": self.mpidr,
            "registers_listed": len(self.reg_list),
            "irq_line_layout_2": self._layout_2,
        }


def default_mpidr(vcpu_id: int) -> int:
    """KVM's MPIDR_EL1 for vCPU ``vcpu_id``: Aff0 = id & 15, Aff1 = bits 4-11,
    Aff2 = bits 12-19 (16 vCPUs per cluster, GICv3's SGI target list), bit 31 set."""
    return (1 << 31) | (vcpu_id & 0xF) | ((vcpu_id >> 4) & 0xFF) << 8 | (
        (vcpu_id >> 12) & 0xFF) << 16


def _as_int(value: int | bytes) -> int:
    return int.from_bytes(value, "little") if isinstance(value, bytes) else value


def _show(value: int | bytes) -> str:
    return value.hex() if isinstance(value, bytes) else hex(value)
