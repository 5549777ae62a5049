"""The x86 plugin's cffi declarations against the host's own ``<linux/kvm.h>``.

Every struct the kvm_x86 package adds to ``kvmbase.abi.ffi`` is compared,
field by field, with ``<linux/kvm.h>`` (which includes ``<asm/kvm.h>``), and
every ioctl request the plugin registers with the header's macro.  One C
program per module; see ``tests/abi_layout_check.py``.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest
from abi_layout_check import (
    HOST_LACKS,
    Check,
    constant_checks,
    declared_structs,
    host_values,
    import_all,
    ioctl_constants,
    mismatches,
    struct_checks,
)

from kvmbase import abi

HEADERS = ("linux/kvm.h",)
HEADER = "<linux/kvm.h>"

import_all("kvm_x86")
STRUCTS = declared_structs(("kvmbase", "kvm_x86"))["kvm_x86"]
# Every ioctl request a kvm_x86 module defines (state parts declare their
# own), not those other plugins register in the shared table.
IOCTLS = constant_checks(
    {
        name: value
        for module_name, module in sorted(sys.modules.items())
        if module_name == "kvm_x86" or module_name.startswith("kvm_x86.")
        for name, value in ioctl_constants(module, abi.ioctl_names).items()
    }
)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int | None]:
    """The C side of every check of this module, from one gcc run."""
    if platform.machine() not in ("x86_64", "i686", "i386"):
        pytest.skip(HOST_LACKS + "x86 headers (<asm/kvm.h> of another architecture)")
    checks: list[Check] = [c for s in STRUCTS for c in struct_checks(s)] + IOCTLS
    workdir: Path = tmp_path_factory.mktemp("abi_layout_kvm_x86")
    return host_values(workdir, HEADERS, checks)


def test_declarations_are_found() -> None:
    """The enumeration sees the declarations (so an empty run cannot pass)."""
    assert "kvm_sregs" in STRUCTS
    assert "kvm_run" not in STRUCTS, "core structs leaked into the plugin's list"
    assert "KVM_GET_REGS" in {c.macro for c in IOCTLS}


@pytest.mark.parametrize("struct", STRUCTS)
def test_struct_layout(struct: str, host: dict[str, int | None]) -> None:
    """Size, alignment and every field's offset and size match C."""
    problems = mismatches(struct_checks(struct), host, HEADER)
    assert not problems, f"struct {struct}:\n" + "\n".join(problems)


def test_ioctls(host: dict[str, int | None]) -> None:
    """Every ioctl request number of ``kvm_x86.abi`` has its macro's value."""
    problems = mismatches(IOCTLS, host, HEADER)
    assert not problems, "ioctl:\n" + "\n".join(problems)
