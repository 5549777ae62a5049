"""Fixtures of the kvm_arm tests.

Tests marked ``kvm`` need an arm64 KVM: on any other host (this x86-64 one)
they are skipped as "host lacks: an arm64 KVM host"; they run inside the
arm64 guest of the ARM test harness, with the A32 guests the harness's
pre-build hook (``armguest_prebuild.py``) built on the host.
"""

from __future__ import annotations

import os
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

from kvm_arm.guests import toolchain
from kvmbase import Machine

HERE = Path(__file__).resolve().parent
ENTRY = 0x40008000


@pytest.fixture(autouse=True)
def _one_host_cpu() -> Iterator[None]:
    """Keep the vCPU thread on one host CPU, the same one for every test.

    The harness's host is QEMU TCG, which does not carry the SPSR of the
    A32 guest's current mode across an exit when the vCPU comes back on
    another host CPU (its ERET to AArch32 never reloads it).  gic.inc's
    handler does not depend on it (srs/rfe), but a thread that moved while
    its guest was in IRQ mode (the handler's reports) left that CPU with the
    guest's SPSR_irq, which later A32 guests then read as their SPSR_svc:
    test_registers' guest does.  Moving a vCPU to another CPU mid-handler on
    purpose made the old "subs pc, lr, #4" return fail at the first move.
    """
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)


@pytest.fixture(scope="session")
def a32_guest(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``a32_guest(name)``: the built A32 test guest ``name`` (guests/build.py)."""
    return guest_getter(HERE, toolchain, "32-bit ARM binutils (binutils-arm-linux-gnueabihf)",
                        tmp_path_factory)


@pytest.fixture
def arm(machines: list[Machine], a32_guest: Callable[[str], Path]) -> MachineFactory:
    """``arm(guest_name, **arm_section)`` -> (machine, recorder at 0x0A000000)."""

    def make(guest: str, **section: Any) -> tuple[Machine, Recorder]:
        return machine_with_recorder(machines, "arm", a32_guest(guest), ENTRY, **section)

    return make


@pytest.fixture(name="add_recorder")
def add_recorder_fixture() -> Callable[[Machine], Recorder]:
    """:func:`arm_support.add_recorder`, for ``Machine.restore``'s before_load."""
    return add_recorder
