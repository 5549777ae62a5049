"""The x86 plugin's cffi declarations against the host's own ``<linux/kvm.h>``.

Every struct the kvm_x86 package adds to ``kvmbase.abi.ffi`` is compared,
field by field, with ``<linux/kvm.h>`` (which includes ``<asm/kvm.h>``), and
every ioctl request the plugin registers with the header's macro.  One C
program per module; see ``tests/abi_layout_check.py``.
"""

from __future__ import annotations

import platform
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

from kvm_x86 import abi as x86_abi
from kvmbase import abi

HEADERS = ("linux/kvm.h",)
HEADER = "<linux/kvm.h>"

import_all("kvm_x86")
STRUCTS = declared_structs(("kvmbase", "kvm_x86"))["kvm_x86"]
# Every request the plugin registers a name for, wherever it is defined
# (state parts declare their own ioctls), plus those of kvm_x86.abi.
IOCTLS = constant_checks(
    ioctl_constants(x86_abi, abi.ioctl_names)
    | {
        name: request
        for request, name in abi.ioctl_names.items()
        if not isinstance(getattr(abi, name, None), int)
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
