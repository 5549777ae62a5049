"""Guest cycle and instruction counters through ``perf_event_open(2)``.

The counters count the calling thread with the host excluded, so they see
only guest execution.  Many hosts have none (nested or paravirtualized KVM,
``perf_event_paranoid``): :func:`open_guest_counters` then says why, and the
CPU measures guest time with the host clock instead.

:class:`InstructionEvents` serves events at guest instruction counts (the
CPU's instruction-count stops) through an :class:`InstructionCounter`:
:class:`PerfInstructionCounter` where the host has one; tests give fakes.
"""

from __future__ import annotations

import errno as errno_module
import fcntl
import heapq
import os
import platform
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from kvmbase.abi import ffi, libc
from kvmbase.errors import KvmCapabilityError

ffi.cdef(
    """
    struct kvmbase_perf_event_attr {
        uint32_t type;
        uint32_t size;
        uint64_t config;
        uint64_t sample_period;
        uint64_t sample_type;
        uint64_t read_format;
        uint64_t flags;
        uint32_t wakeup_events;
        uint32_t bp_type;
        uint64_t config1;
        uint64_t config2;
        uint64_t branch_sample_type;
        uint64_t sample_regs_user;
        uint32_t sample_stack_user;
        int32_t clockid;
        uint64_t sample_regs_intr;
        uint32_t aux_watermark;
        uint16_t sample_max_stack;
        uint16_t reserved_2;
        uint32_t aux_sample_size;
        uint32_t reserved_3;
        uint64_t sig_data;
    };
    long syscall(long number, ...);
    """
)

PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_HW_CPU_CYCLES = 0
PERF_COUNT_HW_INSTRUCTIONS = 1

# Bits of perf_event_attr's flag word.
FLAG_DISABLED = 1 << 0
FLAG_PINNED = 1 << 2
FLAG_EXCLUDE_HV = 1 << 6
FLAG_EXCLUDE_HOST = 1 << 19

PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_IOC_FLAG_GROUP = 1

_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "armv7l": 364, "armv8l": 364}


class PerfCounter:
    """One open perf event counting the calling thread."""

    def __init__(
        self,
        event_type: int,
        config: int,
        *,
        flags: int,
        group: PerfCounter | None = None,
        sample_period: int = 0,
        wakeup_events: int = 0,
    ) -> None:
        number = _SYS_PERF_EVENT_OPEN.get(platform.machine())
        if number is None:
            raise OSError(0, f"perf_event_open is not known on {platform.machine()}")
        attr = ffi.new("struct kvmbase_perf_event_attr *")
        attr.type = event_type
        attr.size = ffi.sizeof("struct kvmbase_perf_event_attr")
        attr.config = config
        attr.flags = flags
        attr.sample_period = sample_period
        attr.wakeup_events = wakeup_events
        group_fd = group.fd if group is not None else -1
        fd = libc.syscall(
            number,
            ffi.cast("void *", attr),
            ffi.cast("int", 0),
            ffi.cast("int", -1),
            ffi.cast("int", group_fd),
            ffi.cast("unsigned long", 0),
        )
        if fd < 0:
            code = ffi.errno
            raise OSError(code, os.strerror(code))
        self.fd: int = int(fd)

    def read(self) -> int:
        return int.from_bytes(os.read(self.fd, 8), "little")

    def start(self) -> None:
        fcntl.ioctl(self.fd, PERF_EVENT_IOC_ENABLE, PERF_IOC_FLAG_GROUP)

    def stop(self) -> None:
        fcntl.ioctl(self.fd, PERF_EVENT_IOC_DISABLE, PERF_IOC_FLAG_GROUP)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class GuestCounters:
    """The guest counters a CPU could open, or why not."""

    cycles: PerfCounter | None
    instructions: PerfCounter | None
    reason: str

    def close(self) -> None:
        for counter in (self.instructions, self.cycles):
            if counter is not None:
                counter.close()


