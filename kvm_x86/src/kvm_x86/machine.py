"""Set-up of an x86-64 machine: CPU, long-mode tables, boot state."""

from __future__ import annotations

from kvm_x86 import layout
from kvm_x86.apic import APIC_BASE, APIC_SIZE, setup_apics
from kvm_x86.apic import DEVICE_NAME as APIC_DEVICE_NAME
from kvm_x86.config import X86Config
from kvm_x86.cpu import X86KvmCPU
from kvm_x86.cpuid import apply_cpuid_config
from kvm_x86.pci import setup_pci
from kvm_x86.pci_config import pci_config_issues
from kvm_x86.thread_context import X86ThreadContext
from kvm_x86.tsc import setup_tsc
from kvmbase.config import ConfigIssue, MachineConfig
from kvmbase.cpu import BaseKvmCPU
from kvmbase.machine import Machine

MIN_RAM = 2 << 20


def x86_config(config: MachineConfig) -> X86Config:
    return config.arch_config if isinstance(config.arch_config, X86Config) else X86Config()


def check_config(config: MachineConfig) -> list[ConfigIssue]:
    """Rules of the x86 machine that span sections of the config."""
    issues: list[ConfigIssue] = []
    vm = config.vm
    if vm.ram_base != 0:
        issues.append(
            ConfigIssue(("vm", "ram_base"), "the x86 machine needs RAM at address 0", vm.ram_base)
        )
    if vm.ram_size < MIN_RAM:
        issues.append(
            ConfigIssue(("vm", "ram_size"), f"the x86 machine needs at least {MIN_RAM >> 20} MiB",
                        vm.ram_size)
        )
    x86 = x86_config(config)
    ram_end = vm.ram_base + vm.ram_size
    for name in ("stack_top", "tss_rsp0"):
        value = getattr(x86, name)
        if value is None:
            continue
        if value % 16 or not layout.TABLES_END <= value <= ram_end:
            issues.append(
                ConfigIssue(
                    ("x86", name),
                    f"must be 16-byte aligned, above the tables (0x{layout.TABLES_END:x}) "
                    f"and inside RAM (up to 0x{ram_end:x})",
                    value,
                )
            )
    image = config.image
    if image is not None and image.load_address < layout.TABLES_END:
        issues.append(
            ConfigIssue(
                ("image", "load_address"),
                f"would overlap the page tables, GDT, IDT and TSS below 0x{layout.TABLES_END:x}",
                image.load_address,
            )
        )
    issues.extend(pci_config_issues(config, x86.pci))
    issues.extend(apic_config_issues(config))
    return issues


def apic_config_issues(config: MachineConfig) -> list[ConfigIssue]:
    """Devices that would take the local APIC's page or name."""
    issues: list[ConfigIssue] = []
    apic_end = APIC_BASE + APIC_SIZE
    for index, device in enumerate(config.devices):
        if device.name == APIC_DEVICE_NAME:
            issues.append(
                ConfigIssue(
                    ("devices", index, "name"),
                    f"the name {device.name!r} belongs to the local APICs",
                    device.name,
                )
            )
        address = getattr(device, "address", None)
        size = getattr(device, "size", None) or 0x1000
        if address is not None and address < apic_end and address + size > APIC_BASE:
            issues.append(
                ConfigIssue(
                    ("devices", index, "address"),
                    f"overlaps the local APIC page [{APIC_BASE:#x}, {apic_end:#x})",
                    address,
                )
            )
    return issues


def configure_cpu(machine: Machine, cpu: BaseKvmCPU) -> None:
    """Apply the x86 section to one CPU: the boot CPU, or one added later."""
    assert isinstance(cpu, X86KvmCPU)
    x86 = x86_config(machine.config)
    cpu.use_xsave = x86.use_xsave
    # A restore replaces this table with the checkpoint's afterwards.
    apply_cpuid_config(machine, x86.cpuid, cpus=[cpu])


def setup_machine(machine: Machine) -> None:
    """Create the boot CPU in 64-bit mode at the image's entry point."""
    config = machine.config
    x86 = x86_config(config)
    cpu = machine.arch.cpu_class(machine.system, machine.vm, config=config.cpu)
    machine.add_cpu(cpu)
    configure_cpu(machine, cpu)
    setup_apics(machine)
    rsp0 = x86.tss_rsp0 if x86.tss_rsp0 is not None else x86.stack_top
    layout.write_tables(machine.system, tss_rsp0=rsp0)
    setup_pci(machine, x86.pci)
    entry = config.image.entry_address if config.image is not None else layout.LOAD_ADDRESS
    tc = cpu.thread
    assert isinstance(tc, X86ThreadContext)
    layout.set_long_mode_state(tc, entry=entry, stack_top=x86.stack_top)
    # The request lives in the thread: spare CPUs and restores inherit it.
    setup_tsc(machine.vm, tc, x86.tsc_frequency)
    tc.activate()
