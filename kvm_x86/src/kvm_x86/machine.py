"""Set-up of an x86-64 machine: CPU, long-mode tables, boot state."""

from __future__ import annotations

from kvm_x86 import layout
from kvm_x86.config import X86Config
from kvm_x86.cpu import X86KvmCPU
from kvmbase.errors import ConfigurationError
from kvmbase.machine import Machine

MIN_RAM = 2 << 20


def setup_machine(machine: Machine) -> None:
    """Create the boot CPU in 64-bit mode at the image's entry point."""
    config = machine.config
    x86 = config.arch_config if isinstance(config.arch_config, X86Config) else X86Config()
    if config.vm.ram_base != 0 or config.vm.ram_size < MIN_RAM:
        raise ConfigurationError(
            f"the x86 machine needs RAM at address 0 of at least {MIN_RAM >> 20} MiB "
            f"(it has {config.vm.ram_size:#x} bytes at {config.vm.ram_base:#x})"
        )
    if x86.stack_top > config.vm.ram_size or x86.stack_top % 16:
        raise ConfigurationError(
            f"x86.stack_top {x86.stack_top:#x} must be 16-byte aligned and inside RAM"
        )
    cpu = X86KvmCPU(machine.system, machine.vm, config=config.cpu)
    machine.add_cpu(cpu)
    rsp0 = x86.tss_rsp0 if x86.tss_rsp0 is not None else x86.stack_top
    layout.write_tables(machine.system, tss_rsp0=rsp0)
    entry = config.image.entry_address if config.image is not None else layout.LOAD_ADDRESS
    layout.set_long_mode_state(cpu.thread, entry=entry, stack_top=x86.stack_top)
    cpu.thread.activate()
