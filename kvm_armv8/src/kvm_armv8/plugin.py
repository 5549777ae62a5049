"""The kvmbase plugin entry point of AArch64 (``armv8``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kvm_armv8
from kvm_armv8.arm import layout
from kvm_armv8.config import ArmV8Config
from kvm_armv8.cpu import ArmV8KvmCPU
from kvm_armv8.guests import guest_path
from kvm_armv8.machine import ENTRY, check_config, configure_arm_cpu, setup_machine
from kvm_armv8.thread_context import ArmV8ThreadContext
from kvmbase.arch import ArchDescription
from kvmbase.hookspecs import hookimpl


def demo_config() -> Mapping[str, Any]:
    """The bundled demo: prints through the PL011, powers off through PSCI."""
    return {
        "arch": "armv8",
        "vm": {"ram_base": layout.RAM_BASE, "ram_size": "16MiB"},
        "image": {"path": str(guest_path("demo.bin")), "load_address": ENTRY},
    }


DESCRIPTION = ArchDescription(
    name="armv8",
    summary="AArch64 guests at EL1 on arm64 KVM hosts",
    distribution="kvm-armv8",
    version=kvm_armv8.__version__,
    host_machines=("aarch64",),
    cpu_class=ArmV8KvmCPU,
    thread_context_class=ArmV8ThreadContext,
    config_model=ArmV8Config,
    setup_machine=setup_machine,
    configure_cpu=configure_arm_cpu,
    port_address=None,
    demo_config=demo_config,
    check_config=check_config,
)


@hookimpl
def kvmbase_register_arch() -> ArchDescription:
    return DESCRIPTION
