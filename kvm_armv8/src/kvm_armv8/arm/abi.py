"""The arm64 part of the KVM ABI: vCPU init, register lists, IRQ lines, VGIC.

Declared on the core's cffi FFI (:data:`kvmbase.abi.ffi`); every value here
is checked against Debian's arm64 ``linux-libc-dev`` headers by
``tests/kvm_armv8/test_reg_ids.py``, compiled with the host's gcc.
"""

from __future__ import annotations

from typing import Final

from kvmbase import abi
from kvmbase.abi import ffi, ior, iow, iowr

ffi.cdef(
    """
    struct kvm_vcpu_init {
        __u32 target;
        __u32 features[7];
    };

    struct kvm_reg_list {
        __u64 n;
        __u64 reg[];
    };
    """,
    packed=False,
)

# -- ioctls --------------------------------------------------------------------
KVM_ARM_VCPU_INIT: Final = iow(abi.KVMIO, 0xAE, "struct kvm_vcpu_init")
KVM_ARM_PREFERRED_TARGET: Final = ior(abi.KVMIO, 0xAF, "struct kvm_vcpu_init")
KVM_GET_REG_LIST: Final = iowr(abi.KVMIO, 0xB0, "struct kvm_reg_list")
KVM_SET_DEVICE_ATTR: Final = abi.KVM_SET_DEVICE_ATTR
KVM_GET_DEVICE_ATTR: Final = abi.KVM_GET_DEVICE_ATTR
KVM_HAS_DEVICE_ATTR: Final = abi.KVM_HAS_DEVICE_ATTR

abi.register_ioctl_names({
    "KVM_ARM_VCPU_INIT": KVM_ARM_VCPU_INIT,
    "KVM_ARM_PREFERRED_TARGET": KVM_ARM_PREFERRED_TARGET,
    "KVM_GET_REG_LIST": KVM_GET_REG_LIST,
})

# -- capabilities --------------------------------------------------------------
KVM_CAP_ARM_PSCI: Final = 87
KVM_CAP_ARM_SET_DEVICE_ADDR: Final = 88
KVM_CAP_ARM_EL1_32BIT: Final = 93
KVM_CAP_ARM_PSCI_0_2: Final = 102
KVM_CAP_ARM_PMU_V3: Final = 126
KVM_CAP_ARM_USER_IRQ: Final = 144
KVM_CAP_ARM_VM_IPA_SIZE: Final = 165
KVM_CAP_ARM_SVE: Final = 170
KVM_CAP_ARM_PTRAUTH_ADDRESS: Final = 171
KVM_CAP_ARM_PTRAUTH_GENERIC: Final = 172
KVM_CAP_ARM_IRQ_LINE_LAYOUT_2: Final = 174
KVM_CAP_ARM_NISV_TO_USER: Final = 177

#: the capabilities `kvmbase caps` and dumps report for an ARM host
ARM_CAPABILITIES: Final = {
    "ARM_PSCI": KVM_CAP_ARM_PSCI,
    "ARM_PSCI_0_2": KVM_CAP_ARM_PSCI_0_2,
    "ARM_EL1_32BIT": KVM_CAP_ARM_EL1_32BIT,
    "ARM_PMU_V3": KVM_CAP_ARM_PMU_V3,
    "ARM_USER_IRQ": KVM_CAP_ARM_USER_IRQ,
    "ARM_VM_IPA_SIZE": KVM_CAP_ARM_VM_IPA_SIZE,
    "ARM_SVE": KVM_CAP_ARM_SVE,
    "ARM_IRQ_LINE_LAYOUT_2": KVM_CAP_ARM_IRQ_LINE_LAYOUT_2,
}

