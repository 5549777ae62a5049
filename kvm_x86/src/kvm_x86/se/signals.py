"""Guest signals: dispositions, the blocked mask, pending signals, and the
Linux x86-64 ``rt_sigframe`` a handler runs on.

A signal is made pending (a CPU fault, SIGPIPE from a write, ``kill`` to
itself, a host signal forwarded) and delivered at the next return to user
mode, when not blocked: ignored, the default action (most end the process:
status 128 + signal), or a frame on the user stack and a jump to the
handler.  ``rt_sigreturn`` reads the registers back from the frame.

The frame carries the x87/SSE state as an FXSAVE image (``fpstate``); the
upper halves of the AVX registers are not kept.  Alternate signal stacks
(``sigaltstack``) are not supported.
"""

from __future__ import annotations

import signal as host_signal
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from kvm_x86.se.address_space import AddressSpace

SIG_DFL: Final = 0
SIG_IGN: Final = 1
SA_SIGINFO: Final = 0x4
SA_RESTORER: Final = 0x04000000
SA_NODEFER: Final = 0x40000000
SA_RESETHAND: Final = 0x80000000

SIGINT: Final = 2
SIGKILL: Final = 9
SIGSEGV: Final = 11
SIGPIPE: Final = 13
SIGCHLD: Final = 17
SIGSTOP: Final = 19
#: si_code of a SIGCHLD for a child that exited
CLD_EXITED: Final = 1
SI_USER: Final = 0
SI_KERNEL: Final = 0x80

#: signals whose default action is to do nothing (stop signals included:
#: there is no job control here)
IGNORED_BY_DEFAULT: Final = frozenset({17, 18, 19, 20, 21, 22, 23, 28})
#: signals that cannot be caught, blocked or ignored
UNBLOCKABLE: Final = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))
#: host signals forwarded to the guest (Python's own SIGINT handler is replaced)
FORWARDED: Final = (host_signal.SIGINT, host_signal.SIGTERM, host_signal.SIGHUP,
                    host_signal.SIGQUIT, host_signal.SIGUSR1, host_signal.SIGUSR2,
                    host_signal.SIGALRM)

_SIGACTION = struct.Struct("<QQQQ")  # handler, flags, restorer, mask
#: struct sigcontext (x86-64): r8-r15, rdi rsi rbp rbx rdx rax rcx rsp rip
#: eflags, cs gs fs ss, err trapno oldmask cr2 fpstate, reserved[8]
_SIGCONTEXT = struct.Struct("<18QHHHH5Q64x")
_UC_HEAD = struct.Struct("<QQQi4xQ")  # uc_flags, uc_link, ss_sp, ss_flags, ss_size
_SIGINFO = struct.Struct("<iiii3Q96x")  # signo, errno, code, pad, union words
UCONTEXT_SIZE: Final = _UC_HEAD.size + _SIGCONTEXT.size + 8  # 304
SIGINFO_SIZE: Final = 128
FRAME_SIZE: Final = 8 + UCONTEXT_SIZE + SIGINFO_SIZE
#: the x87/SSE state in a frame: the FXSAVE image, 64-byte aligned, as Linux
#: writes it where XSAVE is not used
FPSTATE_SIZE: Final = 512
#: index of ``fpstate`` in the unpacked sigcontext
_FPSTATE_FIELD: Final = 26
UC_SIGCONTEXT_SS: Final = 2
UC_STRICT_RESTORE_SS: Final = 4
SS_DISABLE: Final = 2
#: RFLAGS bits a handler's sigreturn may change (Linux's FIX_EFLAGS)
FIX_EFLAGS: Final = 0x40DD5
_MASK64: Final = (1 << 64) - 1

#: user register names in ``struct sigcontext`` order (before rip/eflags)
SIGCONTEXT_GPRS: Final = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
                          "rdi", "rsi", "rbp", "rbx", "rdx", "rax", "rcx", "rsp")


@dataclass(frozen=True)
class SignalInfo:
    """What ``siginfo_t`` says: the code and the union's first words."""

    signo: int
    code: int = SI_USER
    #: si_addr for faults; for SI_USER si_pid | si_uid << 32
    value: int = 0


@dataclass(frozen=True)
class UserRegisters:
    """A user-mode register set: GPRs by name, rip, rflags."""

    gprs: dict[str, int]
    rip: int
    rflags: int
    #: where a signal frame keeps the x87/SSE state (sigcontext.fpstate), 0 if none
    fpstate: int = 0


@dataclass(frozen=True)
class Fault:
    """Trap details a fault's sigcontext carries."""

    trapno: int = 0
    error_code: int = 0
    cr2: int = 0


