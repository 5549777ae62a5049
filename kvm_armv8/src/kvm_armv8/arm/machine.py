"""Set-up of an ARM machine, shared by both plugins: GIC, PL011, vCPUs."""

from __future__ import annotations

from collections.abc import Callable

from kvm_armv8.arm import layout
from kvm_armv8.arm.config import ArmMachineConfig
from kvm_armv8.arm.features import VcpuFeatures
from kvm_armv8.arm.gic import GicLayout, GicVersion, InKernelGic
from kvm_armv8.arm.irq import IrqType, irq_line
from kvm_armv8.arm.pl011 import REGISTER_SPAN, Pl011
from kvm_armv8.arm.vcpu import BaseArmKvmCPU
from kvmbase import abi
from kvmbase.abi import ffi
from kvmbase.config import ConfigIssue, MachineConfig
from kvmbase.cpu import BaseKvmCPU
from kvmbase.errors import ConfigurationError
from kvmbase.machine import Machine
from kvmbase.vm import KvmVM

#: writes a vCPU's boot state into its (fresh) thread context
BootState = Callable[[BaseArmKvmCPU, int, int, ArmMachineConfig], None]


def arm_config(config: MachineConfig) -> ArmMachineConfig:
    section = config.arch_config
    if not isinstance(section, ArmMachineConfig):
        raise ConfigurationError(f"the {config.arch} section is not an ARM machine section")
    return section


def gic_layout(section: ArmMachineConfig) -> GicLayout:
    return GicLayout(section.gic_distributor, section.gic_cpu_interface,
                     section.gic_redistributors)


def frames(section: ArmMachineConfig) -> list[tuple[str, int, int]]:
    """(what, start, size) of every device frame the section places."""
    placed: list[tuple[str, int, int]] = []
    if section.gic == "v3":
        placed.append(("gic_distributor", section.gic_distributor, 0x10000))
        placed.append(("gic_redistributors", section.gic_redistributors,
                       layout.GIC_REDISTRIBUTOR_SIZE * section.cpus))
    elif section.gic == "v2":
        placed.append(("gic_distributor", section.gic_distributor, 0x1000))
        placed.append(("gic_cpu_interface", section.gic_cpu_interface, 0x2000))
    if section.uart.enabled:
        placed.append(("uart", section.uart.address, REGISTER_SPAN))
    return placed


def check_arm_config(config: MachineConfig, name: str) -> list[ConfigIssue]:
    """Frames that overlap RAM, each other or configured devices; GICv2's 8 vCPUs."""
    section = arm_config(config)
    issues: list[ConfigIssue] = []
    ram = (config.vm.ram_base, config.vm.ram_base + config.vm.ram_size)
    placed = frames(section)
    for index, (what, start, size) in enumerate(placed):
        path = (name, "uart", "address") if what == "uart" else (name, what)
        if start < ram[1] and ram[0] < start + size:
            issues.append(ConfigIssue(path, f"overlaps RAM [{ram[0]:#x}, {ram[1]:#x})", start))
        for other, other_start, other_size in placed[index + 1:]:
            if start < other_start + other_size and other_start < start + size:
                issues.append(ConfigIssue(path, f"overlaps {other}", start))
        for device_index, device in enumerate(config.devices):
            address = getattr(device, "address", None)
            length = getattr(device, "size", None) or 0x1000
            if address is not None and address < start + size and start < address + length:
                issues.append(ConfigIssue(("devices", device_index, "address"),
                                          f"overlaps the {what} frame at {start:#x}", address))
    if section.gic == "v2" and section.cpus > 8:
        issues.append(ConfigIssue((name, "cpus"), "a GICv2 serves at most 8 vCPUs",
                                  section.cpus))
    if section.pmu_v3 and section.gic == "none":
        issues.append(ConfigIssue((name, "pmu_v3"), "the guest PMU needs an in-kernel GIC",
                                  True))
    for index, device in enumerate(config.devices):
        if device.name in ("gic", section.uart.name if section.uart.enabled else None):
            issues.append(ConfigIssue(("devices", index, "name"),
                                      f"the name {device.name!r} belongs to the machine",
                                      device.name))
        port = getattr(device, "port", None)
        if port is not None:
            issues.append(ConfigIssue(("devices", index, "port"),
                                      "ARM has no IO ports; give an address", port))
    return issues


def configure_arm_cpu(machine: Machine, cpu: BaseKvmCPU) -> None:
    """Features and GIC of one vCPU (the boot CPU, the others, or a spare)."""
    assert isinstance(cpu, BaseArmKvmCPU)
    section = arm_config(machine.config)
    secondary = cpu is not machine.cpus[0] and section.secondary_start == "psci"
    cpu.features = VcpuFeatures(
        psci_0_2=section.psci_0_2, el1_32bit=cpu.features.el1_32bit,
        pmu_v3=section.pmu_v3, power_off=secondary and not cpu.switched_out,
    )
    cpu.gic = getattr(machine, "gic", None)


def setup_arm_machine(machine: Machine, boot_state: BootState, entry_default: int) -> None:
    """GIC, PL011 and the vCPUs, each with its boot state, all active."""
    config = machine.config
    section = arm_config(config)
    gic: InKernelGic | None = None
    if section.gic != "none":
        gic = InKernelGic(machine.vm, GicVersion(section.gic), gic_layout(section))
        machine.add_device(gic, section.gic_distributor, gic.frame_size)
        machine.vm.on_started(lambda vm: gic.create())
    machine.gic = gic  # type: ignore[attr-defined]
    if section.uart.enabled:
        uart_config = section.uart
        # The Machine's own override (Machine(uart_output=...)) wins.
        output = machine.uart_output or uart_config.output
        interrupt = None
        if gic is not None and uart_config.spi is not None:
            interrupt = spi_line(machine.vm, uart_config.spi)
        uart = Pl011(uart_config.name, output, interrupt)
        machine.add_device(uart, uart_config.address, REGISTER_SPAN)
    entry = config.image.entry_address if config.image is not None else entry_default
    stack = section.stack_top
    if stack is None:
        stack = config.vm.ram_base + config.vm.ram_size
    for index in range(section.cpus):
        cpu = machine.arch.cpu_class(machine.system, machine.vm, config=config.cpu,
                                     name=f"cpu{index}")
        assert isinstance(cpu, BaseArmKvmCPU)
        machine.add_cpu(cpu)
        configure_arm_cpu(machine, cpu)
        boot_state(cpu, entry, stack, section)
        cpu.thread.activate()


def spi_line(vm: KvmVM, spi: int) -> Callable[[bool], None]:
    """A callable that drives GIC interrupt id ``spi`` (an SPI) high or low."""
    level = ffi.new("struct kvm_irq_level *")
    irq = irq_line(IrqType.SPI, spi)

    def drive(high: bool) -> None:
        level.irq, level.level = irq, int(high)
        vm.ioctl(abi.KVM_IRQ_LINE, level, action=f"SPI {spi} {'high' if high else 'low'}")

    return drive
