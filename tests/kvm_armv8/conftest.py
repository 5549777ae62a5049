"""Fixtures of the kvm_armv8 tests.

* ``arm64_include_dirs``: Debian's arm64 ``linux-libc-dev`` headers, downloaded
  once into a cache outside the repository (``$KVMBASE_ARM64_HEADERS``, or
  ``~/.cache/kvmbase/linux-libc-dev-arm64``), for the host-side ABI tests.
* Tests marked ``kvm`` need an arm64 KVM: on any other host (this x86-64
  one) they are skipped as "host lacks: an arm64 KVM host"; they run inside
  the arm64 guest of the ARM test harness.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from arm_support import (
    MachineFactory,
    Recorder,
    _needs_arm64_kvm,  # noqa: F401 - autouse: kvm tests need arm64
    add_recorder,
    guest_getter,
    machine_with_recorder,
)
from conftest import skip_host_lacks  # tests/conftest.py

from kvm_armv8.guests import toolchain
from kvmbase import Machine

HERE = Path(__file__).resolve().parent
ENTRY = 0x40080000


def _cache_dir() -> Path:
    override = os.environ.get("KVMBASE_ARM64_HEADERS")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kvmbase" / "linux-libc-dev-arm64"


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def _fetch_headers(target: Path) -> str | None:
    """Download and unpack linux-libc-dev:arm64 into ``target``; None, or why not."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return "apt-get and dpkg (to download linux-libc-dev:arm64)"
    foreign = _run(["dpkg", "--print-foreign-architectures"]).stdout.split()
    if "arm64" not in foreign:
        if os.geteuid() != 0:
            return "the arm64 dpkg architecture (dpkg --add-architecture arm64, as root)"
        if _run(["dpkg", "--add-architecture", "arm64"]).returncode != 0 or \
                _run(["apt-get", "update", "-qq"]).returncode != 0:
            return "apt indexes for arm64 (apt-get update failed)"
    work = target.with_name(target.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    download = _run(["apt-get", "download", "linux-libc-dev:arm64"], cwd=work)
    debs = list(work.glob("linux-libc-dev_*_arm64.deb"))
    if download.returncode != 0 or not debs:
        shutil.rmtree(work, ignore_errors=True)
        return f"a download of linux-libc-dev:arm64 ({download.stderr.strip()[:200]})"
    if _run(["dpkg", "-x", str(debs[0]), str(work / "root")]).returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        return "dpkg -x of linux-libc-dev:arm64"
    (work / "root" / "VERSION").write_text(debs[0].name + "\n")
    shutil.rmtree(target, ignore_errors=True)
    (work / "root").rename(target)
    shutil.rmtree(work, ignore_errors=True)
    return None


@pytest.fixture(scope="session")
def arm64_include_dirs() -> Iterator[list[Path]]:
    """``-I`` directories of the arm64 kernel headers (arch dir first)."""
    target = _cache_dir()
    if not (target / "usr" / "include" / "linux" / "kvm.h").exists():
        why = _fetch_headers(target)
        if why is not None:
            skip_host_lacks(why)
    include = target / "usr" / "include"
    yield [include / "aarch64-linux-gnu", include]


@pytest.fixture(scope="session")
def arm_guest(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``arm_guest(name)``: the built test guest ``name`` (guests/build.py)."""
    return guest_getter(HERE, toolchain, "aarch64 binutils (binutils-aarch64-linux-gnu)",
                        tmp_path_factory)


@pytest.fixture
def armv8(machines: list[Machine], arm_guest: Callable[[str], Path]) -> MachineFactory:
    """``armv8(guest_name, **armv8_section)`` -> (machine, recorder); closed after the test."""

    def make(guest: str, **section: Any) -> tuple[Machine, Recorder]:
        return machine_with_recorder(machines, "armv8", arm_guest(guest), ENTRY, **section)

    return make


@pytest.fixture(name="add_recorder")
def add_recorder_fixture() -> Callable[[Machine], Recorder]:
    """:func:`arm_support.add_recorder`, for ``Machine.restore``'s before_load."""
    return add_recorder
