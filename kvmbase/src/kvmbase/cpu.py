"""``BaseKvmCPU``: a KVM vCPU driven by the simulation host.

The base class owns the run-state machine, the exit loop and its dispatch,
lazy state synchronisation, draining, switching, checkpoints and statistics.
An architecture plugin subclasses it and implements the contract:
:meth:`update_kvm_state`, :meth:`update_thread_context`, :meth:`dump`, and,
where it has more to do around an entry, :meth:`kvm_run` and
:meth:`arch_is_drained`/:meth:`kvm_run_drain`.

The exit path (``tick`` → ``kvm_run`` → ``handle_kvm_exit`` → a handler →
a device) is written for speed: no plugin-manager calls, no allocation that
can be avoided, the kvm_run fields read through cdata pointers made once.
"""

from __future__ import annotations

import abc
import enum
import fcntl
import logging
import mmap
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from kvmbase import abi
from kvmbase.abi import ffi, libc
from kvmbase.config import CpuConfig
from kvmbase.errors import (
    BusError,
    EmulationFailureError,
    GuestError,
    GuestShutdownError,
    KvmCapabilityError,
    KvmIoctlError,
    SimulationError,
    UnhandledExitError,
)
from kvmbase.ioctl import kvm_ioctl
from kvmbase.perf import (
    DEFAULT_INSTRUCTION_TOLERANCE,
    GuestCounters,
    InstructionCounter,
    InstructionEvent,
    InstructionEvents,
    open_guest_counters,
    open_instruction_counter,
)
from kvmbase.sim.eventq import CPU_TICK_PRIORITY, MAX_TICK, Event, ticks_from_frequency
from kvmbase.sim.thread_context import ThreadContext, ThreadStatus
from kvmbase.stats import CpuStats
from kvmbase.timer import MIN_RUN_NS, RunTimer

if TYPE_CHECKING:
    from kvmbase.sim.system import System
    from kvmbase.vm import KvmVM

#: The signal that kicks a vCPU out of ``KVM_RUN`` (timer expiry, other threads).
KICK_SIGNAL = signal.SIGRTMIN

# fcntl.ioctl retries EINTR from Python 3.14 on, which would swallow kicks;
# there KVM_RUN goes through libc via cffi instead.
_FCNTL_RUN = sys.version_info < (3, 14)

log = logging.getLogger(__name__)

_EINTR = 4
_KVM_RUN = abi.KVM_RUN
_KVM_EXIT_INTR = abi.KVM_EXIT_INTR
_KVM_EXIT_IO = abi.KVM_EXIT_IO
_KVM_EXIT_MMIO = abi.KVM_EXIT_MMIO
_fcntl_ioctl = fcntl.ioctl
_monotonic_ns = time.monotonic_ns
# kvm_run.mmio: phys_addr, data[8] (skipped), len, is_write
_MMIO_EXIT = struct.Struct("<Q8xIB")
_PACKERS = {size: struct.Struct(fmt) for size, fmt in ((1, "<B"), (2, "<H"), (4, "<I"), (8, "<Q"))}
_MASKS = {size: (1 << (8 * size)) - 1 for size in (1, 2, 4, 8)}

ExitHandler = Callable[[], int]


class RunState(enum.Enum):
    """Where the vCPU is in its run cycle."""

    #: not scheduled: halted, suspended, drained or switched out
    IDLE = "idle"
    #: will enter KVM at its next tick
    RUNNING = "running"
    #: exited and awaits service at its next tick
    RUNNING_SERVICE = "running service"
    #: a timing-mode MMIO access is in flight
    RUNNING_MMIO_PENDING = "running MMIO pending"
    #: serviced; KVM must be entered once to complete the access
    RUNNING_SERVICE_COMPLETION = "running service completion"


IDLE = RunState.IDLE
RUNNING = RunState.RUNNING
RUNNING_SERVICE = RunState.RUNNING_SERVICE
RUNNING_MMIO_PENDING = RunState.RUNNING_MMIO_PENDING
RUNNING_SERVICE_COMPLETION = RunState.RUNNING_SERVICE_COMPLETION

EXIT_NAMES: dict[int, str] = {
    abi.KVM_EXIT_UNKNOWN: "UNKNOWN",
    abi.KVM_EXIT_EXCEPTION: "EXCEPTION",
    abi.KVM_EXIT_IO: "IO",
    abi.KVM_EXIT_HYPERCALL: "HYPERCALL",
    abi.KVM_EXIT_DEBUG: "DEBUG",
    abi.KVM_EXIT_HLT: "HLT",
    abi.KVM_EXIT_MMIO: "MMIO",
    abi.KVM_EXIT_IRQ_WINDOW_OPEN: "IRQ_WINDOW_OPEN",
    abi.KVM_EXIT_SHUTDOWN: "SHUTDOWN",
    abi.KVM_EXIT_FAIL_ENTRY: "FAIL_ENTRY",
    abi.KVM_EXIT_INTR: "INTR",
    abi.KVM_EXIT_INTERNAL_ERROR: "INTERNAL_ERROR",
    abi.KVM_EXIT_SYSTEM_EVENT: "SYSTEM_EVENT",
}
_EXIT_TABLE_SIZE = 64


