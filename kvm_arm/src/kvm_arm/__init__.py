"""kvm_arm: AArch32 (A32) guests on arm64 KVM hosts (``KVM_ARM_VCPU_EL1_32BIT``)."""

from __future__ import annotations

__version__ = "0.1.0"
