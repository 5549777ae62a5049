"""KVM_GET/SET_ONE_REG through the CPU's helpers, on registers a guest uses.

x86 KVM serves MSRs through ONE_REG from Linux 6.18 on; older hosts skip.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from conftest import skip_host_lacks
from e2e_support import PortRecorder
from x86_machines import machine_config, machine_from

from kvmbase import KvmIoctlError, Machine, abi

pytestmark = pytest.mark.kvm

KVM_REG_X86 = 0x2000000000000000
KVM_X86_REG_TYPE_MSR = 2


def msr_id(index: int) -> int:
    return KVM_REG_X86 | abi.KVM_REG_SIZE_U64 | KVM_X86_REG_TYPE_MSR << 32 | index


KERNEL_GS_BASE = msr_id(0xC0000102)
SYSENTER_ESP = msr_id(0x175)


@pytest.fixture
def machine(guest_dir: Path, machines: list[Machine]) -> Machine:
    machine = machine_from(machines, machine_config(guest_dir / "msr.bin"))
    machine.system.startup()
    try:
        machine.cpu.get_one_reg(KERNEL_GS_BASE)
    except KvmIoctlError as exc:
        if exc.errno == errno.EINVAL:
            skip_host_lacks("x86 MSRs through KVM_GET_ONE_REG (Linux 6.18+)")
        raise
    return machine


def test_a_register_set_through_one_reg_is_what_the_guest_reads(machine: Machine) -> None:
    cpu = machine.cpu
    # Both MSRs hold addresses, which KVM keeps canonical.
    cpu.set_one_reg(KERNEL_GS_BASE, 0xFFFF800012345678)
    assert cpu.get_one_reg(KERNEL_GS_BASE) == 0xFFFF800012345678
    assert cpu.get_and_format_one_reg(KERNEL_GS_BASE) == "0xffff800012345678"
    seen = PortRecorder("seen")
    machine.add_device(seen, machine.port_address(0xE1), 4)
    assert machine.run().cause == "all CPUs halted"
    assert seen.values == [0x12345678, 0xFFFF8000]


def test_what_the_guest_writes_reads_back_through_one_reg(machine: Machine) -> None:
    machine.add_device(PortRecorder("seen"), machine.port_address(0xE1), 4)
    machine.run()
    assert machine.cpu.get_one_reg(SYSENTER_ESP) == 0x00007FFF12345670


def test_one_reg_errors_name_the_ioctl_the_errno_and_the_vcpu(machine: Machine) -> None:
    bogus = KVM_REG_X86 | abi.KVM_REG_SIZE_U64 | 7 << 32
    with pytest.raises(KvmIoctlError) as caught:
        machine.cpu.get_one_reg(bogus)
    error = caught.value
    assert (error.ioctl, error.errno, error.vcpu_id) == ("KVM_GET_ONE_REG", errno.EINVAL, 0)
    assert str(error) == (
        f"KVM_GET_ONE_REG on vCPU 0 failed (reading register {bogus:#x}): "
        "EINVAL (Invalid argument)"
    )
    with pytest.raises(ValueError, match="is 8 bytes, got 4"):
        machine.cpu.set_one_reg(KERNEL_GS_BASE, b"\x00" * 4)
