"""The kvmbase plugin entry point of AArch32 (``arm``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kvm_arm
from kvm_arm.config import ArmConfig
from kvm_arm.cpu import ArmKvmCPU
from kvm_arm.guests import guest_path
from kvm_arm.machine import ENTRY, check_config, configure_arm_cpu, setup_machine
from kvm_arm.thread_context import ArmThreadContext32
from kvm_armv8.arm import layout
from kvmbase.arch import ArchDescription
from kvmbase.hookspecs import hookimpl


def demo_config() -> Mapping[str, Any]:
    """The bundled demo: prints through the PL011, powers off through PSCI."""
    return {
        "arch": "arm",
        "vm": {"ram_base": layout.RAM_BASE, "ram_size": "16MiB"},
        "image": {"path": str(guest_path("demo.bin")), "load_address": ENTRY},
    }


DESCRIPTION = ArchDescription(
    name="arm",
    summary="AArch32 (A32) guests at PL1 on arm64 KVM hosts (EL1 32-bit)",
    distribution="kvm-arm",
    version=kvm_arm.__version__,
    host_machines=("aarch64",),
    cpu_class=ArmKvmCPU,
    thread_context_class=ArmThreadContext32,
    config_model=ArmConfig,
    setup_machine=setup_machine,
    configure_cpu=configure_arm_cpu,
    port_address=None,
    demo_config=demo_config,
    check_config=check_config,
)


@hookimpl
def kvmbase_register_arch() -> ArchDescription:
    return DESCRIPTION