class Signals:
    """A process's signal state.  Host signals in :data:`FORWARDED` are made
    pending here (``on_host_signal`` is told, to stop the vCPU)."""

    def __init__(self) -> None:
        self.actions: dict[int, bytes] = {}
        self.mask = 0
        #: pending signals, bit ``signo - 1``
        self.pending = 0
        self.infos: dict[int, SignalInfo] = {}
        self.on_host_signal: Callable[[], None] | None = None
        #: set when a host signal arrives for the guest: ends a sleep early
        self.wakeup = threading.Event()
        #: the mask rt_sigsuspend replaced: the next frame saves it (so
        #: rt_sigreturn puts it back), or it is restored at once
        self.suspended_mask: int | None = None

    # -- dispositions ---------------------------------------------------
    def action(self, signo: int) -> tuple[int, int, int, int]:
        """``(handler, flags, restorer, mask)`` of ``signo``."""
        raw = self.actions.get(signo)
        if raw is None:
            return (SIG_DFL, 0, 0, 0)
        handler, flags, restorer, mask = _SIGACTION.unpack(raw)
        return handler, flags, restorer, mask

    def set_action(self, signo: int, raw: bytes) -> None:
        self.actions[signo] = raw
        if signo in FORWARDED:
            handler = _SIGACTION.unpack(raw)[0]
            host_signal.signal(signo, host_signal.SIG_IGN if handler == SIG_IGN
                               else self._forward)

    def forward_host_signals(self) -> None:
        """Have the forwarded host signals reach the guest (the current
        dispositions decide what they do there)."""
        for signo in FORWARDED:
            handler = self.action(signo)[0]
            host_signal.signal(signo, host_signal.SIG_IGN if handler == SIG_IGN
                               else self._forward)

    def _forward(self, signo: int, _frame: object) -> None:
        self.raise_signal(SignalInfo(signo))
        self.wakeup.set()
        if self.on_host_signal is not None:
            self.on_host_signal()

    def reset_on_exec(self) -> None:
        """execve: handlers go back to the default, ignored stays ignored."""
        for signo in list(self.actions):
            if _SIGACTION.unpack(self.actions[signo])[0] != SIG_IGN:
                del self.actions[signo]

    # -- pending --------------------------------------------------------
    def raise_signal(self, info: SignalInfo) -> None:
        bit = 1 << (info.signo - 1)
        if self.action(info.signo)[0] == SIG_IGN and not bit & UNBLOCKABLE:
            return
        self.pending |= bit
        self.infos.setdefault(info.signo, info)

    def next_deliverable(self) -> SignalInfo | None:
        """Take the lowest pending signal that is not blocked, if any."""
        ready = self.pending & ~(self.mask & ~UNBLOCKABLE)
        if not ready:
            return None
        signo = (ready & -ready).bit_length()
        self.pending &= ~(1 << (signo - 1))
        return self.infos.pop(signo, SignalInfo(signo))


def build_frame(
    space: AddressSpace,
    signals: Signals,
    info: SignalInfo,
    regs: UserRegisters,
    fault: Fault,
    fpstate: bytes = b"",
) -> UserRegisters | None:
    """Write an ``rt_sigframe`` below the user stack for ``info`` and return
    the registers that enter the handler; ``None`` if the frame cannot be
    written (the process then dies of SIGSEGV, as on Linux). ``fpstate``, the
    interrupted code's FXSAVE image, goes below the red zone first."""
    handler, flags, restorer, action_mask = signals.action(info.signo)
    if not flags & SA_RESTORER:
        return None
    sp = regs.gprs["rsp"] - 128  # the red zone
    fpstate_address = 0
    if fpstate:
        fpstate_address = sp = (sp - FPSTATE_SIZE) & ~0x3F
        if not space.write(fpstate_address, fpstate):
            return None
    frame = ((sp - FRAME_SIZE) & ~0xF) - 8
    uc = frame + 8
    siginfo = uc + UCONTEXT_SIZE
    gprs = regs.gprs
    saved_mask = signals.mask if signals.suspended_mask is None else signals.suspended_mask
    context = _SIGCONTEXT.pack(
        *(gprs[name] & _MASK64 for name in SIGCONTEXT_GPRS),
        regs.rip, regs.rflags, 0x2B, 0, 0, 0x23,
        fault.error_code, fault.trapno, saved_mask, fault.cr2, fpstate_address,
    )
    data = (
        struct.pack("<Q", restorer)
        + _UC_HEAD.pack(UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS, 0, 0, SS_DISABLE, 0)
        + context
        + struct.pack("<Q", saved_mask)
        + _SIGINFO.pack(info.signo, 0, info.code, 0, info.value, 0, 0)
    )
    if not space.write(frame, data):
        return None
    signals.suspended_mask = None
    signals.mask |= action_mask
    if not flags & SA_NODEFER:
        signals.mask |= 1 << (info.signo - 1)
    if flags & SA_RESETHAND:
        signals.actions.pop(info.signo, None)
    entry = dict(gprs)
    entry.update(rdi=info.signo, rsi=siginfo, rdx=uc, rax=0, rsp=frame)
    # DF and TF cleared, as Linux enters a handler
    return UserRegisters(entry, handler, regs.rflags & ~0x500)


def restore_frame(space: AddressSpace, signals: Signals, rsp: int,
                  current_rflags: int) -> UserRegisters | None:
    """``rt_sigreturn``: the registers and mask saved by :func:`build_frame`
    (the handler's ``ret`` popped the return address: ``rsp`` is the
    ucontext); ``None`` for a bad frame."""
    raw = space.read(rsp, UCONTEXT_SIZE)
    if raw is None:
        return None
    values = _SIGCONTEXT.unpack_from(raw, _UC_HEAD.size)
    gprs = dict(zip(SIGCONTEXT_GPRS, values[:16], strict=True))
    rip, rflags = values[16], values[17]
    signals.mask = struct.unpack_from("<Q", raw, _UC_HEAD.size + _SIGCONTEXT.size)[0]
    rflags = (current_rflags & ~FIX_EFLAGS) | (rflags & FIX_EFLAGS) | 0x202
    return UserRegisters(gprs, rip, rflags, values[_FPSTATE_FIELD])