class BaseKvmCPU(abc.ABC):
    """A KVM vCPU with gem5's run-state machine.  Subclass per architecture."""

    #: the thread-context class of the architecture
    thread_context_class: ClassVar[type[ThreadContext]]
    #: False where KVM refuses new vCPUs once the VM has run (arm64, with the
    #: in-kernel GIC set up): a CPU taking over then takes the old CPU's vCPU
    new_vcpus_after_start: ClassVar[bool] = True

    def __init__(
        self,
        system: System,
        vm: KvmVM,
        *,
        config: CpuConfig | None = None,
        thread: ThreadContext | None = None,
        name: str | None = None,
    ) -> None:
        self.system = system
        self.vm = vm
        self.config = config if config is not None else CpuConfig()
        self.vcpu_id = vm.alloc_vcpu_id()
        self.name = name if name is not None else f"cpu{self.vcpu_id}"
        self.thread = thread if thread is not None else self.thread_context_class()
        self.thread.attach(self._on_thread_dirty, self._on_thread_status)
        self.state = IDLE
        self.stats = CpuStats()
        #: the thread context holds state the vCPU does not have yet
        self.thread_context_dirty = True
        #: the vCPU holds state the thread context does not have yet
        self.kvm_state_dirty = False
        self.always_sync_tc = self.config.always_sync_tc
        self.switched_out = False
        self.clock_period = ticks_from_frequency(self.config.clock)
        # guest ticks per host nanosecond spent in KVM_RUN
        self._ticks_per_host_ns = 1000.0 * self.config.host_factor
        self.tick_event = Event(self.tick, f"{self.name}.tick", CPU_TICK_PRIORITY)
        self._event_queue = system.event_queue
        self._bus = system.bus
        self.vcpu_fd = -1
        self._mmap: mmap.mmap | None = None
        self._io: Any = None
        self._mmio_ring: Any = None
        self._drain_pending = False
        self._in_tick = False
        self._pending_accesses = 0
        self._vcpu_thread: int | None = None
        self._kick_before_start = False
        #: kick with kvm_run.immediate_exit where the host has it; set False
        #: before startup() to use gem5's signal-only method everywhere
        self.prefer_immediate_exit = True
        self._immediate_exit = False
        self._run_timer = RunTimer(KICK_SIGNAL)
        self.counters = GuestCounters(None, None, "not opened")
        # True while nothing is counted per run (no cycle counter, no
        # instruction events): the exit path then only reads the clock.
        self._uncounted = True
        #: opens the guest instruction counter that instruction-count events
        #: use, on the vCPU's thread; tests put a fake here
        self.instruction_counter_opener: Callable[[], InstructionCounter] = partial(
            open_instruction_counter, KICK_SIGNAL
        )
        self._instruction_events: InstructionEvents | None = None
        self._coalesced_zones: list[tuple[int, int, bool]] = []
        self._interrupt = ffi.new("struct kvm_interrupt *")
        self._warned: set[str] = set()
        self._exit_handlers: list[ExitHandler] = []
        system.add_cpu(self)

    # ------------------------------------------------------------------
    # The architecture contract
    # ------------------------------------------------------------------
    @abc.abstractmethod
    def update_kvm_state(self) -> None:
        """Write the whole thread context into the vCPU."""

    @abc.abstractmethod
    def update_thread_context(self) -> None:
        """Read the whole vCPU state into the thread context."""

    @abc.abstractmethod
    def dump(self, *sections: str) -> dict[str, Any]:
        """The named parts of the vCPU state (all when none are named)."""

    def dump_sections(self) -> tuple[str, ...]:
        """The section names :meth:`dump` knows."""
        return ()

    def collect_dump(
        self, sections: tuple[str, ...], own: Mapping[str, Callable[[], Any]]
    ) -> dict[str, Any]:
        """What every ``dump()`` does: the architecture's sections ``own``,
        then plugins' (``kvmbase_dump_sections``); all when none are named,
        a KeyError listing them for a name neither has."""
        from kvmbase.plugins import dump_sections as plugin_dump_sections

        available = dict(own)
        for name, render in plugin_dump_sections(self).items():
            available.setdefault(name, render)
        result: dict[str, Any] = {}
        for section in sections or tuple(available):
            if section not in available:
                raise KeyError(
                    f"no dump section {section!r}; sections: {', '.join(available)}"
                )
            result[section] = available[section]()
        return result

    def collect_dump_sections(self, own: tuple[str, ...]) -> tuple[str, ...]:
        """The architecture's section names ``own``, then plugins'."""
        from kvmbase.plugins import dump_sections as plugin_dump_sections

        return own + tuple(name for name in plugin_dump_sections(self) if name not in own)

    def arch_is_drained(self) -> bool:
        """False while the vCPU holds state the thread context cannot carry."""
        return True

    def kvm_run_drain(self) -> int:
        """Run until the vCPU can be drained; by default finish pending IO."""
        if self.state is not RUNNING_SERVICE_COMPLETION and self.state is not RUNNING:
            raise SimulationError(f"{self.name}: kvm_run_drain in state {self.state.value}")
        return self.kvm_run(0)

    # ------------------------------------------------------------------
    # Start-up and teardown
    # ------------------------------------------------------------------
    def startup(self) -> None:
        """Create the vCPU in KVM, map ``kvm_run``, collect exit handlers."""
        if self.vcpu_fd >= 0:
            return
        self.vm.cpu_startup()
        fd = self.vm.create_vcpu(self.vcpu_id)
        mapping = mmap.mmap(
            fd, self.vm.kvm.vcpu_mmap_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        self._attach_vcpu(fd, mapping)

    def _detach_vcpu(self) -> tuple[int, mmap.mmap]:
        """Give up the vCPU (fd and mapping) without closing it, for another CPU."""
        assert self._mmap is not None
        fd, mapping = self.vcpu_fd, self._mmap
        self._io = self._mmio_ring = None
        ffi.release(self._run_cdata)
        self._run_buffer.release()
        self._mmap = None
        self.vcpu_fd = -1
        return fd, mapping

    def _attach_vcpu(self, fd: int, mapping: mmap.mmap) -> None:
        """Take the vCPU ``fd`` with its ``kvm_run`` ``mapping`` and get it ready to run."""
        kvm = self.vm.kvm
        self.vcpu_fd = fd
        self._mmap = mapping
        self._run_cdata = ffi.from_buffer("struct kvm_run *", self._mmap)
        self._run: Any = self._run_cdata
        self._run_buffer = memoryview(self._mmap)
        self._io = ffi.addressof(self._run, "io")
        self._mmio_data_offset = ffi.offsetof("struct kvm_run", "mmio") + 8
        #: where kvm_run's exit union starts (io, mmio, ...), for struct reads
        self.exit_data_offset = ffi.offsetof("struct kvm_run", "io")
        ring_page = kvm.cap_coalesced_mmio
        self._mmio_ring = None
        if self.config.use_coalesced_mmio and ring_page:
            offset = ring_page * abi.PAGE_SIZE
            self._mmio_ring = ffi.cast(
                "struct kvm_coalesced_mmio_ring *", ffi.cast("char *", self._run_cdata) + offset
            )
            self._ring_entry_size = ffi.sizeof("struct kvm_coalesced_mmio")
            self._ring_entries_offset = offset + ffi.offsetof(
                "struct kvm_coalesced_mmio_ring", "coalesced_mmio"
            )
        self._immediate_exit = self.prefer_immediate_exit and kvm.cap_immediate_exit
        # The VM's own list, so zones added later are seen on the exit path.
        self._coalesced_zones = self.vm.coalesced_zones
        self._exit_handlers = self._base_exit_handlers()
        from kvmbase.plugins import collect_exit_handlers, notify_vcpu_started

        for reason, handler in collect_exit_handlers(self).items():
            self.set_exit_handler(reason, handler)
        self.arch_startup()
        notify_vcpu_started(self)
        if self.thread.status is ThreadStatus.ACTIVE:
            self.activate_context()

    def arch_startup(self) -> None:  # noqa: B027 - optional, empty by default
        """Architecture set-up once the vCPU exists (before it first runs)."""

    def close(self) -> None:
        """Release the vCPU's mapping, timer, counters and fd."""
        self._run_timer.close()
        self.counters.close()
        if self._instruction_events is not None:
            self._instruction_events.close()
        if self._mmap is not None:
            self._io = self._mmio_ring = None
            ffi.release(self._run_cdata)
            self._run_buffer.release()
            self._mmap.close()
            self._mmap = None
        if self.vcpu_fd >= 0:
            self.vm.release_vcpu(self.vcpu_id)
            self.vcpu_fd = -1

    @property
    def run_struct(self) -> Any:
        """The ``struct kvm_run`` cdata of this vCPU."""
        return self._run

    def guest_data(self, offset: int, length: int) -> memoryview:
        """Bytes of the vCPU mapping at ``offset`` (port IO data)."""
        return self._run_buffer[offset : offset + length]

    # ------------------------------------------------------------------
    # Thread and status plumbing
    # ------------------------------------------------------------------
    def _on_thread_dirty(self) -> None:
        if self.kvm_state_dirty:
            # Someone wrote the context without reading it first: fetch the
            # rest from the vCPU so the write does not undo guest progress.
            raise SimulationError(
                f"{self.name}: thread context written while stale; read it through "
                "cpu.get_context() (or cpu.read_register) before writing"
            )
        self.thread_context_dirty = True

    def _on_thread_status(self, old: ThreadStatus, new: ThreadStatus) -> None:
        if self.vcpu_fd < 0 or self.switched_out:
            return
        if new is ThreadStatus.ACTIVE:
            self.activate_context()
        elif old is ThreadStatus.ACTIVE:
            self.suspend_context()

    def activate_context(self) -> None:
        """The thread became active: schedule the first tick."""
        if self.state is not IDLE:
            return
        if self.tick_event.scheduled:
            self._event_queue.deschedule(self.tick_event)
        self._event_queue.schedule(self.tick_event, self._next_cycle(0))
        self.state = RUNNING

    def suspend_context(self) -> None:
        """The thread halted or suspended: stop ticking."""
        if self.state is IDLE:
            return
        if self.tick_event.scheduled:
            self._event_queue.deschedule(self.tick_event)
        self.state = IDLE

    def wakeup(self) -> None:
        """An event for a suspended thread (an interrupt): make it active."""
        if self.thread.status is ThreadStatus.SUSPENDED:
            self.thread.activate()

    def get_context(self) -> ThreadContext:
        """The thread context, brought up to date with the vCPU."""
        self.sync_thread_context()
        return self.thread

    def read_register(self, name: str) -> int:
        return self.get_context().read_reg(name)

    def write_register(self, name: str, value: int) -> None:
        self.get_context().write_reg(name, value)

    # ------------------------------------------------------------------
    # Lazy state synchronisation
    # ------------------------------------------------------------------
    def sync_thread_context(self) -> None:
        """Read the vCPU into the thread context if the vCPU is ahead."""
        if not self.kvm_state_dirty:
            return
        if self.thread_context_dirty:
            raise SimulationError(f"{self.name}: both the vCPU and the thread context are dirty")
        self.update_thread_context()
        self.kvm_state_dirty = False

    def sync_kvm_state(self) -> None:
        """Write the thread context into the vCPU if the context is ahead."""
        if not self.thread_context_dirty:
            return
        if self.kvm_state_dirty:
            raise SimulationError(f"{self.name}: both the vCPU and the thread context are dirty")
        self.update_kvm_state()
        self.thread_context_dirty = False

    # ------------------------------------------------------------------
    # The run loop
    # ------------------------------------------------------------------
    def _next_cycle(self, delay: int) -> int:
        period = self.clock_period
        when = self._event_queue.cur_tick + delay
        return -(-when // period) * period

    def tick(self) -> None:
        """Advance the state machine until another event is due.

        The tick event is rescheduled only when something else in the queue
        is due first (or a stop was asked for): until then the CPU moves time
        on itself, which orders events exactly as rescheduling would, without
        the heap traffic on every exit.
        """
        if self._vcpu_thread != threading.get_ident():
            self._prepare_thread()
        queue = self._event_queue
        period = self.clock_period
        run = self._run
        stats = self.stats
        seen_version = -1
        stop = MAX_TICK
        self._in_tick = True
        try:
            while True:
                if queue.version != seen_version:
                    seen_version = queue.version
                    stop = queue.next_stop()
                state = self.state
                if state is RUNNING_SERVICE:
                    delay = self.handle_kvm_exit()
                    if self._drain_pending and self._try_drain():
                        self.state = IDLE
                elif state is RUNNING or state is RUNNING_SERVICE_COMPLETION:
                    if self.thread_context_dirty:
                        self.sync_kvm_state()
                    if self._drain_pending:
                        delay = self.kvm_run_drain()
                    else:
                        # Nothing due: run without a deadline (no timer).
                        delay = self.kvm_run(
                            MAX_TICK if stop == MAX_TICK else stop - queue.cur_tick
                        )
                    if self.state is IDLE:
                        # Suspended before entering KVM: nothing ran.
                        return
                    self.kvm_state_dirty = True
                    if run.exit_reason != _KVM_EXIT_INTR:
                        self.state = RUNNING_SERVICE
                    else:
                        stats.num_exit_signal += 1
                        self.state = RUNNING
                    if self.always_sync_tc:
                        self.sync_thread_context()
                        self.thread_context_dirty = True
                    if self._drain_pending and self._try_drain():
                        self.state = IDLE
                else:
                    raise SimulationError(f"{self.name}: tick in illegal state {state.value}")
                state = self.state
                if state is IDLE or state is RUNNING_MMIO_PENDING:
                    return
                when = -(-(queue.cur_tick + delay) // period) * period
                if queue.version != seen_version:
                    seen_version = queue.version
                    stop = queue.next_stop()
                if when >= stop:
                    queue.schedule(self.tick_event, when)
                    return
                queue.cur_tick = when
                if queue.pending_exit is not None:
                    queue.schedule(self.tick_event, when)
                    return
        finally:
            self._in_tick = False

    def kvm_run(self, ticks: int) -> int:
        """Enter the guest for about ``ticks``; return the ticks it ran.

        ``ticks == 0`` is a half entry: KVM completes pending IO and returns
        without running guest code.  Subclasses deliver interrupts here, then
        call this.
        """
        stats = self.stats
        if ticks == 0:
            stats.num_vm_half_entries += 1
            if self._immediate_exit:
                self._run.immediate_exit = 1
            else:
                signal.pthread_kill(threading.get_ident(), KICK_SIGNAL)
            self._enter_kvm()
            executed = self.clock_period
        else:
            start = _monotonic_ns()
            if ticks != MAX_TICK:
                budget_ns = int(ticks / self._ticks_per_host_ns)
                self._run_timer.arm_at(start + max(budget_ns, MIN_RUN_NS), start)
            if self._uncounted:
                self._enter_kvm()
                elapsed = _monotonic_ns() - start
                stats.host_ns_in_guest += elapsed
                executed = int(elapsed * self._ticks_per_host_ns)
            else:
                executed = self._run_counted(start)
        stats.num_vm_exits += 1
        if self._coalesced_zones:
            ring = self._mmio_ring
            if ring is not None and ring.first != ring.last:
                executed += self.flush_coalesced_mmio()
        return executed

    def _run_counted(self, start: int) -> int:
        """A run measured by the guest's own cycle and instruction counters,
        or serving instruction-count events (or both)."""
        cycles = self.counters.cycles
        instructions = self.counters.instructions
        events = self._instruction_events
        if events is not None:
            events.before_entry()
        if cycles is None:
            self._enter_kvm()
            elapsed = _monotonic_ns() - start
            self.stats.host_ns_in_guest += elapsed
            ticks = int(elapsed * self._ticks_per_host_ns)
        else:
            base_cycles = cycles.read()
            base_insts = instructions.read() if instructions is not None else 0
            cycles.start()
            self._enter_kvm()
            cycles.stop()
            self.stats.host_ns_in_guest += _monotonic_ns() - start
            host_cycles = cycles.read() - base_cycles
            self.stats.num_cycles += int(host_cycles * self.config.host_factor)
            if instructions is not None:
                self.stats.committed_insts += instructions.read() - base_insts
            ticks = int(host_cycles * self.config.host_factor * 10**12 / self.config.host_freq)
        if events is not None:
            done = events.after_exit()
            if instructions is None:
                self.stats.committed_insts += done
            if not events.pending:
                # Nothing left to wait for: disarm, and stop counting runs.
                events.disarm()
                self._update_counting()
        return ticks

    def _update_counting(self) -> None:
        events = self._instruction_events
        self._uncounted = self.counters.cycles is None and (events is None or not events.pending)

    # ------------------------------------------------------------------
    # Instruction-count events
    # ------------------------------------------------------------------
    def schedule_instruction_stop(
        self,
        instructions: int,
        *,
        cause: str = "instruction count reached",
        code: int = 0,
        tolerance: int = DEFAULT_INSTRUCTION_TOLERANCE,
    ) -> InstructionEvent:
        """Stop the simulation after ``instructions`` more guest instructions.

        The run ends with ``cause`` once the guest has run at least
        ``instructions - tolerance`` of them; past the count by the
        counter's skid at most (the instructions between the counter's
        overflow and the vCPU's exit).  Needs a guest instruction counter:
        where the host has none, raises :class:`KvmCapabilityError`.
        """
        return self.schedule_instruction_event(
            instructions, partial(self.system.exit_simulation, cause, code), tolerance=tolerance
        )

    def schedule_instruction_event(
        self,
        instructions: int,
        callback: Callable[[], None],
        *,
        tolerance: int = DEFAULT_INSTRUCTION_TOLERANCE,
    ) -> InstructionEvent:
        """Call ``callback`` after ``instructions`` more guest instructions
        (within ``tolerance`` before, the skid after); see
        :meth:`schedule_instruction_stop`."""
        events = self._instruction_events
        if events is None:
            events = InstructionEvents(self.instruction_counter_opener)
        # The first schedule opens the counter: it raises here, where the
        # host has none, and the CPU stays as it was.
        event = events.schedule(instructions, callback, tolerance)
        self._instruction_events = events
        self._update_counting()
        return event

    def cancel_instruction_event(self, event: InstructionEvent) -> None:
        """Drop an instruction event that has not fired."""
        if self._instruction_events is not None:
            self._instruction_events.cancel(event)

    @property
    def instructions_counted(self) -> int:
        """Guest instructions counted since the first instruction event was
        scheduled (runs while none was pending are added when the next is)."""
        events = self._instruction_events
        return events.count if events is not None else 0

    def _enter_kvm(self) -> None:
        """``KVM_RUN`` once; a signal or immediate exit reads as KVM_EXIT_INTR."""
        if _FCNTL_RUN:
            try:
                _fcntl_ioctl(self.vcpu_fd, _KVM_RUN)
                return
            except InterruptedError:
                pass
            except OSError as exc:
                raise self._run_error(exc.errno or 0) from None
        else:
            if libc.ioctl(self.vcpu_fd, _KVM_RUN, ffi.cast("unsigned long", 0)) >= 0:
                return
            code = ffi.errno
            if code != _EINTR:
                raise self._run_error(code)
        self._after_signal_exit()

    def _after_signal_exit(self) -> None:
        run = self._run
        run.exit_reason = abi.KVM_EXIT_INTR
        run.immediate_exit = 0
        # Consume kicks still queued, or the next entry would exit at once.
        while signal.sigtimedwait((KICK_SIGNAL,), 0) is not None:
            pass

    def _run_error(self, code: int) -> KvmIoctlError:
        return KvmIoctlError(
            "KVM_RUN",
            code,
            target=f"vCPU {self.vcpu_id}",
            action="running the guest",
            vcpu_id=self.vcpu_id,
            state=self._safe_dump(),
        )

    def _prepare_thread(self) -> None:
        """Signal and timer set-up for the thread that runs this vCPU."""
        if self.vcpu_fd < 0:
            raise SimulationError(f"{self.name}: tick before startup()")
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {KICK_SIGNAL})
        # During KVM_RUN the thread runs with its usual mask minus the kick
        # signal, so a kick pending at entry or arriving inside always exits.
        self.set_signal_mask(set(old_mask) - {KICK_SIGNAL})
        self._vcpu_thread = threading.get_ident()
        self._run_timer.bind(threading.get_native_id())
        if self.config.use_perf and self.counters.cycles is None:
            self.counters.close()
            self.counters = open_guest_counters()
            self._update_counting()
            if self.counters.cycles is None:
                self._warn_once(
                    "perf",
                    f"{self.name}: {self.counters.reason}; guest time comes from the host clock",
                    logging.INFO,
                )
        if self.config.use_perf_overflow:
            self._warn_once(
                "perf-overflow",
                f"{self.name}: use_perf_overflow is not supported yet; the POSIX run "
                "timer forces exits instead",
            )
        if self._kick_before_start:
            self._kick_before_start = False
            signal.pthread_kill(self._vcpu_thread, KICK_SIGNAL)

    def set_signal_mask(self, signals: set[int] | None) -> None:
        """``KVM_SET_SIGNAL_MASK``: the signals blocked while in ``KVM_RUN``."""
        if signals is None:
            self.vcpu_ioctl(abi.KVM_SET_SIGNAL_MASK, ffi.NULL, action="clearing the signal mask")
            return
        bits = 0
        for signo in signals:
            if 0 < signo <= 64:
                bits |= 1 << (signo - 1)
        buffer = ffi.new("char[]", 4 + abi.KERNEL_SIGSET_BYTES)
        struct.pack_into("<IQ", ffi.buffer(buffer), 0, abi.KERNEL_SIGSET_BYTES, bits)
        self.vcpu_ioctl(abi.KVM_SET_SIGNAL_MASK, buffer, action="setting the signal mask")

    @property
    def kick_method(self) -> str:
        """``immediate_exit`` or ``signal`` (gem5's KVM_SET_SIGNAL_MASK scheme)."""
        return "immediate_exit" if self._immediate_exit else "signal"

    def kick(self) -> None:
        """Force the vCPU out of ``KVM_RUN`` soon; callable from any thread.

        With ``IMMEDIATE_EXIT`` the flag makes an entry that has not yet
        happened return at once; the signal interrupts one in progress.
        """
        if self.vcpu_fd < 0:
            return
        thread = self._vcpu_thread
        if thread is not None and thread == threading.get_ident():
            # The vCPU's own thread is serving an exit, not inside KVM_RUN:
            # the run loop sees the request without a kick, and a kick left
            # pending would cut the next entry short for nothing.
            return
        if self._immediate_exit:
            self._run.immediate_exit = 1
        if thread is None:
            self._kick_before_start = True
        else:
            signal.pthread_kill(thread, KICK_SIGNAL)

    # ------------------------------------------------------------------
    # Exit dispatch
    # ------------------------------------------------------------------
    def _base_exit_handlers(self) -> list[ExitHandler]:
        # IO and MMIO are dispatched before the table (handle_kvm_exit).
        table: list[ExitHandler] = [self.handle_unexpected_exit] * _EXIT_TABLE_SIZE
        table[abi.KVM_EXIT_UNKNOWN] = self.handle_unknown_exit
        table[abi.KVM_EXIT_EXCEPTION] = self.handle_exception_exit
        table[abi.KVM_EXIT_HYPERCALL] = self._on_hypercall_exit
        table[abi.KVM_EXIT_HLT] = self._on_halt_exit
        table[abi.KVM_EXIT_IRQ_WINDOW_OPEN] = self.handle_irq_window_open_exit
        table[abi.KVM_EXIT_SHUTDOWN] = self.handle_shutdown_exit
        table[abi.KVM_EXIT_FAIL_ENTRY] = self.handle_fail_entry_exit
        table[abi.KVM_EXIT_INTERNAL_ERROR] = self.handle_internal_error_exit
        table[abi.KVM_EXIT_SYSTEM_EVENT] = self.handle_system_event_exit
        return table

    def set_exit_handler(self, exit_reason: int, handler: Callable[[BaseKvmCPU], int]) -> None:
        """Serve ``exit_reason`` with ``handler(cpu) -> ticks`` (hooks use this).

        The statistics and state changes of the exit kind stay with the base.
        """
        if not 0 <= exit_reason < _EXIT_TABLE_SIZE:
            raise ValueError(f"exit reason {exit_reason} is out of range")
        bound = partial(handler, self)
        if exit_reason == abi.KVM_EXIT_IO:
            self.handle_io_exit = bound  # type: ignore[method-assign]
        elif exit_reason == abi.KVM_EXIT_MMIO:
            self.handle_mmio_exit = bound  # type: ignore[method-assign]
        elif exit_reason == abi.KVM_EXIT_HYPERCALL:
            self.handle_hypercall_exit = bound  # type: ignore[method-assign]
        elif exit_reason == abi.KVM_EXIT_HLT:
            self.handle_halt_exit = bound  # type: ignore[method-assign]
        else:
            self._exit_handlers[exit_reason] = bound

    def handle_kvm_exit(self) -> int:
        """Serve the exit in ``kvm_run``; return the ticks the service took."""
        reason: int = self._run.exit_reason
        # IO and MMIO inline: they are most exits, and each call layer shows.
        if reason == _KVM_EXIT_IO:
            self.state = RUNNING_SERVICE_COMPLETION
            self.stats.num_io += 1
            return self.handle_io_exit()
        if reason == _KVM_EXIT_MMIO:
            self.state = RUNNING_SERVICE_COMPLETION
            self.stats.num_mmio += 1
            return self.handle_mmio_exit()
        self.state = RUNNING
        if reason < _EXIT_TABLE_SIZE:
            return self._exit_handlers[reason]()
        return self.handle_unexpected_exit()

    def _on_hypercall_exit(self) -> int:
        self.stats.num_hypercalls += 1
        return self.handle_hypercall_exit()

    def _on_halt_exit(self) -> int:
        self.stats.num_halt += 1
        return self.handle_halt_exit()

    def handle_io_exit(self) -> int:
        """Port IO (x86 ``in``/``out``); the architecture serves it."""
        io = self._io
        raise self._guest_error(
            UnhandledExitError,
            f"unhandled port IO (direction {io.direction}, size {io.size}, "
            f"port {io.port:#x}, count {io.count})",
        )

    def handle_mmio_exit(self) -> int:
        address, size, is_write = _MMIO_EXIT.unpack_from(
            self._run_buffer, self.exit_data_offset
        )
        return self.do_mmio_access(address, size, is_write, self._mmio_data_offset)

    def handle_halt_exit(self) -> int:
        """The guest waits for an interrupt: suspend the thread."""
        self.thread.suspend()
        return 0

    def handle_hypercall_exit(self) -> int:
        hypercall = ffi.addressof(self._run, "hypercall")
        raise self._guest_error(
            UnhandledExitError, f"unhandled hypercall {hypercall.nr:#x}"
        )

    def handle_irq_window_open_exit(self) -> int:
        self._warn_once("irq-window", f"{self.name}: unhandled IRQ window exit")
        return 0

    def handle_unknown_exit(self) -> int:
        reason = self._run.hw.hardware_exit_reason
        raise self._guest_error(
            UnhandledExitError,
            f"KVM_EXIT_UNKNOWN when running the vCPU (hardware exit reason {reason:#x})",
        )

    def handle_exception_exit(self) -> int:
        ex = self._run.ex
        raise self._guest_error(
            UnhandledExitError,
            f"KVM_EXIT_EXCEPTION: exception {ex.exception}, error code {ex.error_code:#x}",
        )

    def handle_fail_entry_exit(self) -> int:
        reason = self._run.fail_entry.hardware_entry_failure_reason
        raise self._guest_error(
            UnhandledExitError,
            f"KVM_EXIT_FAIL_ENTRY: failed to enter the guest (hardware reason {reason:#x})",
        )

    def handle_shutdown_exit(self) -> int:
        raise self._guest_error(
            GuestShutdownError,
            "the guest shut the CPU down (KVM_EXIT_SHUTDOWN: on x86 a triple fault)",
        )

    def handle_system_event_exit(self) -> int:
        event = ffi.addressof(self._run, "system_event")
        kind = event.type
        if kind == abi.KVM_SYSTEM_EVENT_SHUTDOWN:
            self.system.exit_simulation("guest powered off", 0)
        elif kind == abi.KVM_SYSTEM_EVENT_RESET:
            self.system.exit_simulation("guest requested a reset", 0)
        else:
            raise self._guest_error(
                UnhandledExitError,
                f"KVM_EXIT_SYSTEM_EVENT of type {kind}"
                + (" (crash)" if kind == abi.KVM_SYSTEM_EVENT_CRASH else ""),
            )
        return 0

    def handle_internal_error_exit(self) -> int:
        run = self._run
        suberror = run.internal.suberror
        if suberror == abi.KVM_INTERNAL_ERROR_EMULATION:
            failure = run.emulation_failure
            insn = b""
            if failure.flags & abi.KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES:
                insn = bytes(failure.insn_bytes[0 : failure.insn_size])
            raise self.emulation_failure(insn)
        names = {
            abi.KVM_INTERNAL_ERROR_SIMUL_EX: "simultaneous exceptions",
            abi.KVM_INTERNAL_ERROR_DELIVERY_EV: "exit while delivering an event",
            abi.KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: "unexpected exit reason",
        }
        data = [hex(run.internal.data[i]) for i in range(min(run.internal.ndata, 16))]
        raise self._guest_error(
            UnhandledExitError,
            f"KVM internal error {suberror} ({names.get(suberror, 'unknown')}), data {data}",
        )

    def emulation_failure(self, insn: bytes) -> EmulationFailureError:
        """The error for an emulation failure; architectures add the PC."""
        shown = insn.hex(" ") if insn else "not given"
        return EmulationFailureError(
            f"KVM could not emulate an instruction (bytes: {shown})",
            vcpu_id=self.vcpu_id,
            insn_bytes=insn,
            state=self._safe_dump(),
        )

    def handle_unexpected_exit(self) -> int:
        reason = self._run.exit_reason
        name = EXIT_NAMES.get(reason, "not known to kvmbase")
        raise self._guest_error(UnhandledExitError, f"unexpected exit reason {reason} ({name})")

    def _guest_error(self, kind: type[GuestError], message: str) -> GuestError:
        return kind(message, vcpu_id=self.vcpu_id, state=self._safe_dump())

    def _safe_dump(self) -> dict[str, Any] | None:
        if self.vcpu_fd < 0:
            return None
        try:
            return self.dump()
        except Exception as exc:  # a dump must never hide the error it explains
            return {"dump_failed": str(exc)}

    def _warn_once(self, key: str, message: str, level: int = logging.WARNING) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.log(level, message)

    # ------------------------------------------------------------------
    # Memory-mapped IO
    # ------------------------------------------------------------------
    def do_mmio_access(self, address: int, size: int, is_write: int, data_offset: int) -> int:
        """Serve one access at ``address`` whose data sits in ``kvm_run``.

        Returns the device's latency in ticks; for a timing device the CPU
        enters RUNNING_MMIO_PENDING until the device answers.  Unlike gem5
        the thread context is not synchronised first (two state ioctls per
        exit here); a device that needs it calls :meth:`get_context`.
        """
        mapping = self._bus.last
        if not mapping.start <= address < mapping.end:
            found = self._bus.find(address)
            if found is None:
                kind = "write to" if is_write else "read from"
                raise self._guest_error(
                    BusError,
                    f"{kind} {size}-byte {self.describe_address(address)}: no device there",
                )
            mapping = found
        device = mapping.device
        offset = address - mapping.start
        buffer = self._run_buffer
        packer = _PACKERS.get(size)
        if device.timing:
            return self._start_timing_access(device, offset, size, is_write, data_offset)
        if is_write:
            if packer is not None:
                value = packer.unpack_from(buffer, data_offset)[0]
            else:
                value = int.from_bytes(buffer[data_offset : data_offset + size], "little")
            device.write(offset, size, value)
        else:
            value = device.read(offset, size)
            if packer is not None:
                packer.pack_into(buffer, data_offset, value & _MASKS[size])
            else:
                buffer[data_offset : data_offset + size] = (
                    value & ((1 << (8 * size)) - 1)
                ).to_bytes(size, "little")
        return device.latency

    def port_address(self, port: int) -> int:
        """Where IO port ``port`` sits on the bus; architectures with ports say."""
        raise SimulationError(f"{self.name}: this architecture has no IO ports")

    def describe_address(self, address: int) -> str:
        """How an error message names a bus address (x86 names ports)."""
        return f"address {address:#x}"

    def _start_timing_access(
        self, device: Any, offset: int, size: int, is_write: int, data_offset: int
    ) -> int:
        self.state = RUNNING_MMIO_PENDING
        self._pending_accesses += 1
        if is_write:
            value = int.from_bytes(self._run_buffer[data_offset : data_offset + size], "little")
            device.start_write(offset, size, value, self._timing_access_done)
        else:
            device.start_read(offset, size, partial(self._timing_read_done, data_offset, size))
        return 0

    def _timing_read_done(self, data_offset: int, size: int, value: int) -> None:
        self._run_buffer[data_offset : data_offset + size] = (
            value & ((1 << (8 * size)) - 1)
        ).to_bytes(size, "little")
        self._timing_access_done()

    def _timing_access_done(self) -> None:
        self._pending_accesses -= 1
        if self._pending_accesses == 0:
            self.finish_mmio_pending()

    def finish_mmio_pending(self) -> None:
        """Every timing access has answered: complete the exit in KVM."""
        if self.state is not RUNNING_MMIO_PENDING:
            raise SimulationError(f"{self.name}: finish_mmio_pending in state {self.state.value}")
        self.state = RUNNING_SERVICE_COMPLETION
        if not self._in_tick and not self.tick_event.scheduled:
            self._event_queue.schedule(self.tick_event, self._next_cycle(0))

    def flush_coalesced_mmio(self) -> int:
        """Serve the writes KVM queued in the coalesced MMIO ring."""
        ring = self._mmio_ring
        if ring is None:
            return 0
        ticks = 0
        entry_size = self._ring_entry_size
        entries = self._ring_entries_offset
        bus = self._bus
        buffer = self._run_buffer
        while ring.first != ring.last:
            slot = entries + ring.first * entry_size
            address, length, pio = struct.unpack_from("<QII", buffer, slot)
            if pio:
                address = self.port_address(address)
            mapping = bus.find(address)
            if mapping is None:
                raise self._guest_error(
                    BusError,
                    f"coalesced {length}-byte write to {self.describe_address(address)}: "
                    "no device there",
                )
            value = int.from_bytes(buffer[slot + 16 : slot + 16 + length], "little")
            mapping.device.write(address - mapping.start, length, value)
            ticks += mapping.device.latency
            self.stats.num_coalesced_mmio += 1
            ring.first = (ring.first + 1) % abi.KVM_COALESCED_MMIO_MAX
        return ticks

    # ------------------------------------------------------------------
    # Draining, switching, checkpoints
    # ------------------------------------------------------------------
    @property
    def drained(self) -> bool:
        return not self._drain_pending

    def drain(self) -> bool:
        """Start draining; True when the CPU is drained already."""
        if self.switched_out:
            return True
        state = self.state
        if state is RUNNING:
            if not self.arch_is_drained():
                self._drain_pending = True
                return False
            if self.tick_event.scheduled:
                self._event_queue.deschedule(self.tick_event)
            self.state = IDLE
            state = IDLE
        if state is IDLE:
            self.sync_thread_context()
            return True
        # Waiting for, or completing, a service: enter KVM once more first.
        self._drain_pending = True
        return False

    def _try_drain(self) -> bool:
        if not self.arch_is_drained():
            return False
        if self.state is IDLE or self.state is RUNNING:
            self._drain_pending = False
            if self.tick_event.scheduled:
                self._event_queue.deschedule(self.tick_event)
            self.sync_thread_context()
            return True
        return False

    def drain_resume(self) -> None:
        """Carry on after a drain: tick again if the thread is active."""
        if self.switched_out:
            return
        if self.tick_event.scheduled:
            raise SimulationError(f"{self.name}: drain_resume with a tick scheduled")
        if self.thread.status is ThreadStatus.ACTIVE:
            self._event_queue.schedule(self.tick_event, self._next_cycle(0))
            self.state = RUNNING
        else:
            self.state = IDLE

    def switch_out(self) -> None:
        """Hand the thread over: the CPU must be drained."""
        if self.state is not IDLE or self.tick_event.scheduled:
            raise SimulationError(f"{self.name}: switch_out while {self.state.value}; drain first")
        self.sync_thread_context()
        self.switched_out = True

    def take_over_from(self, other: BaseKvmCPU) -> None:
        """Take the thread of a drained, switched-out CPU and load it into KVM.

        The vCPU is written at once rather than lazily, so its state can be
        inspected right after the switch.
        """
        if not other.switched_out:
            raise SimulationError(
                f"{other.name} must be switched out before {self.name} takes over"
            )
        if self.state is not IDLE or self.tick_event.scheduled:
            raise SimulationError(f"{self.name}: take_over_from while {self.state.value}")
        if self.vcpu_fd < 0 and not self.new_vcpus_after_start and other.vcpu_fd >= 0:
            # KVM makes no more vCPUs once the VM ran: carry on on the old one.
            self.vcpu_id = other.vcpu_id
            self._attach_vcpu(*other._detach_vcpu())
        else:
            self.startup()
        self.kvm_state_dirty = False
        self.thread.copy_from(other.thread)
        # The thread lives on here now; the old context only keeps a copy.
        other.thread.status = ThreadStatus.HALTED
        self.switched_out = False
        self.update_kvm_state()
        self.thread_context_dirty = False

    def serialize_thread(self) -> dict[str, Any]:
        """The thread's state for a checkpoint; the CPU must be drained."""
        if self.state is not IDLE:
            raise SimulationError(f"{self.name}: serialize while {self.state.value}; drain first")
        self.sync_thread_context()
        return self.thread.save_state()

    def unserialize_thread(self, state: Mapping[str, Any]) -> None:
        """Load a checkpointed thread; the vCPU is written before it next runs."""
        if self.state is not IDLE:
            raise SimulationError(f"{self.name}: unserialize while {self.state.value}")
        self.kvm_state_dirty = False
        self.thread.load_state(dict(state))
        self.thread_context_dirty = True

    # ------------------------------------------------------------------
    # vCPU ioctls and registers
    # ------------------------------------------------------------------
    def vcpu_ioctl(self, request: int, arg: object = 0, *, action: str | None = None) -> int:
        """An ioctl on the vCPU fd; failures name the vCPU."""
        if self.vcpu_fd < 0:
            raise SimulationError(f"{self.name}: vCPU ioctl before startup()")
        return kvm_ioctl(
            self.vcpu_fd,
            request,
            arg,
            target=f"vCPU {self.vcpu_id}",
            action=action,
            vcpu_id=self.vcpu_id,
        )

    def get_one_reg(self, reg_id: int) -> int | bytes:
        """``KVM_GET_ONE_REG``: an int up to 64 bits, bytes above."""
        size = abi.one_reg_size(reg_id)
        cell = ffi.new("uint8_t[]", size)
        reg = ffi.new("struct kvm_one_reg *")
        reg.id = reg_id
        reg.addr = int(ffi.cast("uintptr_t", cell))
        self.vcpu_ioctl(abi.KVM_GET_ONE_REG, reg, action=f"reading register {reg_id:#x}")
        raw = bytes(ffi.buffer(cell))
        return int.from_bytes(raw, "little") if size <= 8 else raw

    def set_one_reg(self, reg_id: int, value: int | bytes) -> None:
        """``KVM_SET_ONE_REG`` from an int or raw bytes of the register's size."""
        size = abi.one_reg_size(reg_id)
        raw = value.to_bytes(size, "little") if isinstance(value, int) else bytes(value)
        if len(raw) != size:
            raise ValueError(f"register {reg_id:#x} is {size} bytes, got {len(raw)}")
        cell = ffi.new("uint8_t[]", raw)
        reg = ffi.new("struct kvm_one_reg *")
        reg.id = reg_id
        reg.addr = int(ffi.cast("uintptr_t", cell))
        self.vcpu_ioctl(abi.KVM_SET_ONE_REG, reg, action=f"writing register {reg_id:#x}")

    def get_and_format_one_reg(self, reg_id: int) -> str:
        """A register read with ONE_REG, formatted for people."""
        value = self.get_one_reg(reg_id)
        if isinstance(value, int):
            return hex(value)
        return "[" + ", ".join(hex(byte) for byte in value) + "]"

    def kvm_interrupt(self, vector: int) -> None:
        """``KVM_INTERRUPT``: inject an external interrupt."""
        irq = self._interrupt
        irq.irq = vector
        self.stats.num_interrupts += 1
        self.vcpu_ioctl(abi.KVM_INTERRUPT, irq, action=f"injecting interrupt {vector}")

    def kvm_non_maskable_interrupt(self) -> None:
        """``KVM_NMI``: inject a non-maskable interrupt."""
        if not self.vm.kvm.cap_user_nmi:
            raise KvmCapabilityError("USER_NMI", "injecting an NMI")
        self.stats.num_interrupts += 1
        self.vcpu_ioctl(abi.KVM_NMI, action="injecting an NMI")

    # ------------------------------------------------------------------
    # Statistics
    # ------------------------------------------------------------------
    def statistics(self) -> dict[str, int]:
        """The statistics as a dict; cycles estimated from host time if uncounted."""
        values = self.stats.as_dict()
        if self.counters.cycles is None:
            values["num_cycles"] = int(
                self.stats.host_ns_in_guest * self.config.host_freq / 1e9 * self.config.host_factor
            )
        return values

    def reset_statistics(self) -> None:
        self.stats.reset()
