"""Set-up of an AArch64 machine: every vCPU at the entry in EL1h, MMU off."""

from __future__ import annotations

from kvm_armv8.arm import layout
from kvm_armv8.arm.config import ArmMachineConfig
from kvm_armv8.arm.machine import check_arm_config, configure_arm_cpu, setup_arm_machine
from kvm_armv8.arm.vcpu import BaseArmKvmCPU
from kvm_armv8.thread_context import PSTATE_EL1H_MASKED
from kvmbase.config import ConfigIssue, MachineConfig
from kvmbase.machine import Machine

ENTRY = layout.RAM_BASE + layout.AARCH64_IMAGE_OFFSET

__all__ = ["ENTRY", "boot_state", "check_config", "configure_arm_cpu", "setup_machine"]


def boot_state(cpu: BaseArmKvmCPU, entry: int, stack: int, section: ArmMachineConfig) -> None:
    """PC at the entry, EL1h with DAIF masked, SP_EL1 at the stack, x0 = boot_x0,
    MPIDR_EL1 as KVM numbers the vCPU."""
    cpu.thread.write_regs({
        "pc": entry, "pstate": PSTATE_EL1H_MASKED, "sp_el1": stack,
        "x0": section.boot_x0, "mpidr_el1": cpu.mpidr,
    })


def check_config(config: MachineConfig) -> list[ConfigIssue]:
    issues = check_arm_config(config, "armv8")
    stack = config.arch_config.stack_top if isinstance(config.arch_config,
                                                        ArmMachineConfig) else None
    if stack is not None and stack % 16:
        issues.append(ConfigIssue(("armv8", "stack_top"), "must be 16-byte aligned", stack))
    return issues


def setup_machine(machine: Machine) -> None:
    setup_arm_machine(machine, boot_state, ENTRY)
