"""armguest: run the project's ARM test suites against a real arm64 KVM.

This host is x86-64.  The harness boots Debian's arm64 cloud kernel at EL2
under ``qemu-system-aarch64`` (TCG); that kernel offers a real ``/dev/kvm``,
and Debian's arm64 Python 3.11 inside it runs the project's packages and
pytest.  Everything it needs is downloaded from the Debian archive and PyPI
once and cached (see :mod:`armguest.paths` for where).

    from armguest import run_tests
    run = run_tests(["tests/arm_inner"])     # one boot
    for test in run.tests: print(test["nodeid"], test["outcome"])

``python -m armguest --help`` has the same from the command line.
"""

from __future__ import annotations

from armguest.debs import Arm64Headers, arm64_linux_headers
from armguest.errors import HarnessError, HostLacksError
from armguest.qemu import GuestRun
from armguest.runner import (
    INNER_TEST_FOLDERS,
    console_log,
    inner_test_folders,
    prepare,
    run_tests,
)

__all__ = [
    "INNER_TEST_FOLDERS",
    "Arm64Headers",
    "GuestRun",
    "HarnessError",
    "HostLacksError",
    "arm64_linux_headers",
    "console_log",
    "inner_test_folders",
    "prepare",
    "run_tests",
]
