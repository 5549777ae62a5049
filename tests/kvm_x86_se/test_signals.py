"""Signal delivery to guest handlers: small static programs that catch
SIGSEGV, SIGFPE and SIGUSR1 (sigframe, siginfo, rt_sigreturn, the blocked
mask), run natively and under ``kvmbase exec``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import run_exec, run_native
from .test_exec import assert_same

pytestmark = pytest.mark.kvm

KVMBASE_EXEC = [sys.executable, "-c", "from kvmbase.cli import main; main()", "exec"]


@pytest.mark.parametrize(
    ("program", "stdout", "status"),
    [
        ("segv_handler", b"caught SIGSEGV\nresumed\n", 42),
        ("fpe_handler", b"caught SIGFPE\n", 42),
        ("kill_self", b"", 2),
        # xmm0 and MXCSR come back after a handler that changed them
        ("sse_across_handler", b"", 0),
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


def _interrupted(argv: list[str]) -> tuple[int, bytes, float]:
    """Run ``argv``, send it SIGINT after 1.5 s: (status as a shell sees it,
    stdout, seconds from the signal to the end)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=60)
    status = process.returncode
    return (128 - status if status < 0 else status), stdout, time.monotonic() - sent


@pytest.mark.parametrize(
    ("script", "stdout", "status"),
    [
        # the default action ends the program; the host's sleep is cut short
        (None, b"", 130),
        # a shell trap runs once its child is done, as natively
        ("trap 'echo caught; exit 5' INT; sleep 3; echo after", b"caught\n", 5),
    ],
)
def test_host_sigint_reaches_the_guest(
    busybox: str, script: str | None, stdout: bytes, status: int
) -> None:
    args = ["sleep", "10"] if script is None else ["sh", "-c", script]
    native = _interrupted([busybox, *args])
    emulated = _interrupted([*KVMBASE_EXEC, busybox, *args])
    assert native[:2] == (status, stdout)
    assert emulated[:2] == (status, stdout)
    assert emulated[2] < 5  # not the 10 s of the sleep
