"""fork, execve, wait4, pipes and SIGPIPE under ``kvmbase exec``: busybox
``sh -c`` scripts compared with the same scripts run natively."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import run_exec, run_native
from .test_exec import assert_same

pytestmark = pytest.mark.kvm

TEXT = "pear\napple\nfig\nbanana\napple\n"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "fruit.txt").write_text(TEXT)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("x\n")
    (tmp_path / "sub" / "data.bin").write_bytes(bytes(range(256)) * 200)
    return tmp_path


SCRIPTS = [
    "echo a b c | /bin/busybox wc -w",
    "cat fruit.txt | sort | uniq -c",
    "echo one > out; echo two >> out; cat < out; wc -l < out",
    "ls no-such-file 2>&1; echo status $?",
    "ls no-such-file > err 2>&1; cat err",
    "for w in x y z; do /bin/busybox echo item $w; done",
    "n=$(echo fruit.txt | wc -c); echo length $n; echo \"$(cat fruit.txt | head -n 1)\"",
    "false || exit 3",
    "find . -name '*.txt' | sort",
    "gzip -c sub/data.bin | gunzip -c | sha256sum",
    "env -i A=1 /bin/busybox env",
    "yes | head -n 3; echo status $?",
    "yes | (head -n 1; exit 0); /bin/busybox true; echo $?",
    "sh -c 'exit 5'; echo child $?",
    # background jobs: the wait builtin sleeps in rt_sigsuspend for SIGCHLD
    "sleep 1 & wait; echo waited $?",
    "(exit 4) & echo started; wait $!; echo got $?",
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_matches_native(busybox: str, workdir: Path, script: str) -> None:
    argv = [busybox, "sh", "-c", script]
    assert_same(run_native(argv, workdir), run_exec(argv, workdir))


def test_execve_of_a_dynamic_program_is_refused(busybox: str, workdir: Path) -> None:
    target = str(Path("/bin/true").resolve())
    outcome = run_exec([busybox, "sh", "-c", f"{target}; echo status $?"], workdir)
    assert outcome.stdout == b"status 126\n"
    assert b"dynamically linked" in outcome.stderr


def test_child_pids_are_host_pids(busybox: str, workdir: Path) -> None:
    # Not the last command: the inner sh is a forked child of the outer one.
    outcome = run_exec([busybox, "sh", "-c", "sh -c 'echo $PPID'; echo $$"], workdir)
    seen_by_child, parent = outcome.stdout.split()
    assert parent == seen_by_child
    assert not Path(f"/proc/{int(parent)}").exists()  # it ran, and has ended
