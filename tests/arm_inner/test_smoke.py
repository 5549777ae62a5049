"""Smoke tests of the arm64 guest itself: Python, kvmbase and a real arm64 KVM.

When one of these fails, every ARM suite's failures inside the guest are
suspect: start here.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import mmap
import platform
import shutil
import subprocess
import sys

from kvmbase.kvm import Kvm
from kvmbase.vm import KvmVM


def _kvmbase(*args: str) -> subprocess.CompletedProcess[str]:
    command = shutil.which("kvmbase")
    assert command is not None, "no kvmbase launcher on PATH in the guest"
    return subprocess.run([command, *args], capture_output=True, text=True, timeout=120)


def test_arm64_python() -> None:
    assert platform.machine() == "aarch64"
    assert sys.version_info[:2] == (3, 11)


def test_kvmbase_imports_and_is_installed() -> None:
    import kvmbase

    assert importlib.metadata.version("kvmbase") == kvmbase.__version__
    entry_points = importlib.metadata.entry_points(group="kvmbase")
    assert "x86" in entry_points.names  # discovered through the generated dist-info


def test_kvm_opens_with_api_12() -> None:
    with Kvm() as kvm:
        assert kvm.api_version == 12
        assert kvm.vcpu_mmap_size >= mmap.PAGESIZE
        assert kvm.cap_one_reg


def test_caps_json() -> None:
    result = _kvmbase("caps", "--json")
    assert result.returncode == 0, result.stderr
    caps = json.loads(result.stdout)
    assert caps["host"]["API version"] == 12
    assert caps["host"]["host machine"] == "aarch64"
    assert caps["capabilities"]["ONE_REG"] == 1


def test_vm_with_memory_slot_and_vcpu() -> None:
    size = 0x10000
    memory = mmap.mmap(-1, size)
    first_byte = ctypes.c_char.from_buffer(memory)
    with KvmVM() as vm:
        slot = vm.alloc_mem_slot(size)
        vm.setup_mem_slot(slot, ctypes.addressof(first_byte), 0x10000)
        assert slot.active and slot.guest_address == 0x10000
        fd = vm.create_vcpu(vm.alloc_vcpu_id())
        run_area = mmap.mmap(fd, vm.kvm.vcpu_mmap_size)  # the vCPU's kvm_run
        run_area.close()
    del first_byte
    memory.close()


def test_plugins_command() -> None:
    # In-process (a second interpreter start costs ~4 s under TCG); the
    # launcher itself is covered by test_caps_json.
    from click.testing import CliRunner

    from kvmbase.cli import cli

    result = CliRunner().invoke(cli, ["plugins", "--json"], prog_name="kvmbase")
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    names = {row["name"]: row for row in listing["architectures"]}
    assert "x86" in names and not names["x86"]["runs here"]  # x86 never runs on arm64
    assert names["armv8"]["runs here"] and names["arm"]["runs here"]
    assert not listing["broken"], listing["broken"]
