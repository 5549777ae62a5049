"""Kvm, KvmVM and KvmDevice against the real /dev/kvm."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from conftest import skip_host_lacks

from kvmbase import abi
from kvmbase.errors import KvmCapabilityError, KvmIoctlError
from kvmbase.kvm import CAPABILITIES, Kvm
from kvmbase.sim.memory import GuestMemory
from kvmbase.vm import KvmVM

pytestmark = pytest.mark.kvm

KVM_DEV_TYPE_VFIO = 4
KVM_DEV_VFIO_FILE = 1
KVM_DEV_VFIO_FILE_ADD = 1


def kvm_fds() -> list[str]:
    """Targets of this process's fds that are KVM objects."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "kvm" in target:
            found.append(target)
    return sorted(found)


def kvm_mappings() -> list[str]:
    return [line for line in Path("/proc/self/maps").read_text().splitlines() if "kvm" in line]


def test_kvm_reports_api_and_capabilities() -> None:
    with Kvm() as kvm:
        assert kvm.api_version == abi.KVM_API_VERSION
        assert kvm.vcpu_mmap_size >= abi.ffi.sizeof("struct kvm_run")
        assert kvm.vcpu_mmap_size % abi.PAGE_SIZE == 0
        caps = kvm.capabilities()
        assert set(caps) == {cap.name for cap in CAPABILITIES}
        assert caps["USER_MEMORY"] == 1
        assert kvm.cap_user_memory is True
        assert kvm.cap_coalesced_mmio == caps["COALESCED_MMIO"]
        assert kvm.cap_num_mem_slots == caps["NR_MEMSLOTS"]


def test_memory_slots_allocate_map_disable_free_and_reuse() -> None:
    memory = GuestMemory(0, 0x10000)
    other = GuestMemory(0, 0x10000)
    with KvmVM() as vm:
        slot = vm.alloc_mem_slot(memory.size)
        assert slot.number == 0
        vm.setup_mem_slot(slot, memory.host_address, 0)
        second = vm.alloc_mem_slot(other.size)
        assert second.number == 1
        # Two slots may not map the same guest range.
        with pytest.raises(KvmIoctlError) as caught:
            vm.setup_mem_slot(second, other.host_address, 0x8000)
        assert caught.value.ioctl == "KVM_SET_USER_MEMORY_REGION"
        assert caught.value.errno == errno.EEXIST
        assert "memory slot 1" in str(caught.value)
        vm.setup_mem_slot(second, other.host_address, 0x100000)
        vm.disable_mem_slot(slot)
        assert not slot.active
        # Disabled, slot 0 no longer holds guest address 0: another slot can.
        third = vm.alloc_mem_slot(0x1000)
        assert third.number == 2
        vm.setup_mem_slot(third, other.host_address, 0)
        vm.free_mem_slot(third)
        vm.free_mem_slot(second)
        vm.free_mem_slot(slot)
        assert vm.memory_slots == []
        again = vm.alloc_mem_slot(0x2000)
        assert again.number == 0  # freed slots are reused, lowest first
        vm.setup_mem_slot(again, other.host_address, 0)
        with pytest.raises(ValueError, match="multiple of 4 KiB"):
            vm.alloc_mem_slot(100)
    memory.close()
    other.close()


def test_coalesced_zones_before_and_after_start() -> None:
    with KvmVM(coalesced_mmio=[(0xD0000000, 0x1000)]) as vm:
        if not vm.kvm.cap_coalesced_mmio:
            skip_host_lacks("KVM_CAP_COALESCED_MMIO")
        assert vm.coalesced_zones == []
        vm.cpu_startup()
        assert vm.coalesced_zones == [(0xD0000000, 0x1000, False)]
        vm.coalesce_mmio(0xD0002000, 0x100)
        if vm.kvm.cap_coalesced_pio:
            vm.coalesce_pio(0x80, 1)
        assert (0xD0002000, 0x100, False) in vm.coalesced_zones


def test_irq_chip_and_lines() -> None:
    with KvmVM() as vm:
        with pytest.raises(KvmIoctlError) as caught:
            vm.set_irq_line(4, True)
        assert caught.value.ioctl == "KVM_IRQ_LINE"
        if not vm.kvm.cap_irq_chip:
            with pytest.raises(KvmCapabilityError):
                vm.create_irq_chip()
            return
        vm.create_irq_chip()
        assert vm.has_kernel_irq_chip
        vm.set_irq_line(4, True)
        vm.set_irq_line(4, False)


def test_tss_address_above_two_gib() -> None:
    with KvmVM() as vm:
        if not vm.kvm.cap_set_tss_address:
            skip_host_lacks("KVM_CAP_SET_TSS_ADDR")
        vm.set_tss_address(0xFFFBD000)


def test_vcpu_ids_and_creation() -> None:
    with KvmVM() as vm:
        ids = [vm.alloc_vcpu_id() for _ in range(2)]
        assert ids == [0, 1]
        fd = vm.create_vcpu(ids[0])
        assert os.readlink(f"/proc/self/fd/{fd}").startswith("anon_inode:kvm-vcpu")
        with pytest.raises(KvmIoctlError) as caught:
            vm.create_vcpu(ids[0])
        assert caught.value.ioctl == "KVM_CREATE_VCPU"
        assert caught.value.errno == errno.EEXIST
        vm.release_vcpu(ids[0])


def test_devices_and_attributes() -> None:
    with KvmVM() as vm:
        with pytest.raises(KvmIoctlError) as caught:
            vm.create_device(0xFFFF)
        assert caught.value.ioctl == "KVM_CREATE_DEVICE"
        assert caught.value.errno == errno.ENODEV
        try:
            vm.create_device(KVM_DEV_TYPE_VFIO, test=True)
        except KvmIoctlError as exc:
            if exc.errno == errno.ENODEV:
                skip_host_lacks("the KVM VFIO device")
            raise
        device = vm.create_device(KVM_DEV_TYPE_VFIO)
        assert device.has_attr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD)
        assert not device.has_attr(0x7777, 0)
        assert device in vm.devices


def test_closing_a_vm_releases_every_fd_and_mapping() -> None:
    from kvmbase import Machine
    from kvmbase.plugins import get_arch

    fds_before, maps_before = kvm_fds(), kvm_mappings()
    demo = get_arch("x86").demo_config
    assert demo is not None
    machine = Machine.from_data(demo(), uart_output="none")
    machine.run()
    assert any("kvm-vcpu" in target for target in kvm_fds())
    assert any("kvm-vcpu" in line for line in kvm_mappings())
    machine.close()
    assert kvm_fds() == fds_before
    assert kvm_mappings() == maps_before
