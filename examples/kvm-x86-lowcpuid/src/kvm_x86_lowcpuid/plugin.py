"""The kvmbase entry point of ``x86-lowcpuid``: every hook this example uses.

``pyproject.toml`` names this module in the entry-point group ``kvmbase``;
kvmbase registers it with pluggy, which calls the ``@hookimpl`` functions.
Hooks run at set-up time only: the exit handler is handed back once per
vCPU and then called directly on every exit it serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import kvm_x86_lowcpuid
from kvm_x86.cpu import io_address
from kvm_x86.machine import check_config as x86_check_config
from kvm_x86.machine import configure_cpu as x86_configure_cpu
from kvm_x86.machine import setup_machine as x86_setup_machine
from kvm_x86.plugin import demo_config as x86_demo_config
from kvm_x86.thread_context import X86ThreadContext
from kvm_x86_lowcpuid.config import LowCpuidConfig
from kvm_x86_lowcpuid.cpu import LowCpuidCPU
from kvmbase import abi
from kvmbase.arch import ArchDescription
from kvmbase.config import ConfigIssue, MachineConfig
from kvmbase.cpu import BaseKvmCPU
from kvmbase.hookspecs import hookimpl
from kvmbase.machine import Machine

NAME = "x86-lowcpuid"
log = logging.getLogger(__name__)


# -- the machine: kvm_x86's, with this plugin's CPU settings on top ------------
def section(machine: Machine) -> LowCpuidConfig:
    """The machine's ["x86-lowcpuid"] section (validated by LowCpuidConfig)."""
    settings = machine.config.arch_config
    return settings if isinstance(settings, LowCpuidConfig) else LowCpuidConfig()


def apply_section(machine: Machine, cpu: LowCpuidCPU) -> None:
    """This architecture's part of a CPU's set-up: the leaf limit and the POST
    port from the section, then the lowered CPUID table."""
    settings = section(machine)
    cpu.max_basic_leaf = settings.max_basic_leaf
    cpu.post_port = settings.post_port
    cpu.apply_cpuid_model()


def configure_cpu(machine: Machine, cpu: BaseKvmCPU) -> None:
    """A CPU made after set-up (``Machine.new_cpu``, a CPU switch): kvm_x86's
    configuration (our section is an X86Config, so it reads it), then ours."""
    assert isinstance(cpu, LowCpuidCPU)
    x86_configure_cpu(machine, cpu)
    apply_section(machine, cpu)


def setup_machine(machine: Machine) -> None:
    """kvm_x86's set-up (it builds the boot CPU from our ``cpu_class`` and
    configures it), then our part for each CPU it made."""
    x86_setup_machine(machine)
    for cpu in machine.cpus:
        assert isinstance(cpu, LowCpuidCPU)
        apply_section(machine, cpu)


def check_config(config: MachineConfig) -> list[ConfigIssue]:
    """kvm_x86's cross-section rules, reported under our section's name."""
    return [
        replace(issue, loc=(NAME, *issue.loc[1:])) if issue.loc[:1] == ("x86",) else issue
        for issue in x86_check_config(config)
    ]


def demo_config() -> Mapping[str, Any]:
    """kvm_x86's demo machine and image, run as an x86-lowcpuid machine."""
    return {**x86_demo_config(), "arch": NAME}


# -- the exit handler: the POST-code port ---------------------------------------
def serve_post_port(cpu: BaseKvmCPU) -> int:
    """KVM_EXIT_IO: record writes to the CPU's ``post_port``; every other
    access goes to kvm_x86's own port handling (the bus). Returns ticks."""
    assert isinstance(cpu, LowCpuidCPU)
    io = cpu.run_struct.io
    if io.port != cpu.post_port or io.direction != abi.KVM_EXIT_IO_OUT:
        return type(cpu).handle_io_exit(cpu)
    size = int(io.size)
    data = cpu.guest_data(int(io.data_offset), size * int(io.count))
    for start in range(0, len(data), size):
        cpu.post_codes.append(int.from_bytes(data[start : start + size], "little"))
    return 0


# -- the hooks --------------------------------------------------------------------
DESCRIPTION = ArchDescription(
    name=NAME,
    summary="x86-64 with a low CPUID model and a POST-code port (example plugin)",
    distribution="kvm-x86-lowcpuid",
    version=kvm_x86_lowcpuid.__version__,
    host_machines=("x86_64",),
    cpu_class=LowCpuidCPU,
    thread_context_class=X86ThreadContext,
    config_model=LowCpuidConfig,
    setup_machine=setup_machine,
    configure_cpu=configure_cpu,
    port_address=io_address,
    demo_config=demo_config,
    check_config=check_config,
)


@hookimpl
def kvmbase_register_arch() -> ArchDescription:
    """Architecture registration: the description above (a module constant,
    since the registry asks often)."""
    return DESCRIPTION


@hookimpl
def kvmbase_exit_handlers(
    cpu: BaseKvmCPU,
) -> Mapping[int, Callable[[BaseKvmCPU], int]] | None:
    """Exit handlers, collected once per vCPU at start-up. Every plugin sees
    every CPU: serve only our own, or plain x86 machines would lose their IO."""
    if not isinstance(cpu, LowCpuidCPU):
        return None
    return {abi.KVM_EXIT_IO: serve_post_port}


@hookimpl
def kvmbase_dump_sections(cpu: BaseKvmCPU) -> Mapping[str, Callable[[], Any]] | None:
    """An extra dump section, ``post_codes``, shown by ``cpu.dump()`` and
    ``kvmbase run --dump``; again only for our CPUs."""
    if not isinstance(cpu, LowCpuidCPU):
        return None
    return {"post_codes": lambda: list(cpu.post_codes)}


@hookimpl
def kvmbase_vcpu_started(cpu: BaseKvmCPU) -> None:
    """Lifecycle notice: the vCPU exists in KVM and is about to run."""
    if isinstance(cpu, LowCpuidCPU):
        log.info(
            "%s: x86-lowcpuid vCPU %d started (CPUID up to leaf %#x, POST port %#x)",
            cpu.name, cpu.vcpu_id, cpu.max_basic_leaf, cpu.post_port,
        )
