"""The kvmbase plugin entry point of the x86-64 architecture."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import kvm_x86
from kvm_x86.config import X86Config
from kvm_x86.cpu import X86KvmCPU, io_address
from kvm_x86.guests import guest_path
from kvm_x86.machine import check_config, configure_cpu, setup_machine
from kvm_x86.thread_context import X86ThreadContext
from kvmbase.arch import ArchDescription
from kvmbase.hookspecs import hookimpl

if TYPE_CHECKING:
    import click

DEMO_MMIO_ADDRESS = 0xD0000000


def demo_config() -> Mapping[str, Any]:
    """The bundled demo: UART on COM1, a scratch MMIO device, the guest-ops
    page the guest ends with (at its default 0xFFFF0000), the demo image."""
    return {
        "arch": "x86",
        "vm": {"ram_size": "16MiB"},
        "devices": [
            {"type": "uart16550", "name": "uart0", "port": 0x3F8},
            {"type": "mmio-scratch", "name": "scratch0", "address": DEMO_MMIO_ADDRESS},
            {"type": "guest-ops", "name": "guest_ops"},
        ],
        "image": {"path": str(guest_path("demo.bin")), "load_address": 0x100000},
    }


DESCRIPTION = ArchDescription(
    name="x86",
    summary="x86-64 guests in flat 64-bit long mode",
    distribution="kvm-x86",
    version=kvm_x86.__version__,
    host_machines=("x86_64",),
    cpu_class=X86KvmCPU,
    thread_context_class=X86ThreadContext,
    config_model=X86Config,
    setup_machine=setup_machine,
    configure_cpu=configure_cpu,
    port_address=io_address,
    demo_config=demo_config,
    check_config=check_config,
)


@hookimpl
def kvmbase_register_arch() -> ArchDescription:
    return DESCRIPTION


@hookimpl
def kvmbase_add_commands(cli: click.Group) -> None:
    """``kvmbase exec``: run a static x86-64 Linux program (syscall emulation)."""
    from kvm_x86.se.cli import add_commands

    add_commands(cli)
