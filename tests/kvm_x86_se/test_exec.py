"""``kvmbase exec``: busybox applets and small static programs under KVM,
compared with the same programs run natively."""

from __future__ import annotations

import io
import os
import struct
import subprocess
from pathlib import Path

import pytest

from .conftest import Outcome, run_exec, run_native

pytestmark = pytest.mark.kvm

TEXT = "pear\napple\nfig\nbanana\napple\n"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "fruit.txt").write_text(TEXT)
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 300)
    return tmp_path


def assert_same(native: Outcome, emulated: Outcome) -> None:
    assert emulated.stderr.decode() == native.stderr.decode()
    assert emulated.stdout.decode(errors="replace") == native.stdout.decode(errors="replace")
    assert emulated.status == native.status


@pytest.mark.parametrize(
    "args",
    [
        ["echo", "hello", "world"],
        ["cat", "fruit.txt"],
        ["cat", "no-such-file"],
        ["wc", "fruit.txt", "blob.bin"],
        ["sort", "fruit.txt"],
        ["sort", "-u", "-r", "fruit.txt"],
        ["sha256sum", "fruit.txt", "blob.bin"],
        ["md5sum", "blob.bin"],
        ["head", "-n", "2", "fruit.txt"],
        ["false"],
        ["true"],
        ["pwd"],
        ["id"],
        ["uname", "-a"],
        ["seq", "1", "5"],
        ["od", "-c", "fruit.txt"],
        ["sed", "s/a/Z/", "fruit.txt"],
        ["awk", "{print NR, $0}", "fruit.txt"],
        ["gzip", "-c", "fruit.txt"],
        ["sh", "-c", "exit 3"],
        ["sh", "-c", "echo out; echo err >&2; exit 7"],
    ],
    ids=lambda args: " ".join(args),
)
def test_applet_matches_native(busybox: str, workdir: Path, args: list[str]) -> None:
    argv = [busybox, *args]
    assert_same(run_native(argv, workdir), run_exec(argv, workdir))


def test_stdin_is_the_callers(busybox: str, workdir: Path) -> None:
    argv = [busybox, "sort"]
    data = TEXT.encode()
    assert_same(run_native(argv, workdir, data), run_exec(argv, workdir, data))


def test_ls_la_of_a_directory(busybox: str, tmp_path: Path) -> None:
    folder = tmp_path / "listing"
    folder.mkdir()
    (folder / "a.txt").write_text("a" * 10)
    (folder / "sub").mkdir()
    (folder / "z.bin").write_bytes(bytes(1234))
    stamp = 1_600_000_000
    for path in (folder / "a.txt", folder / "sub", folder / "z.bin", folder):
        os.utime(path, (stamp, stamp))
    os.utime(tmp_path, (stamp, stamp))
    argv = [busybox, "ls", "-la", str(folder)]
    native = run_native(argv)
    emulated = run_exec(argv)
    assert_same(native, emulated)
    assert b"z.bin" in emulated.stdout


def test_files_are_made_moved_and_removed(busybox: str, tmp_path: Path) -> None:
    # One applet per run: busybox's sh forks for these, and fork is not emulated yet.
    steps = [
        (["sh", "-c", "echo one > a"], b""),
        (["mkdir", "d"], b""),
        (["mv", "a", "d/b"], b""),
        (["cat", "d/b"], b"one\n"),
        (["rm", "d/b"], b""),
        (["rmdir", "d"], b""),
        (["ls"], b""),
    ]
    for args, stdout in steps:
        outcome = run_exec([busybox, *args], tmp_path)
        assert (outcome.status, outcome.stdout, outcome.stderr) == (0, stdout, b""), args
    assert list(tmp_path.iterdir()) == []


def test_unknown_syscall_returns_enosys(programs: dict[str, Path]) -> None:
    outcome = run_exec([str(programs["enosys"])], options=["--stats"])
    assert outcome.status == 38  # ENOSYS
    assert b"not implemented (returned -ENOSYS): syscall_400 x1" in outcome.stderr


def test_bad_pointers_give_efault(programs: dict[str, Path]) -> None:
    native = run_native([str(programs["efault"])])
    assert native.status == 0, f"natively, step {native.status} did not return -EFAULT"
    outcome = run_exec([str(programs["efault"])])
    assert outcome.status == 0, f"step {outcome.status} did not return -EFAULT"
    assert outcome.stdout == b""


def test_fault_ends_the_program_like_a_signal(programs: dict[str, Path]) -> None:
    outcome = run_exec([str(programs["segv"])])
    assert outcome.status == 128 + 11
    assert outcome.stderr.startswith(b"Segmentation fault (#PF at rip 0x")
    assert b"address 0x0" in outcome.stderr


def test_dynamic_executable_is_refused() -> None:
    target = Path("/bin/true").resolve()
    outcome = run_exec([str(target)])
    assert outcome.status == 126
    assert b"dynamically linked" in outcome.stderr
    assert b"static executables only" in outcome.stderr