def open_guest_counters() -> GuestCounters:
    """Open guest-only cycle and instruction counters for this thread."""
    flags = FLAG_DISABLED | FLAG_PINNED | FLAG_EXCLUDE_HV | FLAG_EXCLUDE_HOST
    try:
        cycles = PerfCounter(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, flags=flags)
    except OSError as exc:
        return GuestCounters(None, None, f"no guest cycle counter: {exc.strerror}")
    try:
        instructions = PerfCounter(
            PERF_TYPE_HARDWARE,
            PERF_COUNT_HW_INSTRUCTIONS,
            flags=FLAG_EXCLUDE_HV | FLAG_EXCLUDE_HOST,
            group=cycles,
        )
    except OSError as exc:
        return GuestCounters(cycles, None, f"no guest instruction counter: {exc.strerror}")
    return GuestCounters(cycles, instructions, "guest cycle and instruction counters")


def probe_guest_counters() -> tuple[bool, bool, str]:
    """(cycles available, instructions available, explanation) for this host."""
    counters = open_guest_counters()
    try:
        cycles = counters.cycles is not None
        instructions = counters.instructions is not None
        reason = counters.reason
    finally:
        counters.close()
    if not cycles:
        # The group failed at its cycle counter: an instruction counter (what
        # instruction-count stops need) may still open on its own.
        try:
            PerfCounter(
                PERF_TYPE_HARDWARE,
                PERF_COUNT_HW_INSTRUCTIONS,
                flags=FLAG_DISABLED | FLAG_EXCLUDE_HV | FLAG_EXCLUDE_HOST,
            ).close()
            instructions = True
        except OSError as exc:
            reason = f"{reason}; no guest instruction counter: {exc.strerror}"
    return cycles, instructions, reason


# --------------------------------------------------------------------------
# Instruction-count events
#
# gem5 stops a KVM CPU after N guest instructions with a sampling
# instruction counter: it arms the counter with the distance to the next
# instruction event, the counter's overflow signal kicks the vCPU out of
# KVM_RUN, and after each run the events whose count has come are served.
# InstructionEvents is that logic; the counter behind it is any
# InstructionCounter, so that tests can drive it with a fake one.

F_SETSIG = 10
F_SETOWN_EX = 15
F_OWNER_TID = 0

#: the instructions an event may be served early by default: none.  An
#: event fires once the count reaches ``target - tolerance``; it is late by
#: the counter's skid (the instructions between the overflow and the exit).
DEFAULT_INSTRUCTION_TOLERANCE = 0


class InstructionCounter(Protocol):
    """A counter of the guest instructions of the thread that opened it."""

    def read(self) -> int:
        """Guest instructions counted since the counter was opened."""

    def arm(self, period: int) -> None:
        """Kick the vCPU after ``period`` more instructions; 0: never."""

    def close(self) -> None:
        """Release the counter."""


class PerfInstructionCounter:
    """Guest instructions (host excluded) through ``perf_event_open``; when
    armed, its overflow sends ``signal_number`` to the thread that opened it.

    Changing the period reopens the event, as gem5 does: the kernel's
    ``PERF_EVENT_IOC_PERIOD`` has applied a new period only from the next
    overflow on some kernels.  :meth:`read` adds up the closed events.
    """

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        self._closed_total = 0
        self._counter = self._open(0)

    def _open(self, period: int) -> PerfCounter:
        counter = PerfCounter(
            PERF_TYPE_HARDWARE,
            PERF_COUNT_HW_INSTRUCTIONS,
            flags=FLAG_EXCLUDE_HV | FLAG_EXCLUDE_HOST,
            sample_period=period,
            wakeup_events=1 if period else 0,
        )
        if period:
            fd = counter.fd
            owner = struct.pack("ii", F_OWNER_TID, threading.get_native_id())
            fcntl.fcntl(fd, F_SETOWN_EX, owner)
            fcntl.fcntl(fd, F_SETSIG, self.signal_number)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
        return counter

    def read(self) -> int:
        return self._closed_total + self._counter.read()

    def arm(self, period: int) -> None:
        total = self.read()
        self._counter.close()
        self._closed_total = total
        self._counter = self._open(period)

    def close(self) -> None:
        self._counter.close()


def open_instruction_counter(signal_number: int) -> InstructionCounter:
    """A :class:`PerfInstructionCounter`, or :class:`KvmCapabilityError`
    saying plainly that this host has no guest instruction counter."""
    try:
        return PerfInstructionCounter(signal_number)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        code = errno_module.errorcode.get(exc.errno or 0, f"errno {exc.errno}")
        raise KvmCapabilityError(
            "a guest instruction counter (perf_event_open of hardware instructions "
            f"with the host excluded failed: {code}, {reason})",
            "stopping after a number of guest instructions",
        ) from None


