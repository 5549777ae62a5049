"""The ``[arm]`` section of a machine config."""

from __future__ import annotations

from kvm_armv8.arm.config import ArmMachineConfig


class ArmConfig(ArmMachineConfig):
    """Settings of the AArch32 machine (QEMU virt's layout; see docs/arm.md).

    ``boot_x0`` is ``r0`` at entry; ``stack_top`` is ``SP_svc``."""
