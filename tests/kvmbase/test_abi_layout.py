"""The core's cffi declarations against the host's own C headers.

Every struct the kvmbase package declares on ``kvmbase.abi.ffi`` is
compared, field by field, with ``<linux/kvm.h>``; the private
``kvmbase_*`` stand-ins with the glibc and kernel types they mirror.  Every
ioctl request and constant group of ``kvmbase.abi`` is compared with the
header's macro.  One C program per module; see ``tests/abi_layout_check.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from abi_layout_check import (
    Alias,
    Check,
    constant_checks,
    declared_structs,
    host_values,
    import_all,
    ioctl_constants,
    mismatches,
    module_constants,
    struct_checks,
)

from kvmbase import abi

HEADERS = ("linux/kvm.h", "linux/perf_event.h", "signal.h", "time.h")
HEADER = "host C"

import_all("kvmbase")

#: The C types the private ``kvmbase_*`` structs stand in for.
ALIASES = {
    "kvmbase_perf_event_attr": Alias(
        "struct perf_event_attr",
        {
            # The kernel splits this word into bitfields; it follows read_format.
            "flags": (
                "offsetof(struct perf_event_attr, read_format) + 8",
                "sizeof(__u64)",
            ),
            "reserved_2": "__reserved_2",
            "reserved_3": "__reserved_3",
        },
        # perf_event_attr grows; attr.size says which published version is passed.
        size="PERF_ATTR_SIZE_VER7",
    ),
    "kvmbase_sigevent": Alias(
        "struct sigevent",
        {"sigev_notify_thread_id": "_sigev_un._tid", "padding": None},
    ),
    "kvmbase_timespec": Alias("struct timespec"),
    "kvmbase_itimerspec": Alias("struct itimerspec"),
}

STRUCTS = declared_structs(("kvmbase",))["kvmbase"]

#: Constant groups: name prefix, and whether the header may lack some macros.
PREFIX_GROUPS = {
    "KVM_CAP_": False,
    "KVM_EXIT_": True,  # only the exit reasons this header knows are compared
    "KVM_INTERNAL_ERROR_": False,
    "KVM_SYSTEM_EVENT_": False,
    "KVM_MEM_": False,
    "KVM_REG_": False,
}
SINGLE_CONSTANTS = ("KVMIO", "KVM_API_VERSION", "KVM_COALESCED_MMIO_MAX")


def constant_groups() -> dict[str, list[Check]]:
    """The constants of ``kvmbase.abi`` to compare, by group."""
    ioctls = ioctl_constants(abi, abi.ioctl_names)
    groups = {"ioctl": constant_checks(ioctls)}
    for prefix, optional in PREFIX_GROUPS.items():
        values = {n: v for n, v in module_constants(abi, prefix).items() if n not in ioctls}
        groups[prefix] = constant_checks(values, optional=optional)
    groups["other"] = constant_checks({name: getattr(abi, name) for name in SINGLE_CONSTANTS})
    return groups


GROUPS = constant_groups()


def checks_of(struct: str) -> list[Check]:
    """The checks of one declared struct."""
    return struct_checks(struct, ALIASES.get(struct))


def comparable(struct: str) -> bool:
    """Whether the host's headers have a C type to compare ``struct`` with."""
    return not struct.startswith("kvmbase_") or struct in ALIASES


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int | None]:
    """The C side of every check of this module, from one gcc run."""
    checks = [c for s in STRUCTS if comparable(s) for c in checks_of(s)]
    checks += [c for group in GROUPS.values() for c in group]
    workdir: Path = tmp_path_factory.mktemp("abi_layout_kvmbase")
    return host_values(workdir, HEADERS, checks)


def test_declarations_are_found() -> None:
    """The enumeration sees the declarations (so an empty run cannot pass)."""
    assert "kvm_run" in STRUCTS
    assert "kvmbase_perf_event_attr" in STRUCTS
    assert "KVM_RUN" in {c.macro for c in GROUPS["ioctl"]}
    assert all(GROUPS.values()), "a constant group is empty"


@pytest.mark.parametrize("struct", STRUCTS)
def test_struct_layout(struct: str, host: dict[str, int | None]) -> None:
    """Size, alignment and every field's offset and size match C."""
    assert comparable(struct), f"struct {struct} has no C counterpart in ALIASES"
    problems = mismatches(checks_of(struct), host, HEADER)
    assert not problems, f"struct {struct}:\n" + "\n".join(problems)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_constants(group: str, host: dict[str, int | None]) -> None:
    """Every constant of the group has its header macro's value."""
    problems = mismatches(GROUPS[group], host, "<linux/kvm.h>")
    assert not problems, f"{group}:\n" + "\n".join(problems)
