"""``Process``: one static x86-64 Linux program run under KVM, its user code
at CPL3 natively and its system calls served in Python.

How a system call reaches the host: the program's ``syscall`` instruction
either raises #UD (EFER.SCE is 0; what a VMX or SVM host does) or, on a PVM
host, which ignores SCE and jumps to MSR_LSTAR staying at CPL3, jumps to
:data:`SYSCALL_TRAP`, a supervisor page, and faults there (#PF).  Either
way the CPU enters the CPL0 stub of that vector (:mod:`kvm_x86.se.kernel`),
which exits to the host with ``out``.  The host reads the argument
registers from ``kvm_run`` (``KVM_CAP_SYNC_REGS``: no ioctl) and the
exception frame from guest RAM, serves the call, writes the result to the
mailbox and the return address into the frame; the stub loads RAX and
returns with ``iretq``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import struct
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from kvm_x86.cpu import X86KvmCPU
from kvm_x86.parts.cpuid import Cpuid
from kvm_x86.parts.fpu import legacy_state, pack_legacy
from kvm_x86.parts.msrs import Msrs
from kvm_x86.parts.registers import GeneralRegisters
from kvm_x86.se import execve, fork, kernel, signals
from kvm_x86.se.address_space import AddressSpace, FrameAllocator
from kvm_x86.se.elf import ElfError, load_elf
from kvm_x86.se.names import NUMBERS, syscall_name
from kvm_x86.se.signals import SI_USER, SIG_DFL, SIG_IGN, SIGPIPE, SignalInfo, UserRegisters
from kvm_x86.se.stack import build_initial_stack
from kvm_x86.se.syscalls import MAX_ERRNO, ProcessExit, Syscalls
from kvm_x86.thread_context import FpuState, X86ThreadContext
from kvmbase import abi
from kvmbase.cpu import BaseKvmCPU
from kvmbase.machine import Machine

#: where LSTAR points: a supervisor page, so a PVM host's ``syscall`` faults there
SYSCALL_TRAP: Final = kernel.KERNEL_BASE + kernel.CODE + 0x800
MSR_STAR: Final = 0xC0000081
MSR_LSTAR: Final = 0xC0000082
MSR_SFMASK: Final = 0xC0000084
DEFAULT_RAM: Final = 1 << 30
KVM_SYNC_X86_REGS: Final = 1

_SIGNALS: Final = {
    kernel.VECTOR_DE: (8, "Floating point exception"),
    kernel.VECTOR_DB: (5, "Trace/breakpoint trap"),
    kernel.VECTOR_BP: (5, "Trace/breakpoint trap"),
    kernel.VECTOR_UD: (4, "Illegal instruction"),
    kernel.VECTOR_MF: (8, "Floating point exception"),
    kernel.VECTOR_AC: (7, "Bus error"),
    kernel.VECTOR_XM: (8, "Floating point exception"),
}
_SEGV: Final = (11, "Segmentation fault")
_VECTOR_NAMES: Final = {0: "#DE", 1: "#DB", 3: "#BP", 6: "#UD", 7: "#NM", 13: "#GP", 14: "#PF",
                        16: "#MF", 17: "#AC", 19: "#XM"}

_PORT = struct.Struct("<H")
_REGS = struct.Struct("<18Q")  # struct kvm_regs: rax rbx rcx rdx rsi rdi rsp rbp r8-r15 rip rflags
_FRAME = struct.Struct("<6Q")  # error code, rip, cs, rflags, rsp, ss
_RETURN = struct.Struct("<Q")
_RETURN_WITH_FLAGS = struct.Struct("<QQQ")  # rip, cs, rflags
_RESULT = struct.Struct("<Q")
_IRET = struct.Struct("<5Q")  # rip, cs, rflags, rsp, ss
_MASK64: Final = (1 << 64) - 1


@dataclass(frozen=True)
class Fault:
    """A CPU exception that ended the program, as the signal Linux would send."""

    vector: int
    signal: int
    message: str
    rip: int
    error_code: int
    address: int | None

    def describe(self) -> str:
        where = f"{_VECTOR_NAMES.get(self.vector, f'vector {self.vector}')} at rip {self.rip:#x}"
        if self.address is not None:
            where += f", address {self.address:#x}"
        return f"{self.message} ({where})"


@dataclass
class SyscallStat:
    count: int = 0
    host_ns: int = 0


def find_program(name: str, env: Mapping[str, str]) -> str:
    """The file ``name`` names: a path as is, a bare name searched in PATH."""
    if "/" in name:
        return os.path.abspath(name)
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, f"{name}: command not found")
    return os.path.abspath(found)


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Keep a logger's warnings (MSRs this host lacks) off the program's stderr."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


#: the stop cause of a host signal for the guest
_SIGNAL_STOP: Final = "host signal for the guest"


def guest_hwcap(cpu: X86KvmCPU) -> int:
    """AT_HWCAP as Linux gives it on x86-64: the guest's CPUID leaf 1 EDX."""
    cpuid = cpu.part("cpuid")
    leaf = cpuid.table_for(cpu.thread).get(1) if isinstance(cpuid, Cpuid) else None
    return leaf.edx if leaf is not None else 0


