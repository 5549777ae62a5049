"""execve: a new program in the same guest process (same host process, same
VM and vCPU).

The user address space starts afresh over the same RAM (the frames past the
kernel's are given back to the host to come back zero), the new static ELF
is loaded with its argv and envp, fds stay open but those marked
close-on-exec, handled signals go back to their default.  A ``#!`` script
runs its interpreter.  A dynamically linked program cannot run here: the
process writes the refusal ``kvmbase exec`` gives to its stderr and ends
with status 126, as the command line does.  A file that is neither ELF
nor script gives ``-ENOEXEC`` (a shell then runs it as a script).
"""

from __future__ import annotations

import errno
import mmap
import os
from typing import TYPE_CHECKING, Final

from kvm_x86.se import kernel
from kvm_x86.se.address_space import AddressSpace, FrameAllocator
from kvm_x86.se.elf import ElfError, load_elf
from kvm_x86.se.names import NUMBERS
from kvm_x86.se.signals import SIGCONTEXT_GPRS, UserRegisters
from kvm_x86.se.stack import build_initial_stack
from kvm_x86.se.syscalls import AT_EMPTY_PATH, AT_FDCWD

if TYPE_CHECKING:
    from kvm_x86.se.process import Process

MAX_ARGS: Final = 1 << 16
_SHEBANG_DEPTH: Final = 4


def install(process: Process) -> None:
    table = process.table

    def sys_execve(path: int, argv: int, envp: int, *_: int) -> int:
        return execve(process, AT_FDCWD, path, argv, envp, 0)

    def sys_execveat(dirfd: int, path: int, argv: int, envp: int, flags: int, *_: int) -> int:
        return execve(process, dirfd, path, argv, envp, flags)

    table[NUMBERS["execve"]] = sys_execve
    table[NUMBERS["execveat"]] = sys_execveat


def _strings(process: Process, address: int) -> list[str] | None:
    """The NULL-terminated array of C strings at ``address``."""
    out: list[str] = []
    space = process.space
    while address:
        pointer = space.read_u64(address + 8 * len(out))
        if pointer is None:
            return None
        if pointer == 0:
            return out
        raw = space.read_cstring(pointer, 1 << 17)
        if raw is None or len(out) >= MAX_ARGS:
            return None
        out.append(os.fsdecode(raw))
    return out


def execve(process: Process, dirfd: int, path: int, argv_at: int, envp_at: int,
           flags: int) -> int:
    syscalls = process.syscalls
    name, host_dir = syscalls._resolve(dirfd, path, empty_ok=bool(flags & AT_EMPTY_PATH))
    if host_dir != AT_FDCWD:
        name = os.path.join(os.readlink(f"/proc/self/fd/{host_dir}"), name)
    argv = _strings(process, argv_at)
    envp = _strings(process, envp_at)
    if argv is None or envp is None:
        return -errno.EFAULT
    data = b""
    for _depth in range(_SHEBANG_DEPTH):
        if os.path.isdir(name):
            return -errno.EACCES
        if not os.access(name, os.X_OK):
            os.stat(name)  # ENOENT and friends first
            return -errno.EACCES
        with open(name, "rb") as file:
            data = file.read()
        if not data.startswith(b"#!"):
            break
        line = data[2:].split(b"\n", 1)[0].strip()
        if not line:
            return -errno.ENOEXEC
        parts = line.split(None, 1)
        script = name
        name = os.fsdecode(parts[0])
        argv = [name, *(os.fsdecode(p) for p in parts[1:]), script, *argv[1:]]
    else:
        return -errno.ELOOP
    if not data.startswith(b"\x7fELF"):
        return -errno.ENOEXEC
    env = dict(item.partition("=")[::2] for item in envp)
    try:
        _replace(process, name, data, argv, env)
    except ElfError as exc:
        if process.status is not None:
            raise
        message = f"kvmbase exec: {exc}\n".encode()
        host = syscalls.fds.get(2)
        if host is not None:
            os.write(host, message)
        process._die_with_status(126)
    return 0


def _replace(process: Process, path: str, data: bytes, argv: list[str],
             env: dict[str, str]) -> None:
    """Load ``data`` (checked first: a refusal leaves the old program intact)."""
    from kvm_x86.se.elf import PT_INTERP, parse_segments

    _type, _entry, _phoff, segments = parse_segments(data, path)
    if any(segment.type == PT_INTERP for segment in segments):
        load_elf(process.space, data, path)  # raises the refusal
    ram = process.machine.ram
    frames = process.space.frames
    start = kernel.FIRST_FREE_FRAME - ram.base
    used = frames.next - ram.base - start
    if used > 0:
        ram.map.madvise(mmap.MADV_DONTNEED, start, used)
    kernel.write_kernel(ram)
    space = AddressSpace(ram, FrameAllocator(ram, kernel.FIRST_FREE_FRAME), kernel.PML4)
    program = load_elf(space, data, path)
    ids = (os.getuid(), os.geteuid(), os.getgid(), os.getegid())
    rsp = build_initial_stack(space, program, argv, env, execfn=argv[0] if argv else path,
                              hwcap=process.hwcap, ids=ids)
    space.tlb_flush_needed = True
    process.space = space
    process.path = path
    process.argv = argv
    process.syscalls.exec_reset(space, brk=program.brk, exe_path=path)
    gprs = dict.fromkeys(SIGCONTEXT_GPRS, 0)
    gprs["rsp"] = rsp
    process.return_to_user(UserRegisters(gprs, program.entry, 0x202), fs_base=0)
