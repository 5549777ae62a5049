"""kvm-armv8: AArch64 guests on arm64 KVM hosts (``ArmV8KvmCPU``).

:mod:`kvm_armv8.arm` holds the ARM code that this plugin and the AArch32
plugin ``kvm_arm`` share: register ids, vCPU initialisation, interrupt lines,
the in-kernel GIC, PSCI and the PL011 UART (``BaseArmKvmCPU``).
"""

from __future__ import annotations

__version__ = "0.1.0"