# -- vCPU targets and features (KVM_ARM_VCPU_INIT) -----------------------------
KVM_ARM_TARGET_GENERIC_V8: Final = 5
KVM_ARM_VCPU_POWER_OFF: Final = 0
KVM_ARM_VCPU_EL1_32BIT: Final = 1
KVM_ARM_VCPU_PSCI_0_2: Final = 2
KVM_ARM_VCPU_PMU_V3: Final = 3
KVM_ARM_VCPU_SVE: Final = 4
KVM_ARM_VCPU_PTRAUTH_ADDRESS: Final = 5
KVM_ARM_VCPU_PTRAUTH_GENERIC: Final = 6

# vCPU device attributes (KVM_SET_DEVICE_ATTR on the vCPU fd)
KVM_ARM_VCPU_PMU_V3_CTRL: Final = 0
KVM_ARM_VCPU_PMU_V3_IRQ: Final = 0
KVM_ARM_VCPU_PMU_V3_INIT: Final = 1
KVM_ARM_VCPU_TIMER_CTRL: Final = 1
KVM_ARM_VCPU_TIMER_IRQ_VTIMER: Final = 0
KVM_ARM_VCPU_TIMER_IRQ_PTIMER: Final = 1

# -- KVM_IRQ_LINE --------------------------------------------------------------
KVM_ARM_IRQ_VCPU2_SHIFT: Final = 28
KVM_ARM_IRQ_VCPU2_MASK: Final = 0xF
KVM_ARM_IRQ_TYPE_SHIFT: Final = 24
KVM_ARM_IRQ_TYPE_MASK: Final = 0xF
KVM_ARM_IRQ_VCPU_SHIFT: Final = 16
KVM_ARM_IRQ_VCPU_MASK: Final = 0xFF
KVM_ARM_IRQ_NUM_SHIFT: Final = 0
KVM_ARM_IRQ_NUM_MASK: Final = 0xFFFF
KVM_ARM_IRQ_TYPE_CPU: Final = 0
KVM_ARM_IRQ_TYPE_SPI: Final = 1
KVM_ARM_IRQ_TYPE_PPI: Final = 2
KVM_ARM_IRQ_CPU_IRQ: Final = 0
KVM_ARM_IRQ_CPU_FIQ: Final = 1

# -- in-kernel VGIC (KVM_CREATE_DEVICE) ----------------------------------------
KVM_DEV_TYPE_ARM_VGIC_V2: Final = 5
KVM_DEV_TYPE_ARM_VGIC_V3: Final = 7
KVM_DEV_TYPE_ARM_VGIC_ITS: Final = 8

KVM_VGIC_V2_ADDR_TYPE_DIST: Final = 0
KVM_VGIC_V2_ADDR_TYPE_CPU: Final = 1
KVM_VGIC_V2_DIST_SIZE: Final = 0x1000
KVM_VGIC_V2_CPU_SIZE: Final = 0x2000
KVM_VGIC_V3_ADDR_TYPE_DIST: Final = 2
KVM_VGIC_V3_ADDR_TYPE_REDIST: Final = 3
KVM_VGIC_V3_DIST_SIZE: Final = 0x10000
KVM_VGIC_V3_REDIST_SIZE: Final = 0x20000

KVM_DEV_ARM_VGIC_GRP_ADDR: Final = 0
KVM_DEV_ARM_VGIC_GRP_DIST_REGS: Final = 1
KVM_DEV_ARM_VGIC_GRP_CPU_REGS: Final = 2
KVM_DEV_ARM_VGIC_GRP_NR_IRQS: Final = 3
KVM_DEV_ARM_VGIC_GRP_CTRL: Final = 4
KVM_DEV_ARM_VGIC_GRP_REDIST_REGS: Final = 5
KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS: Final = 6
KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO: Final = 7
KVM_DEV_ARM_VGIC_CPUID_SHIFT: Final = 32
KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT: Final = 32
KVM_DEV_ARM_VGIC_CTRL_INIT: Final = 0

# -- exits ---------------------------------------------------------------------
KVM_EXIT_ARM_NISV: Final = 28
KVM_SYSTEM_EVENT_WAKEUP: Final = 4
KVM_SYSTEM_EVENT_SUSPEND: Final = 5
KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2: Final = 1
