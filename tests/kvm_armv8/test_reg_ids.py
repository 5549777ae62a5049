"""Register ids and the arm64 ABI against the arm64 kernel headers (any host).

One C program, compiled with the host's gcc against Debian's arm64
``linux-libc-dev`` (``-I`` before the host's own headers), prints the value
of every header macro and ``offsetof`` the Python side computes; each pair
must agree exactly.  The virtual-timer ids are checked against
``KVM_REG_ARM_TIMER_CNT``/``CVAL`` as the header defines them (their
encodings are swapped there, and that is the ABI).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import skip_host_lacks

from kvm_armv8.arm import abi as arm_abi
from kvm_armv8.arm import regs
from kvm_armv8.arm.sysregs import SYSREGS
from kvmbase.abi import ffi

# (label, C expression, value from Python)
Check = tuple[str, str, int]

_TIMER_NAMES = {"CNTVCT_EL0", "CNTV_CVAL_EL0"}


def _field_designator(name: str) -> str:
    """The struct kvm_regs member of a core register name."""
    if name.startswith("x"):
        return f"regs.regs[{name[1:]}]"
    if name.startswith("v") and name[1:].isdigit():
        return f"fp_regs.vregs[{name[1:]}]"
    if name.startswith("spsr_"):
        return f"spsr[{regs.SPSR_NAMES.index(name)}]"
    return {"sp_el0": "regs.sp", "pc": "regs.pc", "pstate": "regs.pstate",
            "sp_el1": "sp_el1", "elr_el1": "elr_el1",
            "fpsr": "fp_regs.fpsr", "fpcr": "fp_regs.fpcr"}[name]


def core_checks() -> list[Check]:
    checks: list[Check] = []
    for name, (offset, size) in regs.CORE_LAYOUT.items():
        member = _field_designator(name)
        checks.append((f"offsetof {name}", f"offsetof(struct kvm_regs, {member})", offset))
        checks.append((f"sizeof {name}", f"sizeof(((struct kvm_regs *)0)->{member})", size))
        checks.append((
            f"id {name}",
            f"KVM_REG_ARM64 | SIZE_OF(((struct kvm_regs *)0)->{member}) | KVM_REG_ARM_CORE"
            f" | KVM_REG_ARM_CORE_REG({member})",
            regs.core_id(name),
        ))
        # offsetof / sizeof(__u64): the index gem5 and QEMU use for 64-bit fields
        checks.append((f"u64 index {name}",
                       f"offsetof(struct kvm_regs, {member}) / sizeof(__u64)", offset // 8))
    checks.append(("sizeof kvm_regs", "sizeof(struct kvm_regs)", regs.SIZEOF_KVM_REGS))
    return checks


def sysreg_checks() -> list[Check]:
    checks: list[Check] = []
    for name, encoding in SYSREGS.items():
        args = ", ".join(str(part) for part in encoding)
        checks.append((f"sysreg {name}", f"ARM64_SYS_REG({args})", regs.sysreg_id(*encoding)))
        if name not in _TIMER_NAMES:
            checks.append((f"by name {name}", f"ARM64_SYS_REG({args})",
                           regs.sysreg_by_name(name)))
    checks += [
        ("TIMER_CTL", "KVM_REG_ARM_TIMER_CTL", regs.sysreg_by_name("CNTV_CTL_EL0")),
        ("TIMER_CVAL", "KVM_REG_ARM_TIMER_CVAL", regs.sysreg_by_name("CNTV_CVAL_EL0")),
        ("TIMER_CNT", "KVM_REG_ARM_TIMER_CNT", regs.sysreg_by_name("CNTVCT_EL0")),
        ("TIMER_CTL const", "KVM_REG_ARM_TIMER_CTL", regs.KVM_REG_ARM_TIMER_CTL),
        ("TIMER_CVAL const", "KVM_REG_ARM_TIMER_CVAL", regs.KVM_REG_ARM_TIMER_CVAL),
        ("TIMER_CNT const", "KVM_REG_ARM_TIMER_CNT", regs.KVM_REG_ARM_TIMER_CNT),
        ("tc cntvct", "KVM_REG_ARM_TIMER_CNT", regs.TIMER_IDS["cntvct_el0"]),
        ("tc cntv_cval", "KVM_REG_ARM_TIMER_CVAL", regs.TIMER_IDS["cntv_cval_el0"]),
        ("tc cntv_ctl", "KVM_REG_ARM_TIMER_CTL", regs.TIMER_IDS["cntv_ctl_el0"]),
        ("PTIMER_CTL", "KVM_REG_ARM_PTIMER_CTL", regs.KVM_REG_ARM_PTIMER_CTL),
        ("PTIMER_CVAL", "KVM_REG_ARM_PTIMER_CVAL", regs.KVM_REG_ARM_PTIMER_CVAL),
        ("PTIMER_CNT", "KVM_REG_ARM_PTIMER_CNT", regs.KVM_REG_ARM_PTIMER_CNT),
    ]
    return checks


def other_id_checks() -> list[Check]:
    checks: list[Check] = [
        ("KVM_REG_ARM64", "KVM_REG_ARM64", regs.KVM_REG_ARM64),
        ("PSCI_VERSION", "KVM_REG_ARM_PSCI_VERSION", regs.KVM_REG_ARM_PSCI_VERSION),
        ("WORKAROUND_1", "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1",
         regs.KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1),
        ("WORKAROUND_2", "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2",
         regs.KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2),
        ("WORKAROUND_3", "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_3",
         regs.KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_3),
        ("FW_REG(7)", "KVM_REG_ARM_FW_REG(7)", regs.fw_reg_id(7)),
        ("STD_BMAP", "KVM_REG_ARM_STD_BMAP", regs.KVM_REG_ARM_STD_BMAP),
        ("STD_HYP_BMAP", "KVM_REG_ARM_STD_HYP_BMAP", regs.KVM_REG_ARM_STD_HYP_BMAP),
        ("VENDOR_HYP_BMAP", "KVM_REG_ARM_VENDOR_HYP_BMAP", regs.KVM_REG_ARM_VENDOR_HYP_BMAP),
        ("SYSREG group", "KVM_REG_ARM64_SYSREG", regs.KVM_REG_ARM64_SYSREG),
        ("DEMUX group", "KVM_REG_ARM_DEMUX", regs.KVM_REG_ARM_DEMUX),
        ("SVE group", "KVM_REG_ARM64_SVE", regs.KVM_REG_ARM64_SVE),
        ("COPROC mask", "KVM_REG_ARM_COPROC_MASK", regs.KVM_REG_ARM_COPROC_MASK),
    ]
    for csselr in (0, 1, 2, 3, 0xFF):
        checks.append((
            f"CCSIDR[{csselr}]",
            "KVM_REG_ARM64 | KVM_REG_SIZE_U32 | KVM_REG_ARM_DEMUX | "
            f"KVM_REG_ARM_DEMUX_ID_CCSIDR | {csselr}",
            regs.ccsidr_id(csselr),
        ))
    for n, i in ((0, 0), (31, 0), (5, 3)):
        checks.append((f"SVE Z{n}[{i}]", f"KVM_REG_ARM64_SVE_ZREG({n}, {i})",
                       regs.sve_zreg_id(n, i)))
    return checks


_ABI_CONSTANTS = [
    "KVM_ARM_VCPU_INIT", "KVM_ARM_PREFERRED_TARGET", "KVM_GET_REG_LIST",
    "KVM_CAP_ARM_PSCI", "KVM_CAP_ARM_SET_DEVICE_ADDR", "KVM_CAP_ARM_EL1_32BIT",
    "KVM_CAP_ARM_PSCI_0_2", "KVM_CAP_ARM_PMU_V3", "KVM_CAP_ARM_USER_IRQ",
    "KVM_CAP_ARM_VM_IPA_SIZE", "KVM_CAP_ARM_SVE", "KVM_CAP_ARM_PTRAUTH_ADDRESS",
    "KVM_CAP_ARM_PTRAUTH_GENERIC", "KVM_CAP_ARM_IRQ_LINE_LAYOUT_2",
    "KVM_CAP_ARM_NISV_TO_USER", "KVM_ARM_TARGET_GENERIC_V8",
    "KVM_ARM_VCPU_POWER_OFF", "KVM_ARM_VCPU_EL1_32BIT", "KVM_ARM_VCPU_PSCI_0_2",
    "KVM_ARM_VCPU_PMU_V3", "KVM_ARM_VCPU_SVE", "KVM_ARM_VCPU_PTRAUTH_ADDRESS",
    "KVM_ARM_VCPU_PTRAUTH_GENERIC", "KVM_ARM_VCPU_PMU_V3_CTRL", "KVM_ARM_VCPU_PMU_V3_IRQ",
    "KVM_ARM_VCPU_PMU_V3_INIT", "KVM_ARM_VCPU_TIMER_CTRL", "KVM_ARM_VCPU_TIMER_IRQ_VTIMER",
    "KVM_ARM_VCPU_TIMER_IRQ_PTIMER", "KVM_ARM_IRQ_VCPU2_SHIFT", "KVM_ARM_IRQ_VCPU2_MASK",
    "KVM_ARM_IRQ_TYPE_SHIFT", "KVM_ARM_IRQ_TYPE_MASK", "KVM_ARM_IRQ_VCPU_SHIFT",
    "KVM_ARM_IRQ_VCPU_MASK", "KVM_ARM_IRQ_NUM_SHIFT", "KVM_ARM_IRQ_NUM_MASK",
    "KVM_ARM_IRQ_TYPE_CPU", "KVM_ARM_IRQ_TYPE_SPI", "KVM_ARM_IRQ_TYPE_PPI",
    "KVM_ARM_IRQ_CPU_IRQ", "KVM_ARM_IRQ_CPU_FIQ", "KVM_DEV_TYPE_ARM_VGIC_V2",
    "KVM_DEV_TYPE_ARM_VGIC_V3", "KVM_DEV_TYPE_ARM_VGIC_ITS", "KVM_VGIC_V2_ADDR_TYPE_DIST",
    "KVM_VGIC_V2_ADDR_TYPE_CPU", "KVM_VGIC_V2_DIST_SIZE", "KVM_VGIC_V2_CPU_SIZE",
    "KVM_VGIC_V3_ADDR_TYPE_DIST", "KVM_VGIC_V3_ADDR_TYPE_REDIST", "KVM_VGIC_V3_DIST_SIZE",
    "KVM_VGIC_V3_REDIST_SIZE", "KVM_DEV_ARM_VGIC_GRP_ADDR", "KVM_DEV_ARM_VGIC_GRP_DIST_REGS",
    "KVM_DEV_ARM_VGIC_GRP_CPU_REGS", "KVM_DEV_ARM_VGIC_GRP_NR_IRQS",
    "KVM_DEV_ARM_VGIC_GRP_CTRL", "KVM_DEV_ARM_VGIC_GRP_REDIST_REGS",
    "KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS", "KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO",
    "KVM_DEV_ARM_VGIC_CPUID_SHIFT", "KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT",
    "KVM_DEV_ARM_VGIC_CTRL_INIT", "KVM_EXIT_ARM_NISV", "KVM_SYSTEM_EVENT_WAKEUP",
    "KVM_SYSTEM_EVENT_SUSPEND", "KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2",
]


def abi_checks() -> list[Check]:
    checks: list[Check] = [
        (name, name, int(getattr(arm_abi, name))) for name in _ABI_CONSTANTS
    ]
    for ctype in ("struct kvm_vcpu_init", "struct kvm_reg_list"):
        checks.append((f"sizeof {ctype}", f"sizeof({ctype})", ffi.sizeof(ctype)))
    checks.append(("offsetof reg_list.reg", "offsetof(struct kvm_reg_list, reg)",
                   ffi.offsetof("struct kvm_reg_list", "reg")))
    checks.append(("offsetof vcpu_init.features", "offsetof(struct kvm_vcpu_init, features)",
                   ffi.offsetof("struct kvm_vcpu_init", "features")))
    return checks


PROLOGUE = """
#include <stddef.h>
#include <stdio.h>
#include <linux/kvm.h>
#include <linux/psci.h>
/* the uapi header uses SZ_64K without defining it */
#ifndef SZ_64K
#define SZ_64K 0x10000
#endif
#define SIZE_OF(x) ((__u64)__builtin_ctz(sizeof(x)) << KVM_REG_SIZE_SHIFT)
int main(void) {
"""


def run_checks(checks: list[Check], include_dirs: list[Path], work: Path) -> list[str]:
    """Compile and run the checks; the ones that differ, described."""
    gcc = shutil.which("gcc")
    if gcc is None:
        skip_host_lacks("gcc (to compile against the arm64 headers)")
    lines = [PROLOGUE]
    for _, expression, _ in checks:
        lines.append(f'    printf("%llu\\n", (unsigned long long)({expression}));')
    lines.append("    return 0;\n}\n")
    source = work / "checks.c"
    source.write_text("\n".join(lines))
    binary = work / "checks"
    flags = [f"-I{path}" for path in include_dirs]
    build = subprocess.run([gcc, *flags, "-o", str(binary), str(source)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    output = subprocess.run([str(binary)], capture_output=True, text=True, check=True)
    values = [int(line) for line in output.stdout.split()]
    assert len(values) == len(checks)
    return [
        f"{label}: header {c_value:#x}, kvm_armv8 {py_value:#x}  ({expression})"
        for (label, expression, py_value), c_value in zip(checks, values, strict=True)
        if c_value != py_value
    ]


@pytest.mark.parametrize(
    "group", [core_checks, sysreg_checks, other_id_checks, abi_checks],
    ids=lambda function: function.__name__.removesuffix("_checks"),
)
def test_matches_arm64_headers(group, arm64_include_dirs: list[Path], tmp_path: Path) -> None:
    checks = group()
    assert checks
    assert run_checks(checks, arm64_include_dirs, tmp_path) == []


def test_psci_function_ids(arm64_include_dirs: list[Path], tmp_path: Path) -> None:
    from kvm_armv8.arm import psci

    checks: list[Check] = [
        (name, name, int(getattr(psci, name)) & (2**64 - 1)) for name in psci.HEADER_NAMES
    ]
    assert run_checks(checks, arm64_include_dirs, tmp_path) == []