class Process:
    """A static x86-64 Linux executable in a machine of its own.

    >>> with Process(["/bin/busybox", "echo", "hi"]) as process:
    ...     status = process.run()
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        *,
        trace: TextIO | None = None,
        ram_size: int = DEFAULT_RAM,
        machine_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not argv:
            raise ValueError("argv is empty: give at least the program")
        self.argv = list(argv)
        self.env = dict(os.environ if env is None else env)
        self.cwd = os.fspath(cwd) if cwd is not None else os.getcwd()
        self.path = find_program(self.argv[0], self.env)
        data = Path(self.path).read_bytes()
        self.trace = trace
        #: exit status once the program ended (128 + signal after a fault)
        self.status: int | None = None
        self.fault: Fault | None = None
        self.stats: dict[int, SyscallStat] = {}
        #: system calls not served (they returned -ENOSYS), by number
        self.unknown_syscalls: Counter[int] = Counter()
        self.syscall_count = 0
        self.host_seconds = 0.0
        self.ram_size = ram_size
        self.machine_kwargs = dict(machine_kwargs or {})
        #: the signal that ended the program (a fault's or another's)
        self.killed_by: int | None = None
        self.machine = self.new_machine()
        try:
            self._set_up(data)
        except BaseException:
            self.machine.close()
            raise

    def _set_up(self, data: bytes) -> None:
        machine = self.machine
        ram = machine.ram
        self.view = ram.view
        kernel.write_kernel(ram)
        self.space = AddressSpace(ram, FrameAllocator(ram, kernel.FIRST_FREE_FRAME), kernel.PML4)
        program = load_elf(self.space, data, self.path)
        ids = (os.getuid(), os.geteuid(), os.getgid(), os.getegid())
        cpu = machine.cpu
        assert isinstance(cpu, X86KvmCPU)
        tc = cpu.thread
        assert isinstance(tc, X86ThreadContext)
        #: AT_HWCAP, kept for execve
        self.hwcap = guest_hwcap(cpu)
        rsp = build_initial_stack(
            self.space, program, self.argv, self.env,
            execfn=self.argv[0], hwcap=self.hwcap, ids=ids,
        )
        kernel.set_user_state(tc, entry=program.entry, stack_pointer=rsp)
        tc.parts["msrs"] = {f"{MSR_STAR:#x}": 0, f"{MSR_LSTAR:#x}": SYSCALL_TRAP,
                            f"{MSR_SFMASK:#x}": 0}
        tc.mark_dirty()
        self.syscalls = Syscalls(
            self.space,
            brk=program.brk,
            exe_path=self.path,
            cwd=self.cwd,
            set_fs_base=self._set_fs_base,
            get_fs_base=self._get_fs_base,
        )
        self.signals = self.syscalls.signals
        self.table = self.syscalls.table
        fork.install(self)
        execve.install(self)
        self._install_signal_calls()
        self._attach(machine)

    def _attach(self, machine: Machine) -> None:
        """Start ``machine``'s vCPU (its thread context set already) and
        serve its exits."""
        self.machine = machine
        self.view = machine.ram.view
        cpu = machine.cpu
        assert isinstance(cpu, X86KvmCPU)
        self.cpu = cpu
        cpu.set_exit_handler(abi.KVM_EXIT_IO, self._on_io_exit)
        with _quiet("kvm_x86.parts.msrs"):
            machine.system.startup()
            msrs = cpu.part("msrs")
            if isinstance(msrs, Msrs):
                msrs.resolve()  # now, while its warnings are kept quiet
        kvm = machine.vm.kvm
        self._run_buffer = cpu._run_buffer
        self._regs_offset = abi.ffi.offsetof("struct kvm_run", "s")
        self._port_offset = cpu.exit_data_offset + 2
        self._sync_regs = bool(kvm.check_extension(abi.KVM_CAP_SYNC_REGS) & KVM_SYNC_X86_REGS)
        if self._sync_regs:
            offset = abi.ffi.offsetof("struct kvm_run", "kvm_valid_regs")
            struct.pack_into("<Q", self._run_buffer, offset, KVM_SYNC_X86_REGS)

    def new_machine(self) -> Machine:
        """A machine like this process's (its own VM, vCPU and RAM), not started."""
        return Machine.from_data(
            {"arch": "x86", "vm": {"ram_size": self.ram_size}, "x86": {"pci": {"enabled": False}}},
            **dict(self.machine_kwargs),
        )

    # -- FS base (arch_prctl) -------------------------------------------
    def _set_fs_base(self, value: int) -> None:
        tc = self.cpu.get_context()
        assert isinstance(tc, X86ThreadContext)
        tc.segments["fs"].base = value
        tc.mark_dirty()

    def _get_fs_base(self) -> int:
        tc = self.cpu.get_context()
        assert isinstance(tc, X86ThreadContext)
        return tc.segments["fs"].base

    # -- running --------------------------------------------------------
    def run(self) -> int:
        """Run the program to its end; return its exit status."""
        started = time.perf_counter()
        self.signals.on_host_signal = self._stop_for_signal
        self.signals.forward_host_signals()
        try:
            with _quiet("kvm_x86.parts.msrs"):
                while True:
                    result = self.machine.run()
                    if self.status is not None or result.cause != _SIGNAL_STOP:
                        break
                    # A host signal stopped the run. In user mode it is
                    # delivered here; one that came during a system call was
                    # delivered on its way out, or waits for the next one.
                    if self.signals.pending and self._in_user_mode():
                        self._deliver_signals(self._user_registers(in_stub=False),
                                              in_stub=False)
                        if self.status is not None:
                            break
        finally:
            self.host_seconds = time.perf_counter() - started
        if self.status is None:
            raise RuntimeError(f"the program stopped without exiting: {result.cause}")
        return self.status

    def _stop_for_signal(self) -> None:
        self.machine.stop(_SIGNAL_STOP, 0)

    def _in_user_mode(self) -> bool:
        tc = self.cpu.get_context()
        assert isinstance(tc, X86ThreadContext)
        return tc.segments["cs"].selector & 3 == 3

    def _regs(self) -> tuple[int, ...]:
        if self._sync_regs:
            return _REGS.unpack_from(self._run_buffer, self._regs_offset)
        part = self.cpu.part("regs")
        assert isinstance(part, GeneralRegisters)
        buffer = part.fetch()
        return _REGS.unpack(bytes(abi.ffi.buffer(buffer)))

    def _on_io_exit(self, cpu: BaseKvmCPU) -> int:
        vector = _PORT.unpack_from(self._run_buffer, self._port_offset)[0]
        view = self.view
        if vector == kernel.VECTOR_PF:
            frame = _FRAME.unpack_from(view, kernel.FRAME_ERROR_CODE)
            if frame[1] == SYSCALL_TRAP:
                regs = self._regs()
                # Back to the instruction after ``syscall`` (RCX) with the
                # flags it had (R11), as SYSRET would.
                _RETURN_WITH_FLAGS.pack_into(view, kernel.FRAME, regs[2], frame[2], regs[11])
                return self._serve(regs)
            return self._end_with_fault(vector, frame[1], frame[0])
        frame = _FRAME.unpack_from(view, kernel.FRAME_ERROR_CODE)
        if vector == kernel.VECTOR_UD:
            rip = _RETURN.unpack_from(view, kernel.FRAME)[0]
            if self.space.read(rip, 2) == b"\x0f\x05":
                _RETURN.pack_into(view, kernel.FRAME, rip + 2)
                return self._serve(self._regs())
            return self._end_with_fault(vector, rip, 0)
        if vector in kernel._ERROR_CODE_VECTORS:
            return self._end_with_fault(vector, frame[1], frame[0])
        return self._end_with_fault(vector, _RETURN.unpack_from(view, kernel.FRAME)[0], 0)

    def _serve(self, regs: tuple[int, ...]) -> int:
        number = regs[0]
        function = self.table[number] if number < 512 else None
        self.syscall_count += 1
        started = time.perf_counter_ns()
        try:
            if function is None:
                self.unknown_syscalls[number] += 1
                result = -errno.ENOSYS
            else:
                result = function(regs[5], regs[4], regs[3], regs[10], regs[8], regs[9])
        except ProcessExit as exit_:
            self._record(number, started)
            if self.trace is not None:
                self._trace(number, regs, None)
            self.status = exit_.status
            self.machine.system.exit_simulation("program exited", exit_.status)
            return 0
        except OSError as exc:
            result = -(exc.errno or errno.EIO)
            if result == -errno.EPIPE:
                sender = os.getpid() | os.getuid() << 32
                self.signals.raise_signal(SignalInfo(SIGPIPE, SI_USER, sender))
        except (OverflowError, ValueError):
            # A register value the host call cannot take (a 64-bit mode, a
            # NUL in a path): the guest gets EINVAL, the host never a traceback.
            result = -errno.EINVAL
        self._record(number, started)
        if self.trace is not None:
            self._trace(number, regs, result)
        space = self.space
        if space.tlb_flush_needed:
            space.tlb_flush_needed = False
            self.view[kernel.MAILBOX_FLAGS] = kernel.FLAG_FLUSH_TLB
            # This host's KVM shadows the guest's page tables and does not see
            # the host edit them: without this, an unmapped page stays
            # reachable and a remapped one shows its old frame.
            self.machine.vm.forget_guest_translations()
        _RESULT.pack_into(self.view, kernel.MAILBOX_RESULT, result & _MASK64)
        signals = self.signals
        if signals.pending and self.status is None:
            registers = self._user_registers(in_stub=True, rax=result)
            self._deliver_signals(registers, in_stub=True)
        if signals.suspended_mask is not None:  # rt_sigsuspend, no frame took it
            signals.mask, signals.suspended_mask = signals.suspended_mask, None
        return 0

    def _record(self, number: int, started: int) -> None:
        stat = self.stats.get(number)
        if stat is None:
            stat = self.stats[number] = SyscallStat()
        stat.count += 1
        stat.host_ns += time.perf_counter_ns() - started

    def _trace(self, number: int, regs: tuple[int, ...], result: int | None) -> None:
        assert self.trace is not None
        function = self.table[number] if number < 512 else None
        arity = 6
        if function is not None:
            bound = getattr(function, "__self__", None) is not None
            arity = function.__code__.co_argcount - bound
        args = (regs[5], regs[4], regs[3], regs[10], regs[8], regs[9])[:arity]
        shown = ", ".join(str(a) if a < 4096 else hex(a) for a in args)
        if result is None:
            text = "?"
        elif -MAX_ERRNO <= result < 0:
            code = -result
            text = f"-1 {errno.errorcode.get(code, str(code))} ({os.strerror(code)})"
        else:
            text = str(result) if result < 4096 else hex(result)
        print(f"{syscall_name(number)}({shown}) = {text}", file=self.trace, flush=True)

    def _end_with_fault(self, vector: int, rip: int, error_code: int) -> int:
        signal, message = _SIGNALS.get(vector, _SEGV)
        address = None
        if vector == kernel.VECTOR_PF:
            address = self.cpu.get_context().regs["cr2"]
        handler = self.signals.action(signal)[0]
        blocked = self.signals.mask >> (signal - 1) & 1
        if handler > SIG_IGN and not blocked:
            # A handler: deliver there (Linux's force_sig_fault).
            code = 2 if error_code & 1 and vector == kernel.VECTOR_PF else 1
            fault_address = address if address is not None else rip
            self.signals.raise_signal(SignalInfo(signal, code, fault_address))
            registers = self._user_registers(in_stub=True)
            trap = signals.Fault(vector, error_code, address or 0)
            _RESULT.pack_into(self.view, kernel.MAILBOX_RESULT, registers.gprs["rax"])
            self._deliver_signals(registers, in_stub=True, fault=trap)
            return 0
        self.fault = Fault(vector, signal, message, rip, error_code, address)
        self._die(signal)
        return 0

    def _die(self, signal: int) -> None:
        self.killed_by = signal
        self.status = 128 + signal
        self.machine.system.exit_simulation("program killed by a signal", self.status)

    def _die_with_status(self, status: int) -> None:
        self.status = status
        self.machine.system.exit_simulation("program ended", status)

    # -- signals --------------------------------------------------------
    def _user_registers(self, *, in_stub: bool, rax: int | None = None) -> UserRegisters:
        """The user-mode registers: from the exception frame and the GPRs
        when the vCPU is in the kernel stub, else straight from the vCPU."""
        tc = self.cpu.get_context()
        assert isinstance(tc, X86ThreadContext)
        regs = tc.regs
        gprs = {name: regs[name] for name in signals.SIGCONTEXT_GPRS}
        if not in_stub:
            return UserRegisters(gprs, regs["rip"], regs["rflags"])
        rip, _cs, rflags, rsp, _ss = _IRET.unpack_from(self.view, kernel.FRAME)
        gprs["rsp"] = rsp
        if rax is not None:
            gprs["rax"] = rax & _MASK64
        return UserRegisters(gprs, rip, rflags)

    def return_to_user(self, registers: UserRegisters, *, in_stub: bool = True,
                       fs_base: int | None = None) -> None:
        """Have the vCPU go on in user mode with ``registers`` (the stub's
        ``iretq`` does it; RAX comes from the mailbox)."""
        tc = self.cpu.get_context()
        assert isinstance(tc, X86ThreadContext)
        gprs = registers.gprs
        for name in signals.SIGCONTEXT_GPRS:
            if name != "rsp":
                tc.regs[name] = gprs[name] & _MASK64
        if fs_base is not None:
            tc.segments["fs"].base = fs_base
        if in_stub:
            _IRET.pack_into(self.view, kernel.FRAME, registers.rip, kernel.USER_CS,
                            registers.rflags, gprs["rsp"] & _MASK64, kernel.USER_DS)
            _RESULT.pack_into(self.view, kernel.MAILBOX_RESULT, gprs["rax"] & _MASK64)
        else:
            tc.regs.update(rip=registers.rip, rflags=registers.rflags,
                           rsp=gprs["rsp"] & _MASK64)
        tc.mark_dirty()

    def _deliver_signals(self, registers: UserRegisters, *, in_stub: bool,
                         fault: signals.Fault | None = None) -> None:
        changed = False
        while (info := self.signals.next_deliverable()) is not None:
            handler = self.signals.action(info.signo)[0]
            if handler == SIG_IGN:
                continue
            if handler == SIG_DFL:
                if info.signo in signals.IGNORED_BY_DEFAULT:
                    continue
                self._die(info.signo)
                return
            tc = self.cpu.get_context()
            assert isinstance(tc, X86ThreadContext)
            image = bytearray(signals.FPSTATE_SIZE)
            pack_legacy(image, tc.fpu)
            entered = signals.build_frame(self.space, self.signals, info, registers,
                                          fault or signals.Fault(), bytes(image))
            # As Linux, the handler starts with a clean x87/SSE state.
            tc.fpu = FpuState()
            if entered is None:
                self._die(signals.SIGSEGV)
                return
            registers, changed, fault = entered, True, None
        if changed:
            self.return_to_user(registers, in_stub=in_stub)

    def _install_signal_calls(self) -> None:
        self.table[NUMBERS["rt_sigreturn"]] = self._sys_rt_sigreturn

    def _sys_rt_sigreturn(self, *_: int) -> int:
        current = self._user_registers(in_stub=True)
        restored = signals.restore_frame(self.space, self.signals, current.gprs["rsp"],
                                         current.rflags)
        if restored is not None and restored.fpstate:
            image = self.space.read(restored.fpstate, signals.FPSTATE_SIZE)
            if image is None:
                restored = None
            else:
                tc = self.cpu.get_context()
                assert isinstance(tc, X86ThreadContext)
                tc.fpu = legacy_state(image)
        if restored is None:
            self._die(signals.SIGSEGV)
            return 0
        self.return_to_user(restored)
        return restored.gprs["rax"]

    # -- statistics -----------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        """System calls by name (count, host seconds), the unknown ones, totals."""
        calls = {
            syscall_name(number): {"count": stat.count, "host_seconds": stat.host_ns / 1e9}
            for number, stat in sorted(self.stats.items(), key=lambda item: -item[1].count)
        }
        cpu_stats = self.cpu.statistics()
        return {
            "syscalls": calls,
            "unknown_syscalls": {
                syscall_name(number): count for number, count in self.unknown_syscalls.items()
            },
            "total_syscalls": self.syscall_count,
            "host_seconds": self.host_seconds,
            "host_seconds_in_guest": cpu_stats["host_ns_in_guest"] / 1e9,
            "vm_exits": cpu_stats["num_vm_exits"],
            "guest_ram_used": self.space.frames.used_bytes,
        }

    def format_statistics(self) -> str:
        stats = self.statistics()
        lines = [f"{'syscall':<20} {'calls':>10} {'host ms':>10} {'us/call':>9}"]
        for name, row in stats["syscalls"].items():
            per = row["host_seconds"] / row["count"] * 1e6
            lines.append(
                f"{name:<20} {row['count']:>10} {row['host_seconds'] * 1e3:>10.3f} {per:>9.2f}"
            )
        total = stats["total_syscalls"]
        lines.append(f"{total} system calls, {stats['vm_exits']} VM exits, "
                     f"{stats['host_seconds']:.3f} s on the host "
                     f"({stats['host_seconds_in_guest']:.3f} s in KVM_RUN)")
        if total:
            lines.append(f"{stats['host_seconds'] / total * 1e6:.1f} us per system call "
                         "(whole run / calls)")
        if stats["unknown_syscalls"]:
            unknown = ", ".join(f"{name} x{count}"
                                for name, count in stats["unknown_syscalls"].items())
            lines.append(f"not implemented (returned -ENOSYS): {unknown}")
        return "\n".join(lines)

    # -- teardown -------------------------------------------------------
    def close(self) -> None:
        syscalls = getattr(self, "syscalls", None)
        if syscalls is not None:
            syscalls.close()
        self.machine.close()

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def exec_program(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    trace: bool = False,
    *,
    stats: bool = False,
    ram_size: int = DEFAULT_RAM,
) -> int:
    """Run a static x86-64 Linux program under KVM; return its exit status.

    The program uses this process's stdin, stdout and stderr.  A fault ends
    it as Linux would without a handler: a message on stderr and status
    128 + signal.  ``trace`` prints each system call to stderr, ``stats``
    a table of them at the end.
    """
    with Process(argv, env, cwd, trace=sys.stderr if trace else None,
                 ram_size=ram_size) as process:
        status = process.run()
        if process.fault is not None:
            print(process.fault.describe(), file=sys.stderr, flush=True)
        if stats:
            print(process.format_statistics(), file=sys.stderr, flush=True)
        return status


__all__ = ["ElfError", "Fault", "Process", "exec_program", "find_program"]
