"""The ``[armv8]`` section of a machine config."""

from __future__ import annotations

from kvm_armv8.arm.config import ArmMachineConfig


class ArmV8Config(ArmMachineConfig):
    """Settings of the AArch64 machine (QEMU virt's layout; see docs/arm.md)."""
