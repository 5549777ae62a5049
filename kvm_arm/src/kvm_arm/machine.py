"""Set-up of an AArch32 machine: every vCPU at the entry in SVC mode, MMU off."""

from __future__ import annotations

from kvm_arm.thread_context import CPSR_SVC_MASKED
from kvm_armv8.arm import layout
from kvm_armv8.arm.config import ArmMachineConfig
from kvm_armv8.arm.machine import check_arm_config, configure_arm_cpu, setup_arm_machine
from kvm_armv8.arm.vcpu import BaseArmKvmCPU
from kvmbase.config import ConfigIssue, MachineConfig
from kvmbase.machine import Machine

#: where the AArch32 machine enters an image: RAM + 0x8000 (Linux's zImage offset)
AARCH32_IMAGE_OFFSET = 0x8000
ENTRY = layout.RAM_BASE + AARCH32_IMAGE_OFFSET

__all__ = ["ENTRY", "boot_state", "check_config", "configure_arm_cpu", "setup_machine"]


def boot_state(cpu: BaseArmKvmCPU, entry: int, stack: int, section: ArmMachineConfig) -> None:
    """PC at the entry, SVC mode with A, I and F masked, SP_svc at the stack,
    r0 = boot_x0, MPIDR as KVM numbers the vCPU."""
    cpu.thread.write_regs({
        "pc": entry, "cpsr": CPSR_SVC_MASKED, "sp_svc": stack,
        "r0": section.boot_x0, "mpidr": cpu.mpidr,
    })


def check_config(config: MachineConfig) -> list[ConfigIssue]:
    issues = check_arm_config(config, "arm")
    section = config.arch_config
    if isinstance(section, ArmMachineConfig):
        if section.stack_top is not None and section.stack_top % 8:
            issues.append(ConfigIssue(("arm", "stack_top"), "must be 8-byte aligned",
                                      section.stack_top))
        if section.stack_top is not None and section.stack_top > 1 << 32:
            issues.append(ConfigIssue(("arm", "stack_top"), "must be below 4 GiB",
                                      section.stack_top))
        if section.boot_x0 >= 1 << 32:
            issues.append(ConfigIssue(("arm", "boot_x0"), "r0 is 32 bits", section.boot_x0))
    ram_end = config.vm.ram_base + config.vm.ram_size
    if ram_end > 1 << 32:
        issues.append(ConfigIssue(("vm", "ram_size"),
                                  "an AArch32 guest without LPAE sees RAM below 4 GiB only; "
                                  "the default stack would be out of reach", ram_end))
    return issues


def setup_machine(machine: Machine) -> None:
    setup_arm_machine(machine, boot_state, ENTRY)
