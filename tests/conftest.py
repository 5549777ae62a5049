"""Test-suite rules shared by every distribution's tests.

* ``@pytest.mark.kvm`` tests need a usable ``/dev/kvm``; without one they are
  skipped with the reason.
* A test may skip only for something the host lacks, through
  :func:`skip_host_lacks`, or (a conformance test) for a capability the
  architecture declares it lacks.  With ``--strict-skips`` (``.ci/run`` passes it)
  the run fails if any other skip happened, or if a KVM test was skipped
  while ``/dev/kvm`` is usable.
* The ``machines`` fixture is a list a test appends the machines it makes
  to; they are all closed after the test.
* Inside the ARM harness's guest (``ARMGUEST_IN_GUEST``), guest RAM is never
  handed back to the kernel during the session: see
  :func:`_keep_guest_ram_in_the_arm_harness`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from kvmbase import Machine
from kvmbase.kvm import kvm_usable
from kvmbase.sim.memory import GuestMemory
from kvmbase.testing import ARCH_LACKS, HOST_LACKS

# "arch lacks: " skips a conformance test of a capability the architecture
# declares it lacks (kvmbase.testing).

KVM_USABLE, KVM_REASON = kvm_usable()


def skip_host_lacks(what: str) -> None:
    """Skip the running test because the host lacks ``what``."""
    pytest.skip(HOST_LACKS + what)


@pytest.fixture(scope="session", autouse=True)
def _keep_guest_ram_in_the_arm_harness() -> Iterator[None]:
    """Park closed machines' RAM mappings until the session ends, in the harness.

    The harness's arm64 host is QEMU 7.2 TCG. When a new VM's RAM got host
    pages that held the previous VM's code at the same guest PC, its vCPU ran
    the previous guest's stale translations (an A32 ``mmio`` guest followed by
    ``count`` failed 12 times in 12; with the old RAM kept mapped, 0 in 12).
    Real hardware cannot do that (KVM cleans and invalidates the caches of
    every page it maps), so the tests keep the pages from being reused rather
    than work around it in the framework.
    """
    if not os.environ.get("ARMGUEST_IN_GUEST"):
        yield
        return
    parked: list[GuestMemory] = []
    close = GuestMemory.close

    def park(memory: GuestMemory) -> None:
        parked.append(memory)  # mapped until the session's end

    GuestMemory.close = park  # type: ignore[method-assign]
    try:
        yield
    finally:
        GuestMemory.close = close  # type: ignore[method-assign]


@pytest.fixture
def machines() -> Iterator[list[Machine]]:
    """Machines a test makes; all closed at the end."""
    made: list[Machine] = []
    yield made
    for machine in made:
        machine.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--strict-skips",
        action="store_true",
        help="fail the run when a test this host could run was skipped",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kvm: needs a usable /dev/kvm")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    # A conftest's per-test hooks only see tests below its folder; as a plain
    # plugin the skip audit also sees the example plugins' tests (examples/).
    config.pluginmanager.register(_SkipAudit(), "kvmbase-skip-audit")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if KVM_USABLE:
        return
    marker = pytest.mark.skip(reason=HOST_LACKS + f"a usable /dev/kvm ({KVM_REASON})")
    for item in items:
        if "kvm" in item.keywords:
            item.add_marker(marker)


_bad_skips: list[str] = []


class _SkipAudit:
    """Collects the skips ``--strict-skips`` refuses, from every test."""

    @staticmethod
    def pytest_runtest_logreport(report: pytest.TestReport) -> None:
        _audit_skip(report)


def _audit_skip(report: pytest.TestReport) -> None:
    # An expected failure (xfail) reports as skipped but is not a skip.
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if not reason.startswith((HOST_LACKS, ARCH_LACKS)):
        _bad_skips.append(f"{report.nodeid}: {reason}")
    elif KVM_USABLE and "/dev/kvm" in reason:
        _bad_skips.append(f"{report.nodeid}: skipped for /dev/kvm, which is usable")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.getoption("--strict-skips") and _bad_skips:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if terminalreporter.config.getoption("--strict-skips") and _bad_skips:
        terminalreporter.section("skips this host should not have (--strict-skips)")
        for line in _bad_skips:
            terminalreporter.line(line)
