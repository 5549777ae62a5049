"""Signal delivery to guest handlers: small static programs that catch
SIGSEGV, SIGFPE and SIGUSR1 (sigframe, siginfo, rt_sigreturn, the blocked
mask), run natively and under ``kvmbase exec``."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import run_exec, run_native
from .test_exec import assert_same

pytestmark = pytest.mark.kvm


@pytest.mark.parametrize(
    ("program", "stdout", "status"),
    [
        ("segv_handler", b"caught SIGSEGV\nresumed\n", 42),
        ("fpe_handler", b"caught SIGFPE\n", 42),
        ("kill_self", b"", 2),
    ],
)
def test_handler_program_matches_native(
    programs: dict[str, Path], program: str, stdout: bytes, status: int
) -> None:
    argv = [str(programs[program])]
    native = run_native(argv)
    assert (native.status, native.stdout) == (status, stdout)
    assert_same(native, run_exec(argv))


def test_fault_in_a_child_is_reported_by_the_shell(
    busybox: str, programs: dict[str, Path]
) -> None:
    argv = [busybox, "sh", "-c", f"{programs['segv']}; echo status $?"]
    native = run_native(argv)
    emulated = run_exec(argv)
    assert emulated.stdout == native.stdout == b"status 139\n"
    assert emulated.status == native.status


def test_sigpipe_kills_the_writer(busybox: str) -> None:
    argv = [busybox, "sh", "-c", "yes | head -n 1 > /dev/null; echo ${PIPESTATUS:-x}"]
    assert_same(run_native(argv), run_exec(argv))