@dataclass(order=True)
class InstructionEvent:
    """A callback due when the thread has run ``target`` guest instructions."""

    target: int
    sequence: int
    callback: Callable[[], None] = field(compare=False)
    tolerance: int = field(compare=False, default=DEFAULT_INSTRUCTION_TOLERANCE)
    #: the instruction count when it fired; None while pending
    fired_at: int | None = field(compare=False, default=None)
    cancelled: bool = field(compare=False, default=False)


class InstructionEvents:
    """Events at guest instruction counts, served around each KVM run.

    :meth:`before_entry` arms the counter with the distance to the next
    event (only when that changes), :meth:`after_exit` adds what the run
    counted and fires every event whose count has come.  The counter opens
    on the thread that runs the vCPU, which perf counts and signals.
    """

    def __init__(self, opener: Callable[[], InstructionCounter]) -> None:
        self._opener = opener
        self.counter: InstructionCounter | None = None
        self._counter_thread: int | None = None
        #: guest instructions counted so far
        self.count = 0
        self._last_read = 0
        self._heap: list[InstructionEvent] = []
        self._sequence = 0
        #: the period the counter is armed with (-1: not yet)
        self.armed_period = -1

    def open(self) -> None:
        """Open the counter on this thread (raises where the host has none)."""
        if self.counter is not None:
            self.counter.close()
        self.counter = self._opener()
        self._counter_thread = threading.get_ident()
        self._last_read = self.counter.read()
        self.armed_period = -1

    def schedule(
        self,
        instructions: int,
        callback: Callable[[], None],
        tolerance: int = DEFAULT_INSTRUCTION_TOLERANCE,
    ) -> InstructionEvent:
        """Call ``callback`` after ``instructions`` more guest instructions."""
        if instructions <= 0:
            raise ValueError(f"an instruction event needs a count above 0, got {instructions}")
        if tolerance < 0:
            raise ValueError(f"the tolerance cannot be negative, got {tolerance}")
        if self.counter is None:
            self.open()
        elif not self.pending:
            # Runs while nothing was pending went uncounted: count them now.
            self._catch_up()
        self._sequence += 1
        event = InstructionEvent(self.count + instructions, self._sequence, callback, tolerance)
        heapq.heappush(self._heap, event)
        return event

    def cancel(self, event: InstructionEvent) -> None:
        """Drop a pending event (it stays in the heap, skipped when due)."""
        event.cancelled = True

    @property
    def pending(self) -> bool:
        """Whether any event waits."""
        self._drop_cancelled()
        return bool(self._heap)

    def _drop_cancelled(self) -> None:
        heap = self._heap
        while heap and heap[0].cancelled:
            heapq.heappop(heap)

    def next_period(self) -> int:
        """Instructions until the next event is due; 0 when none waits."""
        self._drop_cancelled()
        if not self._heap:
            return 0
        event = self._heap[0]
        return max(event.target - event.tolerance - self.count, 1)

    def _catch_up(self) -> int:
        counter = self.counter
        assert counter is not None
        total = counter.read()
        done = total - self._last_read
        self._last_read = total
        self.count += done
        return done

    def disarm(self) -> None:
        """No signal from the counter until the next event is armed."""
        if self.counter is not None and self.armed_period != 0:
            self.counter.arm(0)
            self.armed_period = 0

    def before_entry(self) -> None:
        """Arm the counter for the next event, on the thread that runs."""
        if self._counter_thread != threading.get_ident():
            self.open()
        counter = self.counter
        assert counter is not None
        period = self.next_period()
        if period != self.armed_period:
            counter.arm(period)
            self.armed_period = period

    def after_exit(self) -> int:
        """Count the run that ended and fire what is due; the run's count."""
        done = self._catch_up()
        count = self.count
        heap = self._heap
        while heap and (heap[0].cancelled or heap[0].target - heap[0].tolerance <= count):
            event = heapq.heappop(heap)
            if not event.cancelled:
                event.fired_at = count
                event.callback()
        if done and self.armed_period > 0:
            # The armed period counts from when it was armed: even if the
            # next period comes out the same number, it must be armed anew.
            self.armed_period = -1
        return done

    def close(self) -> None:
        if self.counter is not None:
            self.counter.close()
            self.counter = None
