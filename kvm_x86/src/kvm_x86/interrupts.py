"""Interrupt delivery from a user-space local APIC into the vCPU (gem5 style).

:class:`InterruptDelivery` is a mixin of the x86 CPU.  Before each entry
into the guest it hands over what the CPU's :class:`~kvm_x86.apic.LocalApic`
holds:

- an INIT resets the thread to the INIT state (registers, segments,
  descriptor tables, control registers and EFER; x87/SSE state and MSRs are
  kept, as INIT keeps them), resets the APIC but for its id, drops pending
  vCPU events, and leaves the CPU waiting for STARTUP with its thread
  suspended;
- a STARTUP to a CPU that waits for one starts it at ``vector << 12``.  The
  x86 plugin runs 64-bit guests only, so instead of real mode with
  ``CS = vector << 8`` the CPU starts in the machine's flat long mode (the
  boot CPU's page tables, GDT, IDT and TSS from :mod:`kvm_x86.layout`), at
  CPL0, with RIP = ``vector << 12``, RSP = 0 and interrupts off: the start-up
  code sets its own stack.  A STARTUP to a CPU that does not wait for one is
  ignored, as on hardware (so INIT, STARTUP, STARTUP starts a CPU once);
- an NMI goes in with ``KVM_NMI`` at once (KVM holds it while NMIs are
  blocked);
- a fixed interrupt goes in with ``KVM_INTERRUPT`` when the last exit said
  KVM is ready for one (``ready_for_interrupt_injection``) and the guest has
  IF set; its vector moves from the IRR to the ISR.  Otherwise the CPU sets
  ``request_interrupt_window`` and KVM exits
  (``KVM_EXIT_IRQ_WINDOW_OPEN``) as soon as the guest can take one.  After
  the thread context was written into the vCPU the readiness KVM reported is
  stale (IF may have changed), so the CPU asks for a window instead.

Every delivery counts in ``stats.num_interrupts``.  ``hlt`` suspends the
thread unless an interrupt it can take is pending; a new event wakes it (a
maskable one only if IF was set at the ``hlt``).  Nothing here adds an
ioctl to an entry when the APIC holds nothing: the check is one attribute.

Draining (:meth:`InterruptDelivery.arch_is_drained`) reads the vCPU events:
the CPU is not drained while an exception, interrupt or NMI is injected or
pending in KVM but not yet taken by the guest.  :meth:`kvm_run_drain` then
runs the guest with an interrupt window requested (at most 1 ms, and not
past the next event) until it is; only then does a drained CPU finish
pending IO with a half entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from kvm_x86 import layout
from kvm_x86.apic import APIC_BASE, APIC_BASE_BSP, APIC_BASE_ENABLE, LocalApic
from kvm_x86.parts.events import VcpuEvents, no_events
from kvm_x86.thread_context import X86ThreadContext
from kvmbase.cpu import IDLE, RUNNING, RUNNING_SERVICE_COMPLETION, BaseKvmCPU
from kvmbase.errors import SimulationError
from kvmbase.sim.thread_context import ThreadStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kvm_x86.apic import ApicBus
    from kvm_x86.state import StatePart

#: the longest a drain runs the guest to let it take an injected event (1 ms)
DRAIN_RUN_TICKS: Final = 10**9
RFLAGS_IF: Final = 1 << 9
_SUSPENDED = ThreadStatus.SUSPENDED


class InterruptDelivery(BaseKvmCPU):
    """Injects what the CPU's local APIC holds; drains only when KVM holds
    no injected event.  Mix in before :class:`BaseKvmCPU`."""

    parts: list[StatePart]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: this CPU's local APIC (:func:`kvm_x86.apic.setup_apics` attaches it)
        self.local_apic: LocalApic | None = None
        self._apic_bus: ApicBus | None = None
        #: request_interrupt_window is set in kvm_run
        self._window_requested = False
        self._draining = False
        #: a maskable interrupt wakes the suspended thread (IF was set at hlt)
        self._wake_on_maskable = True
        self._events: VcpuEvents | None = None
        self._events_looked_up = False
        #: KVM_EXIT_IRQ_WINDOW_OPEN exits served
        self.irq_window_exits = 0
        # The next kvm_run in the MRO, bound once: super() per entry costs.
        self._next_kvm_run = super().kvm_run

    # ------------------------------------------------------------------
    # Set-up
    # ------------------------------------------------------------------
    def attach_apic(self, apic: LocalApic, *, bsp: bool = False) -> None:
        """Make ``apic`` this CPU's and point IA32_APIC_BASE at it."""
        self._bind_apic(apic)
        tc = self.get_context()
        tc.regs["apic_base"] = APIC_BASE | APIC_BASE_ENABLE | (APIC_BASE_BSP if bsp else 0)
        tc.mark_dirty()

    def _bind_apic(self, apic: LocalApic) -> None:
        self.local_apic = apic
        apic.sink = self
        self._apic_bus = apic.bus

    def _events_part(self) -> VcpuEvents | None:
        if not self._events_looked_up:
            found = [part for part in self.parts if isinstance(part, VcpuEvents)]
            self._events = found[0] if found else None
            # Only after start-up is the list cut to what the host supports.
            self._events_looked_up = self.vcpu_fd >= 0
        return self._events

    # ------------------------------------------------------------------
    # The run loop
    # ------------------------------------------------------------------
    def tick(self) -> None:
        # The APIC page serves the CPU being run (one at a time).
        bus = self._apic_bus
        if bus is not None:
            bus.current = self.local_apic
        super().tick()

    def kvm_run(self, ticks: int) -> int:
        """Deliver what the APIC holds, then enter (not on half entries)."""
        apic = self.local_apic
        if apic is not None and apic.pending and ticks:
            self.deliver_interrupts()
            if self.state is IDLE:
                return 0  # INIT, or still waiting for STARTUP: do not enter
        elif self._window_requested:
            self._run.request_interrupt_window = 0
            self._window_requested = False
        return self._next_kvm_run(ticks)

    def deliver_interrupts(self) -> None:
        """Hand the APIC's pending events to KVM (before an entry)."""
        apic = self.local_apic
        if apic is None:
            return
        if (apic.init_pending or apic.startup_vector is not None) and (
            self.state is RUNNING_SERVICE_COMPLETION
        ):
            # An IO access is half done: finish it (a half entry) before the
            # state changes under it, or KVM would complete it on the new one.
            self._next_kvm_run(0)
            self.kvm_state_dirty = True
            self.state = RUNNING
        if apic.init_pending:
            self._take_init(apic)
        if apic.startup_vector is not None:
            vector = apic.take_startup()
            if vector is not None:
                self._start_at(vector)
        if apic.wait_for_startup:
            # Nothing else reaches a CPU that waits for STARTUP.
            self.thread.suspend()
            return
        if apic.nmi_pending:
            apic.take_nmi()
            self.kvm_non_maskable_interrupt()
        vector = apic.highest_deliverable()
        run = self._run
        if vector < 0:
            if self._window_requested:
                run.request_interrupt_window = 0
                self._window_requested = False
            return
        if run.ready_for_interrupt_injection and run.if_flag:
            apic.acknowledge(vector)
            self.kvm_interrupt(vector)
            # KVM takes one at a time: if more wait, exit when IF is back.
            more = apic.highest_deliverable() >= 0
            run.request_interrupt_window = 1 if more else 0
            self._window_requested = more
        else:
            run.request_interrupt_window = 1
            self._window_requested = True

    def _take_init(self, apic: LocalApic) -> None:
        tc = self.get_context()
        assert isinstance(tc, X86ThreadContext)
        reset_to_init_state(tc)
        tc.mark_dirty()
        apic.take_init()
        self.stats.num_interrupts += 1

    def _start_at(self, vector: int) -> None:
        tc = self.get_context()
        assert isinstance(tc, X86ThreadContext)
        for name in tc.regs:
            if name not in ("apic_base",):
                tc.regs[name] = 0
        layout.set_long_mode_state(tc, entry=vector << 12, stack_top=0)
        tc.parts[VcpuEvents.name] = no_events()
        tc.mark_dirty()
        self.stats.num_interrupts += 1
        self._wake_on_maskable = True
        # The tick wrote the vCPU before this; write the new start now.
        self.sync_kvm_state()

    def sync_kvm_state(self) -> None:
        if not self.thread_context_dirty:
            return
        super().sync_kvm_state()
        if self.vcpu_fd >= 0:
            # KVM's readiness is from before the write (IF may differ now):
            # ask for an interrupt window rather than trust it.
            self._run.ready_for_interrupt_injection = 0

    # ------------------------------------------------------------------
    # Exits and wake-ups
    # ------------------------------------------------------------------
    def handle_irq_window_open_exit(self) -> int:
        """The guest can take an interrupt: the next entry delivers it."""
        self.irq_window_exits += 1
        return 0

    def handle_halt_exit(self) -> int:
        """``hlt``: sleep unless an interrupt the guest can take is pending."""
        if_flag = bool(self._run.if_flag)
        if self._wakes_for_pending(maskable=if_flag):
            return 0  # the next entry delivers it; hlt is over
        self._wake_on_maskable = if_flag
        return super().handle_halt_exit()

    def apic_event(self) -> None:
        """The APIC holds something new: wake the thread if it sleeps for it."""
        if (
            self._draining
            or self.switched_out
            or self.thread.status is not _SUSPENDED
            or not self._wakes_for_pending(maskable=self._wake_on_maskable)
        ):
            return
        self._wake_on_maskable = True
        self.wakeup()

    def _wakes_for_pending(self, *, maskable: bool) -> bool:
        """The APIC holds what ends a wait: INIT, STARTUP, an NMI or, when
        ``maskable`` (IF set), a fixed interrupt above the PPR."""
        apic = self.local_apic
        if apic is None or not apic.pending:
            return False
        if apic.init_pending or apic.startup_vector is not None:
            return True
        if apic.wait_for_startup:
            return False
        if apic.nmi_pending:
            return True
        return maskable and apic.highest_deliverable() >= 0

    # ------------------------------------------------------------------
    # Draining, switching, checkpoints
    # ------------------------------------------------------------------
    def arch_is_drained(self) -> bool:
        """False while KVM holds an injected or pending event not yet taken."""
        events = self._events_part()
        if events is None:
            return True  # without KVM_CAP_VCPU_EVENTS nothing can be seen
        return not events.pending()

    def kvm_run_drain(self) -> int:
        """Let the guest take what is injected (window requested), else finish IO."""
        state = self.state
        if state is not RUNNING_SERVICE_COMPLETION and state is not RUNNING:
            raise SimulationError(f"{self.name}: kvm_run_drain in state {state.value}")
        if self.arch_is_drained():
            return self._next_kvm_run(0)
        self._run.request_interrupt_window = 1
        self._window_requested = True
        queue = self._event_queue
        budget = min(DRAIN_RUN_TICKS, max(queue.next_stop() - queue.cur_tick, self.clock_period))
        return self._next_kvm_run(budget)

    def drain(self) -> bool:
        # A drained CPU must stay idle: events raised meanwhile wait.
        self._draining = True
        return super().drain()

    def drain_resume(self) -> None:
        super().drain_resume()
        self._draining = False
        self.apic_event()

    def take_over_from(self, other: BaseKvmCPU) -> None:
        """Take the thread and, as gem5 does, the local APIC."""
        super().take_over_from(other)
        self._run.ready_for_interrupt_injection = 0
        if isinstance(other, InterruptDelivery) and other.local_apic is not None:
            apic = other.local_apic
            other.local_apic = None
            other._apic_bus = None
            self._bind_apic(apic)
            self._wake_on_maskable = other._wake_on_maskable

    def unserialize_thread(self, state: Mapping[str, Any]) -> None:
        super().unserialize_thread(state)
        # A thread restored asleep in hlt wakes for a maskable interrupt
        # only if it slept with IF set.
        self._wake_on_maskable = bool(self.thread.regs.get("rflags", 0) & RFLAGS_IF)


def reset_to_init_state(tc: X86ThreadContext) -> None:
    """The registers INIT resets (SDM vol. 3 table 9-1): all but x87/SSE
    state, MSRs and IA32_APIC_BASE; pending events are dropped."""
    fresh = X86ThreadContext()
    apic_base = tc.regs["apic_base"]
    tc.regs.update(fresh.regs)
    tc.regs["apic_base"] = apic_base
    tc.regs["rip"] = 0xFFF0
    tc.segments = fresh.segments
    tc.gdt = fresh.gdt
    tc.idt = fresh.idt
    tc.interrupt_bitmap = [0, 0, 0, 0]
    tc.parts[VcpuEvents.name] = no_events()
