"""A local APIC per CPU, modelled in user space (no in-kernel irqchip).

Interrupts work as in gem5's x86 KVM CPU: this model decides what is
pending, and the CPU (:class:`kvm_x86.interrupts.InterruptDelivery`) injects
it with ``KVM_INTERRUPT`` or ``KVM_NMI`` before it enters the guest.

Where the APIC sits
    Every CPU sees its own APIC at :data:`APIC_BASE` (0xFEE00000, one 4 KiB
    page), as on a PC and as in gem5, where each CPU routes accesses to that
    page to its own APIC.  Here one bus device, :class:`ApicBus`, holds the
    page and passes each access to the APIC of the CPU being served: the
    event queue runs one CPU at a time, and each CPU names itself to the
    device when its tick starts (``ApicBus.current``), so the device never
    has to ask.  The IA32_APIC_BASE MSR reads 0xFEE00000 with the enable
    bit, and the BSP bit on the boot CPU; a guest that moves its APIC
    elsewhere is not followed (KVM handles that MSR without an exit).

Registers (xAPIC, memory-mapped; 32-bit accesses at 16-byte boundaries)
    ID (0x20, read-only), version (0x30: 0x00050014, six LVT entries), TPR
    (0x80), APR (0x90, reads 0), PPR (0xA0), EOI (0xB0), LDR (0xD0), DFR
    (0xE0), SVR (0xF0, bit 8 enables the APIC in software), ISR, TMR, IRR
    (0x100, 0x180, 0x200, eight words each), ESR (0x280), ICR low/high
    (0x300, 0x310), the LVT entries timer, thermal, performance counter,
    LINT0, LINT1 and error (0x320-0x370), timer initial count (0x380),
    current count (0x390) and divide configuration (0x3E0).  Thermal,
    performance, LINT0, LINT1 and error are plain registers: nothing raises
    them.  Other offsets read 0; a write there, or of another size, sets the
    ESR's illegal-register bit.

Delivery (ICR)
    Fixed and lowest-priority (delivered like fixed, to the lowest matching
    APIC id), NMI, INIT (a level de-assert INIT is ignored) and STARTUP; to
    the APIC id of ICR high bits 24-31 in physical mode (0xFF: all), to a
    flat or cluster logical destination in logical mode, or by the self,
    all and all-but-self shorthands.  SMI and ExtINT are not modelled: they
    set the ESR's send-illegal-vector bit and go nowhere.  A fixed interrupt
    to a software-disabled APIC is dropped (as KVM's own APIC does); NMI,
    INIT and STARTUP are always accepted.  Delivery is immediate: the ICR's
    delivery-status bit always reads idle.

Timer
    One-shot and periodic modes of the LVT timer, counting at
    :data:`TIMER_FREQUENCY` (1 GHz, the rate of KVM's in-kernel APIC, so one
    count is 1 ns: 1000 ticks) divided by the divide configuration.  Expiry
    is an event on the machine's queue; a periodic timer keeps its phase
    (each expiry is the last one plus the period).  TSC-deadline mode is not
    modelled: the timer does not run in it.  A timer that fires while its
    vector is still in the IRR merges with it, as on hardware; the model
    counts those in ``stats["coalesced"]``.

Checkpoints
    :meth:`ApicBus.serialize` holds every APIC: registers, IRR/ISR/TMR,
    pending NMI/INIT/STARTUP, the wait-for-STARTUP state, statistics and the
    timer as its remaining ticks together with the tick it was saved at; a
    restore schedules the expiry at that same absolute tick.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol

from kvmbase.errors import ConfigurationError
from kvmbase.sim.bus import Device
from kvmbase.sim.eventq import TICKS_PER_SECOND, Event, EventQueue

if TYPE_CHECKING:
    from kvmbase.machine import Machine

#: where every CPU sees its local APIC
APIC_BASE: Final = 0xFEE00000
#: the size of the register page
APIC_SIZE: Final = 0x1000
#: IA32_APIC_BASE bits
APIC_BASE_BSP: Final = 1 << 8
APIC_BASE_ENABLE: Final = 1 << 11
#: the timer's input clock before division (KVM's in-kernel APIC uses 1 GHz)
TIMER_FREQUENCY: Final = 1_000_000_000
#: the bus device's name (and its key in checkpoints)
DEVICE_NAME: Final = "local_apic"

APIC_VERSION: Final = 0x00050014  # version 0x14, max LVT entry 5

# register offsets
REG_ID: Final = 0x20
REG_VERSION: Final = 0x30
REG_TPR: Final = 0x80
REG_APR: Final = 0x90
REG_PPR: Final = 0xA0
REG_EOI: Final = 0xB0
REG_LDR: Final = 0xD0
REG_DFR: Final = 0xE0
REG_SVR: Final = 0xF0
REG_ISR: Final = 0x100
REG_TMR: Final = 0x180
REG_IRR: Final = 0x200
REG_ESR: Final = 0x280
REG_ICR_LOW: Final = 0x300
REG_ICR_HIGH: Final = 0x310
REG_LVT_TIMER: Final = 0x320
REG_LVT_THERMAL: Final = 0x330
REG_LVT_PERF: Final = 0x340
REG_LVT_LINT0: Final = 0x350
REG_LVT_LINT1: Final = 0x360
REG_LVT_ERROR: Final = 0x370
REG_TIMER_INITIAL: Final = 0x380
REG_TIMER_CURRENT: Final = 0x390
REG_TIMER_DIVIDE: Final = 0x3E0

LVT_NAMES: Final = {
    REG_LVT_TIMER: "timer",
    REG_LVT_THERMAL: "thermal",
    REG_LVT_PERF: "perf",
    REG_LVT_LINT0: "lint0",
    REG_LVT_LINT1: "lint1",
    REG_LVT_ERROR: "error",
}
LVT_MASKED: Final = 1 << 16
LVT_TIMER_MODE_SHIFT: Final = 17
TIMER_ONE_SHOT: Final = 0
TIMER_PERIODIC: Final = 1
SVR_ENABLE: Final = 1 << 8
ICR_LEVEL_ASSERT: Final = 1 << 14
ICR_LEVEL_TRIGGER: Final = 1 << 15
ICR_LOGICAL: Final = 1 << 11
ESR_SEND_ILLEGAL_VECTOR: Final = 1 << 5
ESR_RECEIVE_ILLEGAL_VECTOR: Final = 1 << 6
ESR_ILLEGAL_REGISTER: Final = 1 << 7
# writable bits of each LVT entry: vector, delivery mode, polarity, trigger,
# mask, timer mode
_LVT_WRITABLE: Final = {
    REG_LVT_TIMER: 0x600FF,
    REG_LVT_THERMAL: 0x107FF,
    REG_LVT_PERF: 0x107FF,
    REG_LVT_LINT0: 0x1A7FF,
    REG_LVT_LINT1: 0x1A7FF,
    REG_LVT_ERROR: 0x100FF,
}


class DeliveryMode(enum.IntEnum):
    """ICR bits 8-10."""

    FIXED = 0
    LOWEST_PRIORITY = 1
    SMI = 2
    NMI = 4
    INIT = 5
    STARTUP = 6
    EXTINT = 7


class Shorthand(enum.IntEnum):
    """ICR bits 18-19."""

    NONE = 0
    SELF = 1
    ALL = 2
    ALL_BUT_SELF = 3


class InterruptSink(Protocol):
    """What an APIC needs from its CPU: to hear of new events (and wake it)."""

    def apic_event(self) -> None:
        """The APIC holds something new for the CPU."""


def _divisor(divide_config: int) -> int:
    """The timer divisor of a divide configuration register (SDM 10.5.4)."""
    code = (divide_config & 0b11) | ((divide_config & 0b1000) >> 1)
    return 1 if code == 0b111 else 2 << code


def _word(bits: int, index: int) -> int:
    return (bits >> (32 * index)) & 0xFFFFFFFF


def _highest(bits: int) -> int:
    return bits.bit_length() - 1


STAT_NAMES: Final = (
    "raised",  # fixed interrupts accepted into the IRR
    "coalesced",  # ... of them, merged with the same vector already there
    "dropped",  # fixed interrupts refused (APIC disabled, vector < 16)
    "delivered",  # fixed interrupts injected into the CPU (IRR -> ISR)
    "eois",  # EOI writes that retired an in-service vector
    "nmis_received",
    "nmis_delivered",
    "inits",
    "startups",
    "startups_ignored",  # not waiting for STARTUP: ignored, as on hardware
    "timer_fires",
    "ipis_sent",
    "latency_ticks_total",  # raise -> injection, simulated time
    "latency_ticks_max",
    "latency_host_ns_total",  # raise -> injection, host time
    "latency_host_ns_max",
)


class LocalApic:
    """One CPU's local APIC: registers, pending events and timer."""

    def __init__(
        self,
        apic_id: int,
        event_queue: EventQueue,
        *,
        frequency: int = TIMER_FREQUENCY,
        name: str | None = None,
    ) -> None:
        if not 0 <= apic_id <= 0xFE:
            raise ConfigurationError(f"APIC id {apic_id} is out of range 0..254")
        self.apic_id = apic_id
        self.name = name if name is not None else f"apic{apic_id}"
        self.event_queue = event_queue
        #: ticks per timer count before the divide configuration
        self.count_period = max(1, TICKS_PER_SECOND // frequency)
        #: the CPU told of new events; set by ``InterruptDelivery.attach_apic``
        self.sink: InterruptSink | None = None
        #: the device routing ICR messages to other APICs
        self.bus: ApicBus | None = None
        self._timer_event = Event(self._timer_expired, f"{self.name}.timer")
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        # vector -> (tick, host ns) when it was raised, for latency figures
        self._raised_at: dict[int, tuple[int, int]] = {}
        #: True while the APIC holds something for the CPU to act on
        self.pending = False
        #: after INIT, until a STARTUP (and the state of an AP at power-on)
        self.wait_for_startup = False
        self.reset()

    # ------------------------------------------------------------------
    # State
    # ------------------------------------------------------------------
    def reset(self) -> None:
        """Power-on / INIT state: everything but the APIC id (SDM 10.4.7.3)."""
        self.tpr = 0
        self.ldr = 0
        self.dfr = 0xFFFFFFFF
        self.svr = 0xFF
        self.esr = 0
        self._esr_pending = 0
        self.icr_low = 0
        self.icr_high = 0
        self.irr = 0
        self.isr = 0
        self.tmr = 0
        self.lvt = dict.fromkeys(LVT_NAMES, LVT_MASKED)
        self.initial_count = 0
        self.divide_config = 0
        #: absolute tick of the next timer expiry (None: stopped)
        self.timer_expiry: int | None = None
        self._stop_timer()
        self.nmi_pending = False
        self.init_pending = False
        self.startup_vector: int | None = None
        self._raised_at.clear()
        self._update_pending()

    @property
    def software_enabled(self) -> bool:
        return bool(self.svr & SVR_ENABLE)

    @property
    def ppr(self) -> int:
        """The processor priority: TPR or the highest in-service class."""
        isr_class = (_highest(self.isr) & 0xF0) if self.isr else 0
        return self.tpr if (self.tpr & 0xF0) >= isr_class else isr_class

    def highest_deliverable(self) -> int:
        """The IRR vector the CPU may take now, or -1 (priority and PPR)."""
        irr = self.irr
        if not irr:
            return -1
        vector = _highest(irr)
        if (vector & 0xF0) <= (self.ppr & 0xF0):
            return -1
        return vector

    def _update_pending(self) -> None:
        self.pending = bool(
            self.nmi_pending
            or self.init_pending
            or self.startup_vector is not None
            or self.highest_deliverable() >= 0
        )

    def _notify(self) -> None:
        self._update_pending()
        sink = self.sink
        if sink is not None and self.pending:
            sink.apic_event()

    # ------------------------------------------------------------------
    # Events raised at this APIC
    # ------------------------------------------------------------------
    def raise_interrupt(self, vector: int, *, level: bool = False) -> bool:
        """Accept a fixed interrupt into the IRR; False if it was refused."""
        if vector < 16:
            self.esr_pending(ESR_RECEIVE_ILLEGAL_VECTOR)
            self.stats["dropped"] += 1
            return False
        if not self.software_enabled:
            self.stats["dropped"] += 1
            return False
        bit = 1 << vector
        self.stats["raised"] += 1
        if self.irr & bit:
            self.stats["coalesced"] += 1
            return True
        self.irr |= bit
        if level:
            self.tmr |= bit
        else:
            self.tmr &= ~bit
        self._raised_at[vector] = (self.event_queue.cur_tick, time.monotonic_ns())
        self._notify()
        return True

    def raise_nmi(self) -> None:
        """An NMI for the CPU; NMIs raised before it is injected merge."""
        self.stats["nmis_received"] += 1
        self.nmi_pending = True
        self._notify()

    def raise_init(self) -> None:
        self.stats["inits"] += 1
        self.init_pending = True
        self.startup_vector = None
        self._notify()

    def raise_startup(self, vector: int) -> None:
        """A STARTUP; ignored unless the CPU waits for one (or an INIT is due)."""
        if not (self.wait_for_startup or self.init_pending):
            self.stats["startups_ignored"] += 1
            return
        self.stats["startups"] += 1
        self.startup_vector = vector
        self._notify()

    def esr_pending(self, bits: int) -> None:
        """Note an error; the guest sees it in the ESR after its next ESR write."""
        self._esr_pending |= bits

    # ------------------------------------------------------------------
    # The CPU takes events (called by InterruptDelivery)
    # ------------------------------------------------------------------
    def acknowledge(self, vector: int) -> None:
        """The CPU injected ``vector``: move it from the IRR to the ISR."""
        bit = 1 << vector
        self.irr &= ~bit
        self.isr |= bit
        self.stats["delivered"] += 1
        raised = self._raised_at.pop(vector, None)
        if raised is not None:
            ticks = self.event_queue.cur_tick - raised[0]
            host_ns = time.monotonic_ns() - raised[1]
            stats = self.stats
            stats["latency_ticks_total"] += ticks
            stats["latency_host_ns_total"] += host_ns
            if ticks > stats["latency_ticks_max"]:
                stats["latency_ticks_max"] = ticks
            if host_ns > stats["latency_host_ns_max"]:
                stats["latency_host_ns_max"] = host_ns
        self._update_pending()

    def take_nmi(self) -> None:
        self.nmi_pending = False
        self.stats["nmis_delivered"] += 1
        self._update_pending()

    def take_init(self) -> None:
        """The CPU acts on INIT: the APIC resets and waits for STARTUP."""
        # A STARTUP already here came after the INIT (raise_init clears it).
        stats, startup = dict(self.stats), self.startup_vector
        self.reset()
        self.stats, self.startup_vector = stats, startup
        self.wait_for_startup = True
        self._update_pending()

    def take_startup(self) -> int | None:
        """The STARTUP vector to act on, if the CPU waits for one."""
        vector = self.startup_vector
        self.startup_vector = None
        if vector is not None and self.wait_for_startup:
            self.wait_for_startup = False
        else:
            vector = None
        self._update_pending()
        return vector

    def eoi(self) -> None:
        """End of interrupt: retire the highest in-service vector."""
        if self.isr:
            self.isr &= ~(1 << _highest(self.isr))
            self.stats["eois"] += 1
        self._notify()

    # ------------------------------------------------------------------
    # Timer
    # ------------------------------------------------------------------
    @property
    def timer_mode(self) -> int:
        return (self.lvt[REG_LVT_TIMER] >> LVT_TIMER_MODE_SHIFT) & 0b11

    @property
    def timer_period(self) -> int:
        """Ticks from a load of the initial count to expiry."""
        return self.initial_count * _divisor(self.divide_config) * self.count_period

    def current_count(self) -> int:
        expiry = self.timer_expiry
        if expiry is None:
            return 0
        remaining = expiry - self.event_queue.cur_tick
        if remaining <= 0:
            return 0
        per_count = _divisor(self.divide_config) * self.count_period
        return min(self.initial_count, -(-remaining // per_count))

    def _stop_timer(self) -> None:
        if self._timer_event.scheduled:
            self.event_queue.deschedule(self._timer_event)
        self.timer_expiry = None

    def _start_timer(self) -> None:
        queue = self.event_queue
        self._stop_timer()
        if self.initial_count == 0 or self.timer_mode not in (TIMER_ONE_SHOT, TIMER_PERIODIC):
            return
        self.timer_expiry = queue.cur_tick + self.timer_period
        queue.schedule(self._timer_event, self.timer_expiry)

    def _timer_expired(self) -> None:
        self.stats["timer_fires"] += 1
        expiry = self.timer_expiry
        if self.timer_mode == TIMER_PERIODIC and expiry is not None:
            self.timer_expiry = expiry + self.timer_period
            self.event_queue.schedule(self._timer_event, self.timer_expiry)
        else:
            self.timer_expiry = None
        entry = self.lvt[REG_LVT_TIMER]
        if not entry & LVT_MASKED:
            self.raise_interrupt(entry & 0xFF)

    # ------------------------------------------------------------------
    # Register access
    # ------------------------------------------------------------------
    def read_register(self, offset: int) -> int:
        """The 32-bit register at ``offset`` (a multiple of 16)."""
        if offset == REG_ID:
            return self.apic_id << 24
        if offset == REG_VERSION:
            return APIC_VERSION
        if offset == REG_TPR:
            return self.tpr
        if offset == REG_PPR:
            return self.ppr
        if offset == REG_LDR:
            return self.ldr
        if offset == REG_DFR:
            return self.dfr
        if offset == REG_SVR:
            return self.svr
        if REG_ISR <= offset < REG_ISR + 0x80:
            return _word(self.isr, (offset - REG_ISR) >> 4)
        if REG_TMR <= offset < REG_TMR + 0x80:
            return _word(self.tmr, (offset - REG_TMR) >> 4)
        if REG_IRR <= offset < REG_IRR + 0x80:
            return _word(self.irr, (offset - REG_IRR) >> 4)
        if offset == REG_ESR:
            return self.esr
        if offset == REG_ICR_LOW:
            return self.icr_low
        if offset == REG_ICR_HIGH:
            return self.icr_high
        if offset in LVT_NAMES:
            return self.lvt[offset]
        if offset == REG_TIMER_INITIAL:
            return self.initial_count
        if offset == REG_TIMER_CURRENT:
            return self.current_count()
        if offset == REG_TIMER_DIVIDE:
            return self.divide_config
        return 0

    def write_register(self, offset: int, value: int) -> None:
        """Write the 32-bit register at ``offset`` (a multiple of 16)."""
        value &= 0xFFFFFFFF
        if offset == REG_EOI:
            self.eoi()
        elif offset == REG_TPR:
            self.tpr = value & 0xFF
            self._notify()
        elif offset == REG_LDR:
            self.ldr = value & 0xFF000000
        elif offset == REG_DFR:
            self.dfr = value | 0x0FFFFFFF
        elif offset == REG_SVR:
            self.svr = value & 0x13FF
            if not self.software_enabled:
                # Software disable masks every LVT entry (SDM 10.4.7.2).
                for register in self.lvt:
                    self.lvt[register] |= LVT_MASKED
            self._notify()
        elif offset == REG_ESR:
            # A write latches the errors seen since the last one.
            self.esr, self._esr_pending = self._esr_pending, 0
        elif offset == REG_ICR_HIGH:
            self.icr_high = value & 0xFF000000
        elif offset == REG_ICR_LOW:
            self.icr_low = value & ~(1 << 12)  # delivery status: always idle
            if self.bus is not None:
                self.bus.send_ipi(self, self.icr_low, self.icr_high >> 24)
        elif offset in LVT_NAMES:
            if not self.software_enabled:
                value |= LVT_MASKED
            self.lvt[offset] = value & _LVT_WRITABLE[offset]
            if offset == REG_LVT_TIMER and self.timer_mode not in (TIMER_ONE_SHOT, TIMER_PERIODIC):
                self._stop_timer()  # TSC-deadline mode is not modelled
        elif offset == REG_TIMER_INITIAL:
            self.initial_count = value
            self._start_timer()
        elif offset == REG_TIMER_DIVIDE:
            self.divide_config = value & 0b1011
        else:
            self.esr_pending(ESR_ILLEGAL_REGISTER)

    def read(self, offset: int, size: int) -> int:
        """A guest read of ``size`` bytes at ``offset`` in the page."""
        aligned = offset & ~0xF
        shift = (offset & 0xF) * 8
        if shift >= 32:
            return 0
        return (self.read_register(aligned) >> shift) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        """A guest write; only 32-bit writes at register boundaries count."""
        if size != 4 or offset & 0xF:
            self.esr_pending(ESR_ILLEGAL_REGISTER)
            return
        self.write_register(offset, value)

    # ------------------------------------------------------------------
    # Checkpoints
    # ------------------------------------------------------------------
    def serialize(self) -> dict[str, Any]:
        now = self.event_queue.cur_tick
        return {
            "apic_id": self.apic_id,
            "tpr": self.tpr,
            "ldr": self.ldr,
            "dfr": self.dfr,
            "svr": self.svr,
            "esr": self.esr,
            "esr_pending": self._esr_pending,
            "icr_low": self.icr_low,
            "icr_high": self.icr_high,
            "irr": f"{self.irr:064x}",
            "isr": f"{self.isr:064x}",
            "tmr": f"{self.tmr:064x}",
            "lvt": {LVT_NAMES[reg]: value for reg, value in self.lvt.items()},
            "initial_count": self.initial_count,
            "divide_config": self.divide_config,
            "tick": now,
            "timer_remaining": None if self.timer_expiry is None else self.timer_expiry - now,
            "nmi_pending": self.nmi_pending,
            "init_pending": self.init_pending,
            "startup_vector": self.startup_vector,
            "wait_for_startup": self.wait_for_startup,
            "raised_at": {str(vector): tick for vector, (tick, _) in self._raised_at.items()},
            "stats": dict(self.stats),
        }

    def unserialize(self, state: dict[str, Any]) -> None:
        if int(state["apic_id"]) != self.apic_id:
            raise ConfigurationError(
                f"{self.name}: checkpoint holds APIC id {state['apic_id']}, this is {self.apic_id}"
            )
        self.reset()
        self.tpr = int(state["tpr"])
        self.ldr = int(state["ldr"])
        self.dfr = int(state["dfr"])
        self.svr = int(state["svr"])
        self.esr = int(state["esr"])
        self._esr_pending = int(state["esr_pending"])
        self.icr_low = int(state["icr_low"])
        self.icr_high = int(state["icr_high"])
        self.irr = int(state["irr"], 16)
        self.isr = int(state["isr"], 16)
        self.tmr = int(state["tmr"], 16)
        by_name = {name: reg for reg, name in LVT_NAMES.items()}
        self.lvt = {by_name[name]: int(value) for name, value in state["lvt"].items()}
        self.initial_count = int(state["initial_count"])
        self.divide_config = int(state["divide_config"])
        self.nmi_pending = bool(state["nmi_pending"])
        self.init_pending = bool(state["init_pending"])
        startup = state["startup_vector"]
        self.startup_vector = None if startup is None else int(startup)
        self.wait_for_startup = bool(state["wait_for_startup"])
        self.stats = {name: int(state["stats"].get(name, 0)) for name in STAT_NAMES}
        host_now = time.monotonic_ns()
        self._raised_at = {
            int(vector): (int(tick), host_now) for vector, tick in state["raised_at"].items()
        }
        remaining = state["timer_remaining"]
        if remaining is not None:
            # The same absolute tick as before: a restore sets the queue's
            # time to the checkpoint's tick.
            queue = self.event_queue
            self.timer_expiry = max(int(state["tick"]) + int(remaining), queue.cur_tick)
            queue.schedule(self._timer_event, self.timer_expiry)
        self._update_pending()


class ApicBus(Device):
    """The APIC page at :data:`APIC_BASE`, shared by every CPU.

    Each access goes to the APIC of the CPU being served (:attr:`current`,
    set by the CPU when its tick starts); ICR messages go from here to their
    destination APICs.
    """

    def __init__(self, name: str = DEVICE_NAME) -> None:
        super().__init__(name)
        #: APICs by id
        self.apics: dict[int, LocalApic] = {}
        #: the APIC of the CPU whose exit is being served
        self.current: LocalApic | None = None

    def add(self, apic: LocalApic) -> None:
        if apic.apic_id in self.apics:
            raise ConfigurationError(f"two local APICs have id {apic.apic_id}")
        self.apics[apic.apic_id] = apic
        apic.bus = self
        if self.current is None:
            self.current = apic

    def _apic(self) -> LocalApic:
        current = self.current
        if current is None:
            raise ConfigurationError("local APIC accessed, but no CPU has one")
        return current

    def read(self, offset: int, size: int) -> int:
        return self._apic().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        self._apic().write(offset, size, value)

    # -- inter-processor interrupts -----------------------------------
    def destinations(self, source: LocalApic, icr_low: int, destination: int) -> list[LocalApic]:
        """The APICs an ICR message reaches, in APIC id order."""
        shorthand = (icr_low >> 18) & 0b11
        apics = [self.apics[key] for key in sorted(self.apics)]
        if shorthand == Shorthand.SELF:
            return [source]
        if shorthand == Shorthand.ALL:
            return apics
        if shorthand == Shorthand.ALL_BUT_SELF:
            return [apic for apic in apics if apic is not source]
        if not icr_low & ICR_LOGICAL:
            if destination == 0xFF:
                return apics
            return [apic for apic in apics if apic.apic_id == destination]
        return [apic for apic in apics if _logical_match(apic, destination)]

    def send_ipi(self, source: LocalApic, icr_low: int, destination: int) -> None:
        """Deliver the message ``source`` wrote to its ICR."""
        mode = (icr_low >> 8) & 0b111
        vector = icr_low & 0xFF
        targets = self.destinations(source, icr_low, destination)
        source.stats["ipis_sent"] += 1
        if mode in (DeliveryMode.SMI, DeliveryMode.EXTINT, 3):
            source.esr_pending(ESR_SEND_ILLEGAL_VECTOR)
            return
        if mode == DeliveryMode.FIXED or mode == DeliveryMode.LOWEST_PRIORITY:
            if vector < 16:
                source.esr_pending(ESR_SEND_ILLEGAL_VECTOR)
                return
            if mode == DeliveryMode.LOWEST_PRIORITY:
                targets = targets[:1]
            level = bool(icr_low & ICR_LEVEL_TRIGGER)
            for apic in targets:
                apic.raise_interrupt(vector, level=level)
        elif mode == DeliveryMode.NMI:
            for apic in targets:
                apic.raise_nmi()
        elif mode == DeliveryMode.INIT:
            if icr_low & ICR_LEVEL_TRIGGER and not icr_low & ICR_LEVEL_ASSERT:
                return  # INIT level de-assert: no effect (SDM 10.6.1)
            for apic in targets:
                apic.raise_init()
        elif mode == DeliveryMode.STARTUP:
            for apic in targets:
                apic.raise_startup(vector)

    # -- checkpoints ----------------------------------------------------
    def serialize(self) -> dict[str, Any]:
        return {str(apic_id): apic.serialize() for apic_id, apic in self.apics.items()}

    def unserialize(self, state: dict[str, Any]) -> None:
        saved = sorted(int(key) for key in state)
        if saved != sorted(self.apics):
            raise ConfigurationError(
                f"{self.name}: checkpoint has APIC ids {saved}, machine has {sorted(self.apics)}"
            )
        for apic_id, apic in self.apics.items():
            apic.unserialize(state[str(apic_id)])


def _logical_match(apic: LocalApic, destination: int) -> bool:
    logical_id = apic.ldr >> 24
    if (apic.dfr >> 28) == 0xF:  # flat model
        return bool(logical_id & destination)
    # cluster model: cluster in the high nibble, members in the low
    return (logical_id >> 4) == (destination >> 4) and bool(logical_id & destination & 0xF)


def find_apic_bus(machine: Machine) -> ApicBus | None:
    """The machine's APIC device, if it has one."""
    device = machine.devices.get(DEVICE_NAME)
    return device if isinstance(device, ApicBus) else None


def setup_apics(machine: Machine, *, frequency: int = TIMER_FREQUENCY) -> None:
    """Give every running CPU of ``machine`` a local APIC (id = vCPU id).

    Puts the APIC page on the bus at :data:`APIC_BASE` (once) and sets each
    CPU's IA32_APIC_BASE (enable bit; BSP bit on the first CPU).  CPUs that
    have an APIC already keep it; switched-out spares get none (a spare takes
    the APIC of the CPU it takes over from).
    """
    from kvm_x86.interrupts import InterruptDelivery

    bus = find_apic_bus(machine)
    if bus is None:
        bus = ApicBus()
        machine.add_device(bus, APIC_BASE, APIC_SIZE)
    first = True
    for cpu in _running_cpus(machine.cpus):
        if not isinstance(cpu, InterruptDelivery):
            raise ConfigurationError(f"{cpu.name} cannot take interrupts from a local APIC")
        if cpu.local_apic is None:
            apic = LocalApic(
                cpu.vcpu_id, machine.system.event_queue, frequency=frequency,
                name=f"{cpu.name}.apic",
            )
            bus.add(apic)
            cpu.attach_apic(apic, bsp=first)
        first = False


def _running_cpus(cpus: Iterable[Any]) -> list[Any]:
    return [cpu for cpu in cpus if not cpu.switched_out]


def add_application_processor(
    machine: Machine, name: str, *, frequency: int = TIMER_FREQUENCY
) -> Any:
    """A further CPU in the same VM, with its APIC, waiting for STARTUP.

    Call after :func:`setup_apics`.  The CPU's thread is suspended and its
    APIC waits for STARTUP, as an application processor after the firmware's
    INIT: a STARTUP from another CPU (through the ICR) starts it.
    """
    from kvm_x86.interrupts import InterruptDelivery

    bus = find_apic_bus(machine)
    if bus is None:
        raise ConfigurationError("set up the boot CPU's APIC first (setup_apics)")
    cpu = machine.new_cpu(name)
    if not isinstance(cpu, InterruptDelivery):
        raise ConfigurationError(f"{cpu.name} cannot take interrupts from a local APIC")
    cpu.switched_out = False
    cpu.thread.suspend()
    apic = LocalApic(
        cpu.vcpu_id, machine.system.event_queue, frequency=frequency, name=f"{name}.apic"
    )
    apic.wait_for_startup = True
    bus.add(apic)
    cpu.attach_apic(apic, bsp=False)
    if machine.system.started:
        cpu.startup()
    return cpu