def test_trace_prints_strace_like_lines(busybox: str) -> None:
    outcome = run_exec([busybox, "echo", "hi"], options=["--trace-syscalls"])
    assert outcome.status == 0
    assert outcome.stdout == b"hi\n"
    lines = outcome.stderr.decode().splitlines()
    assert "write(1, " in "\n".join(lines)
    assert lines[-1] == "exit_group(0) = ?"


def test_python_api(busybox: str, workdir: Path) -> None:
    from kvm_x86.se import Process

    trace = io.StringIO()
    with Process([busybox, "true"], cwd=workdir, trace=trace) as process:
        assert process.run() == 0
        stats = process.statistics()
    assert stats["syscalls"]["exit_group"]["count"] == 1
    assert stats["total_syscalls"] == sum(row["count"] for row in stats["syscalls"].values())
    assert "exit_group(0) = ?" in trace.getvalue()


def test_python_api_unknown_syscalls_are_counted(programs: dict[str, Path]) -> None:
    from kvm_x86.se import Process

    with Process([str(programs["enosys"])]) as process:
        assert process.run() == 38
        assert process.unknown_syscalls == {400: 1}
        assert process.statistics()["unknown_syscalls"] == {"syscall_400": 1}


@pytest.mark.parametrize("name", ["openat_big_mode", "fstatat_empty_path"])
def test_register_values_are_taken_as_linux_takes_them(
    programs: dict[str, Path], tmp_path: Path, name: str
) -> None:
    """A mode with high bits and AT_FDCWD passed as a 64-bit -100 work as on Linux
    (the first used to raise OverflowError in the host, the second gave EBADF)."""
    native_dir, exec_dir = tmp_path / "native", tmp_path / "exec"
    native_dir.mkdir()
    exec_dir.mkdir()
    native = run_native([str(programs[name])], cwd=native_dir)
    emulated = run_exec([str(programs[name])], cwd=exec_dir)
    assert native.status == 0
    assert (emulated.status, emulated.stdout, emulated.stderr) == (0, b"", b"")
    created = sorted(p.name for p in exec_dir.iterdir())
    assert created == sorted(p.name for p in native_dir.iterdir())


def test_static_pie_is_loaded(programs: dict[str, Path]) -> None:
    path = programs["hello_pie"]
    assert path.read_bytes()[16] == 3  # e_type ET_DYN
    native = run_native([str(path)])
    emulated = run_exec([str(path)])
    assert (emulated.status, emulated.stdout, emulated.stderr) == (0, b"static pie\n", b"")
    assert (native.status, native.stdout) == (0, b"static pie\n")


def test_at_hwcap_is_the_guests_cpuid_leaf_1_edx(programs: dict[str, Path]) -> None:
    # SSE and SSE2, which every x86-64 CPU (and KVM's CPUID for it) has
    assert run_native([str(programs["hwcap"])]).status == 3
    assert run_exec([str(programs["hwcap"])]).status == 3


@pytest.mark.parametrize(
    ("name", "status"),
    [
        # grow with MREMAP_MAYMOVE (moves, data kept), shrink and grow in place
        ("mremap", 0),
        # an unmapped page is gone at once (KVM's shadow of the page tables is
        # dropped when the host edits them; it used to read back 42)
        ("use_after_munmap", 139),
        # PROT_NONE: EFAULT for the host, SIGSEGV for the program, RW in between
        ("prot_none", 139),
    ],
)
def test_memory_mappings_change_as_on_linux(
    programs: dict[str, Path], name: str, status: int
) -> None:
    native = subprocess.run([str(programs[name])], capture_output=True)
    native_status = 128 - native.returncode if native.returncode < 0 else native.returncode
    emulated = run_exec([str(programs[name])])
    assert native_status == status
    assert emulated.status == status


def test_statx_reports_the_basic_stats(programs: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_bytes(b"x" * 5000)
    os.utime(data, ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    native = run_native([str(programs["statx_file"])], cwd=tmp_path)
    emulated = run_exec([str(programs["statx_file"])], cwd=tmp_path)
    assert (native.status, emulated.status) == (0, 0)
    layout = struct.Struct("<IIQIIIH2xQQQQ" + "qI4x" * 4 + "IIII")
    fields = ("mask", "blksize", "attributes", "nlink", "uid", "gid", "mode", "ino", "size",
              "blocks", "attributes_mask", "atime", "atime_ns", "btime", "btime_ns", "ctime",
              "ctime_ns", "mtime", "mtime_ns", "rdev_major", "rdev_minor", "dev_major",
              "dev_minor")
    ours = dict(zip(fields, layout.unpack(emulated.stdout), strict=True))
    theirs = dict(zip(fields, layout.unpack(native.stdout), strict=True))
    assert ours["mask"] == 0x7FF and theirs["mask"] & 0x7FF == 0x7FF
    for name in ("nlink", "uid", "gid", "mode", "ino", "size", "blocks", "mtime", "mtime_ns",
                 "ctime", "ctime_ns", "dev_major", "dev_minor", "rdev_major", "rdev_minor"):
        assert ours[name] == theirs[name], name
    assert (ours["size"], ours["mtime"], ours["mtime_ns"]) == (5000, 1_500_000_000, 987_654_321)
