"""The vCPU features of ``KVM_ARM_VCPU_INIT`` and their check against the host."""

from __future__ import annotations

from dataclasses import dataclass

from kvm_armv8.arm import abi
from kvmbase.errors import KvmCapabilityError
from kvmbase.kvm import Kvm


@dataclass(frozen=True)
class VcpuFeatures:
    """What a vCPU is made with (``struct kvm_vcpu_init.features``)."""

    #: PSCI 0.2 served by KVM (SYSTEM_OFF/RESET become system events)
    psci_0_2: bool = True
    #: an AArch32 EL1 (the kvm_arm plugin)
    el1_32bit: bool = False
    #: a PMUv3 for the guest (needs the in-kernel GIC)
    pmu_v3: bool = False
    #: start powered off; another vCPU starts it with PSCI CPU_ON
    power_off: bool = False

    def bits(self) -> list[int]:
        """The feature bit numbers to set."""
        chosen = [
            (self.power_off, abi.KVM_ARM_VCPU_POWER_OFF),
            (self.el1_32bit, abi.KVM_ARM_VCPU_EL1_32BIT),
            (self.psci_0_2, abi.KVM_ARM_VCPU_PSCI_0_2),
            (self.pmu_v3, abi.KVM_ARM_VCPU_PMU_V3),
        ]
        return [bit for wanted, bit in chosen if wanted]

    def check_host(self, kvm: Kvm) -> None:
        """Raise :class:`KvmCapabilityError` for a feature the host lacks."""
        needs = [
            (self.psci_0_2, abi.KVM_CAP_ARM_PSCI_0_2, "ARM_PSCI_0_2", "PSCI 0.2"),
            (self.el1_32bit, abi.KVM_CAP_ARM_EL1_32BIT, "ARM_EL1_32BIT", "an AArch32 EL1"),
            (self.pmu_v3, abi.KVM_CAP_ARM_PMU_V3, "ARM_PMU_V3", "a guest PMUv3"),
        ]
        for wanted, cap, name, what in needs:
            if wanted and not kvm.check_extension(cap):
                raise KvmCapabilityError(name, what)
