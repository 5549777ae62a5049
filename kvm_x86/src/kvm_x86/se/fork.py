"""fork, vfork and clone (without threads): a guest process per host process.

The host process forks (``os.fork``): guest RAM, a private anonymous
mapping, is copied on write, and so are the fd table and the rest of the
Python side.  A KVM VM belongs to the address space that made it, so the
child builds a VM and vCPU of its own, copies the RAM in use into it, loads
the parent's vCPU state as it was at the system call (in the kernel stub,
about to return to user mode) with RAX = 0, closes the parent's KVM fds and
runs.  The child never returns into the parent's run loop: it ends with
``os._exit`` (or dies of the guest's fatal signal, so the guest parent's
``wait4`` sees it).  The parent gets the child's host pid.

``vfork`` and ``CLONE_VFORK`` are served as fork: the parent is not
suspended until the child execs or exits (a program can tell only by
writing the parent's memory from the child, which POSIX forbids).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import struct
import sys
import traceback
from typing import TYPE_CHECKING, Final

from kvm_x86.cpu import X86KvmCPU
from kvm_x86.se import kernel
from kvm_x86.se.names import NUMBERS

if TYPE_CHECKING:
    from kvm_x86.se.process import Process

CSIGNAL: Final = 0xFF
CLONE_VM: Final = 0x100
CLONE_FS: Final = 0x200
CLONE_FILES: Final = 0x400
CLONE_SIGHAND: Final = 0x800
CLONE_VFORK: Final = 0x4000
CLONE_THREAD: Final = 0x10000
CLONE_SETTLS: Final = 0x80000
CLONE_PARENT_SETTID: Final = 0x100000
CLONE_CHILD_CLEARTID: Final = 0x200000
CLONE_CHILD_SETTID: Final = 0x1000000
#: flags that need a shared address space or fd table: not emulated
UNSUPPORTED: Final = CLONE_THREAD | CLONE_SIGHAND | CLONE_FILES | CLONE_FS
SIGCHLD: Final = 17
_U32 = struct.Struct("<I")
_RSP_IN_FRAME: Final = kernel.FRAME + 24


def install(process: Process) -> None:
    """Serve fork, vfork and clone in ``process``'s table."""
    table = process.table

    def sys_fork(*_: int) -> int:
        return fork(process, SIGCHLD, 0, 0, 0, 0)

    def sys_clone(flags: int, stack: int, parent_tid: int, child_tid: int, tls: int,
                  *_: int) -> int:
        return fork(process, flags, stack, parent_tid, child_tid, tls)

    table[NUMBERS["fork"]] = sys_fork
    table[NUMBERS["vfork"]] = sys_fork
    table[NUMBERS["clone"]] = sys_clone


def fork(process: Process, flags: int, stack: int, parent_tid: int, child_tid: int,
         tls: int) -> int:
    """Fork ``process``: the child's pid in the parent; the child runs to
    its end inside this call and never returns."""
    if flags & UNSUPPORTED and not flags & CLONE_VFORK:
        return -errno.ENOSYS  # threads
    if flags & CLONE_VM and not flags & CLONE_VFORK:
        return -errno.ENOSYS
    state = process.cpu.get_context().save_state()
    for stream in (sys.stdout, sys.stderr, process.trace):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    pid = os.fork()
    if pid:
        if flags & CLONE_PARENT_SETTID:
            process.space.write(parent_tid, _U32.pack(pid))
        return pid
    status = 127
    try:
        become_child(process, state)
        me = os.getpid()
        space = process.space
        if flags & CLONE_CHILD_SETTID:
            space.write(child_tid, _U32.pack(me))
        if flags & CLONE_PARENT_SETTID:
            space.write(parent_tid, _U32.pack(me))
        if flags & CLONE_CHILD_CLEARTID:
            process.syscalls.tid_address = child_tid
        if stack:
            struct.pack_into("<Q", process.view, _RSP_IN_FRAME, stack)
        if flags & CLONE_SETTLS:
            process._set_fs_base(tls)
        status = process.run()
    except BaseException:  # the child must not return to the parent's loop
        traceback.print_exc()
    finally:
        exit_child(process, status)
    raise AssertionError("unreachable")  # pragma: no cover


def become_child(process: Process, state: dict[str, object]) -> None:
    """In the forked host process: a VM of our own over a copy of the RAM
    in use, the vCPU state of the parent, the parent's KVM fds closed."""
    old = process.machine
    machine = process.new_machine()
    used = process.space.frames.next - old.ram.base
    machine.ram.view[:used] = old.ram.view[:used]
    struct.pack_into("<Q", machine.ram.view, kernel.MAILBOX_RESULT - machine.ram.base, 0)
    process.space.rebind(machine.ram)
    cpu = machine.cpu
    assert isinstance(cpu, X86KvmCPU)
    cpu.thread.load_state(dict(state))
    cpu.thread.mark_dirty()
    try:
        old.close()
    except BufferError:  # a view of the old RAM is still held: keep the mapping
        old.vm.close()
    process._attach(machine)


def exit_child(process: Process, status: int) -> None:
    """End a forked child as the guest process ended: its exit status, or
    death by its fatal signal (no core file)."""
    for stream in (sys.stdout, sys.stderr, process.trace):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    signo = process.killed_by
    if signo is not None:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            signal.signal(signo, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signo})
            os.kill(os.getpid(), signo)
    os._exit(status & 0xFF)
