"""The pytest side of the conformance suite (entry point ``pytest11``).

Fixtures the suite's tests use; the plugin author's own ``conformance_target``
fixture says what is under test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from kvmbase.kvm import kvm_usable
from kvmbase.machine import Machine
from kvmbase.plugins import get_arch
from kvmbase.testing import ARCH_LACKS, CAPABILITIES, HOST_LACKS, ConformanceTarget


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance(capability): a kvmbase conformance test needing that capability"
    )


@dataclass
class OutputLog:
    """Every write the guest made to the output device: (offset, size, value)."""

    writes: list[tuple[int, int, int]] = field(default_factory=list)


@dataclass
class GuestRun:
    """A machine of the target, with its output log."""

    machine: Machine
    log: OutputLog


def require(target: ConformanceTarget, capability: str) -> None:
    """Skip, saying why, when the target declares it lacks ``capability``."""
    assert capability in CAPABILITIES, capability
    if capability in target.lacks:
        pytest.skip(f"{ARCH_LACKS}{capability} ({target.lacks[capability]})")


def require_runnable(target: ConformanceTarget) -> None:
    """Skip, saying why, unless a VM of the target's architecture can run here."""
    usable, why = kvm_usable()
    if not usable:
        pytest.skip(f"{HOST_LACKS}a usable /dev/kvm ({why})")
    runs, why = get_arch(target.arch).runs_on_host()
    if not runs:
        pytest.skip(f"{HOST_LACKS}a host {target.arch} runs on ({why})")


def record_output(machine: Machine, target: ConformanceTarget, log: OutputLog,
                  stop_after: int | None = None) -> None:
    """Log the guest's writes to the output device; stop the run after ``stop_after``."""
    device = machine.devices[target.output_device]
    write = device.write

    def logged(offset: int, size: int, value: int) -> None:
        write(offset, size, value)
        log.writes.append((offset, size, value))
        if len(log.writes) == stop_after:
            machine.stop("stopped by the conformance suite")

    device.write = logged  # type: ignore[method-assign]


@pytest.fixture
def target_machine(
    conformance_target: ConformanceTarget,
) -> Iterator[Callable[..., GuestRun]]:
    """``target_machine(stop=False)``: a machine of the target's guest, closed after
    the test; with ``stop`` it has run to its first stop (``stop_after_writes``)."""
    require_runnable(conformance_target)
    made: list[Machine] = []

    def make(stop: bool = False) -> GuestRun:
        machine = Machine.from_data(dict(conformance_target.guest_config()), uart_output="none")
        made.append(machine)
        log = OutputLog()
        record_output(machine, conformance_target, log,
                      conformance_target.stop_after_writes if stop else None)
        if stop:
            result = machine.run()
            assert result.cause == "stopped by the conformance suite", (
                f"the guest ended ({result.cause}) before its "
                f"{conformance_target.stop_after_writes}th write to "
                f"{conformance_target.output_device}"
            )
        return GuestRun(machine, log)

    yield make
    for machine in made:
        machine.close()


# Module scope: one session may test several targets, one module each.
@pytest.fixture(scope="module")
def reference_output(conformance_target: ConformanceTarget) -> list[tuple[int, int, int]]:
    """The output device's writes of one uninterrupted run of the target's guest."""
    require_runnable(conformance_target)
    machine = Machine.from_data(dict(conformance_target.guest_config()), uart_output="none")
    try:
        log = OutputLog()
        record_output(machine, conformance_target, log)
        result = machine.run()
        assert result.cause == conformance_target.end_cause, result
    finally:
        machine.close()
    assert len(log.writes) > conformance_target.stop_after_writes, (
        f"the guest made {len(log.writes)} writes to {conformance_target.output_device}; "
        f"the suite stops it after {conformance_target.stop_after_writes}"
    )
    return log.writes
