"""Interrupts from the user-space local APIC (kvm_x86.apic), injected gem5 style.

Real guests on /dev/kvm (``guests/irq_*.S``, ``guests/apic_smp.S``): the APIC
timer into a CPL3 loop, an NMI through the ICR, hlt woken by the timer, the
interrupt window, TPR/PPR/ISR, and INIT + STARTUP between two CPUs of one
VM.  The guests count what they take; the APIC counts what it raised,
delivered and saw retired by EOI; both must agree exactly.  A few tests at
the end drive the model alone (no KVM).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from x86_machines import APIC_INCLUDES, build_guest, machine_config, machine_from, require_binutils

from kvm_x86.apic import (
    APIC_BASE,
    APIC_BASE_BSP,
    APIC_BASE_ENABLE,
    ApicBus,
    LocalApic,
    add_application_processor,
    find_apic_bus,
    setup_apics,
)
from kvmbase import Machine
from kvmbase.sim.bus import Device
from kvmbase.sim.eventq import EventQueue
from kvmbase.sim.thread_context import ThreadStatus

REPORT_PORT = 0xE0
HALTED = "all CPUs halted"
NS = 1000  # ticks


class Reports(Device):
    """Values the guest writes to ports 0xE0..0xE7, as (offset, value); with
    ``stop`` set, the run stops after the next one."""

    def __init__(self) -> None:
        super().__init__("reports")
        self.log: list[tuple[int, int]] = []
        self.stop: Callable[[], None] | None = None

    def write(self, offset: int, size: int, value: int) -> None:
        self.log.append((offset, value))
        if self.stop is not None:
            self.stop()
            self.stop = None

    def read(self, offset: int, size: int) -> int:
        return 0


def build(out: Path, source: str, **symbols: int) -> Path:
    name = "-".join([source.removesuffix(".S"), *(f"{k}{v}" for k, v in symbols.items())])
    return build_guest(source, out / f"{name}.bin", {"RING": 3, **symbols}, includes=APIC_INCLUDES)


@pytest.fixture(scope="module")
def guest_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_binutils()
    return tmp_path_factory.mktemp("irq-guests")


def make(machines: list[Machine], image: Path) -> tuple[Machine, Reports, ApicBus]:
    machine = machine_from(machines, machine_config(image))
    reports = Reports()
    machine.add_device(reports, machine.port_address(REPORT_PORT), 8)
    setup_apics(machine)
    bus = find_apic_bus(machine)
    assert bus is not None
    return machine, reports, bus


def stats(machine: Machine, name: str = "cpu0") -> dict[str, int]:
    return machine.statistics()[name]


# ---------------------------------------------------------------------------
# Real guests
# ---------------------------------------------------------------------------
@pytest.mark.kvm
@pytest.mark.parametrize(("divide", "initial"), [(0b0011, 12_500), (0b1011, 200_000)])
def test_periodic_timer_and_an_nmi_into_a_ring3_loop(
    guest_out: Path, machines: list[Machine], divide: int, initial: int
) -> None:
    """20 timer periods of 200 us (divide by 16 or by 1), then a self-NMI."""
    n_ticks = 20
    image = build(guest_out, "irq_timer.S", N_TICKS=n_ticks, INITIAL=initial, DIVIDE=divide)
    machine, reports, bus = make(machines, image)
    apic = bus.apics[0]
    assert machine.cpu.thread.regs["apic_base"] == APIC_BASE | APIC_BASE_ENABLE | APIC_BASE_BSP

    result = machine.run()

    assert result.cause == HALTED
    (count_port, current), (_, ticks), (_, nmis) = reports.log
    assert count_port == 4 and 0 < current < initial  # counting down at once
    s = apic.stats
    # What the guest took is what the APIC delivered and saw retired, and
    # every expiry was delivered or merged with one waiting in the IRR.
    # (An expiry merges only if the host held the vCPU back a whole period;
    # then one more may come after the stop: see irq_timer.S.)
    assert n_ticks <= ticks <= n_ticks + 1
    assert s["delivered"] == s["eois"] == ticks
    assert s["timer_fires"] == s["raised"] == s["delivered"] + s["coalesced"]
    assert s["dropped"] == 0
    assert nmis == 1
    assert (s["ipis_sent"], s["nmis_received"], s["nmis_delivered"]) == (1, 1, 1)
    assert stats(machine)["num_interrupts"] == ticks + 1
    assert (apic.irr, apic.isr, apic.timer_expiry, apic.esr) == (0, 0, None, 0)
    # 200 us per period, the phase kept: the expiries came on time
    assert result.tick >= s["timer_fires"] * 200_000 * NS


@pytest.mark.kvm
def test_hlt_sleeps_until_the_timer(guest_out: Path, machines: list[Machine]) -> None:
    """sti; hlt five times, each ended by a one-shot timer of 300 us."""
    n_wakes, initial = 5, 300_000
    machine, reports, bus = make(
        machines, build(guest_out, "irq_halt.S", N_WAKES=n_wakes, INITIAL=initial)
    )
    apic = bus.apics[0]
    result = machine.run()
    assert result.cause == HALTED
    assert reports.log == [(0, n_wakes)]
    s = stats(machine)
    assert s["num_halt"] == n_wakes + 1  # and the last hlt, interrupts off
    assert s["num_interrupts"] == n_wakes
    assert (apic.stats["timer_fires"], apic.stats["delivered"], apic.stats["eois"]) == (
        n_wakes,
        n_wakes,
        n_wakes,
    )
    # A sleeping CPU wakes at the very tick the timer fires.
    assert apic.stats["latency_ticks_max"] == 0
    assert result.tick >= n_wakes * initial * NS
    # While asleep no time ran in the guest: a few exits' worth, not 1.5 ms.
    assert s["host_ns_in_guest"] < n_wakes * initial


@pytest.mark.kvm
def test_interrupt_window_tpr_ppr_and_isr(guest_out: Path, machines: list[Machine]) -> None:
    machine, reports, bus = make(machines, build(guest_out, "irq_priority.S", RING=0))
    apic = bus.apics[0]
    assert machine.run().cause == HALTED
    assert [value for _, value in reports.log] == [
        0,  # sent with interrupts off: not taken
        1,  # taken once sti opened the window
        1 << 5,  # TPR 0x40: 0x45 waits in the IRR (word 2, bit 5)
        0x40,  # PPR = TPR
        1,  # not taken
        1 << 5,  # in the handler: 0x45 in service
        0x40,  # PPR = the in-service class
        2,  # TPR 0 let it in
    ]
    assert machine.cpu.irq_window_exits >= 1  # type: ignore[attr-defined]
    assert (apic.stats["delivered"], apic.stats["eois"], apic.stats["ipis_sent"]) == (2, 2, 2)
    assert (apic.irr, apic.isr, apic.tpr) == (0, 0, 0)


@pytest.mark.kvm
def test_init_and_startup_start_a_second_cpu(guest_out: Path, machines: list[Machine]) -> None:
    """The boot CPU starts CPU 1 with INIT, STARTUP, STARTUP; CPU 1 reads its
    APIC id through the shared APIC page and interrupts the boot CPU."""
    machine, reports, bus = make(machines, build(guest_out, "apic_smp.S", RING=0))
    ap = add_application_processor(machine, "cpu1")
    assert ap.thread.status is ThreadStatus.SUSPENDED
    assert ap.thread.regs["apic_base"] == APIC_BASE | APIC_BASE_ENABLE

    assert machine.run().cause == HALTED

    # started once, APIC id 1, one IPI taken by the boot CPU
    assert reports.log == [(0, 1), (0, 1), (0, 1)]
    boot, second = bus.apics[0], bus.apics[1]
    assert boot.stats["ipis_sent"] == 3  # INIT, STARTUP, STARTUP
    assert (second.stats["inits"], second.stats["startups"]) == (1, 1)
    assert second.stats["startups_ignored"] == 1  # the second STARTUP
    assert (boot.stats["delivered"], boot.stats["eois"]) == (1, 1)
    assert stats(machine, "cpu1")["num_interrupts"] == 2  # INIT and STARTUP
    assert stats(machine, "cpu0")["num_interrupts"] == 1
    # CPU 1 ran in 64-bit mode at CPL0 from 0x20000 and sleeps in ap_main
    tc: Any = ap.get_context()
    assert tc.segments["cs"].selector == 0x08 and tc.segments["cs"].l == 1
    assert tc.regs["rsp"] == 0x60000
    assert 0x100000 < tc.regs["rip"] < 0x101000
    assert ap.thread.status is ThreadStatus.SUSPENDED
    assert not second.wait_for_startup


@pytest.mark.kvm
def test_init_and_startup_wait_for_a_half_done_access(
    guest_out: Path, machines: list[Machine]
) -> None:
    """INIT and STARTUP reach a CPU stopped in the middle of a port write:
    the write completes first (a half entry), then the CPU restarts at the
    STARTUP page; KVM must not complete the old access on the new state."""
    machine, reports, bus = make(machines, build(guest_out, "irq_injected.S", RING=0))
    reports.stop = lambda: machine.stop("first report")
    assert machine.run().cause == "first report"
    # at 0x20000: mov $0x77, %al; out %al, $0xE2; hlt
    machine.system.write_memory(0x20000, bytes.fromhex("b077e6e2f4"))
    apic = bus.apics[0]
    apic.raise_init()
    apic.raise_startup(0x20)
    assert machine.run().cause == HALTED
    assert reports.log == [(0, 0x10), (2, 0x77)]
    cpu = machine.cpu
    assert cpu.read_register("rip") == 0x20005
    assert stats(machine)["num_vm_half_entries"] == 1
    assert stats(machine)["num_interrupts"] == 2
    assert (apic.stats["inits"], apic.stats["startups"]) == (1, 1)


# ---------------------------------------------------------------------------
# The model alone
# ---------------------------------------------------------------------------
def enabled_apic(queue: EventQueue, apic_id: int = 0) -> LocalApic:
    apic = LocalApic(apic_id, queue)
    apic.write(0xF0, 4, 0x1FF)
    return apic


def test_timer_divide_current_count_and_periodic_phase() -> None:
    queue = EventQueue()
    apic = enabled_apic(queue)
    apic.write(0x3E0, 4, 0b1010)  # divide by 128
    apic.write(0x320, 4, 0x40 | 1 << 17)  # periodic, vector 0x40
    apic.write(0x380, 4, 1000)
    period = 1000 * 128 * NS
    assert apic.timer_expiry == period
    queue.cur_tick = period // 4
    assert apic.read(0x390, 4) == 750
    fired = []
    for _ in range(3):
        queue.service_one()
        fired.append(queue.cur_tick)
        apic.acknowledge(0x40)
        apic.write(0xB0, 4, 0)
    assert fired == [period, 2 * period, 3 * period]
    assert apic.stats["timer_fires"] == 3 and apic.stats["eois"] == 3
    apic.write(0x380, 4, 0)  # stop
    assert queue.empty() and apic.read(0x390, 4) == 0


def test_priority_and_software_disable() -> None:
    queue = EventQueue()
    apic = enabled_apic(queue)
    apic.raise_interrupt(0x31)
    apic.raise_interrupt(0x52)
    assert apic.highest_deliverable() == 0x52
    apic.acknowledge(0x52)
    assert apic.read(0xA0, 4) == 0x50  # PPR: in-service class
    assert apic.highest_deliverable() == -1  # 0x31 is below it
    apic.write(0xB0, 4, 0)
    assert apic.highest_deliverable() == 0x31
    apic.write(0x80, 4, 0x30)  # TPR blocks class 3
    assert apic.highest_deliverable() == -1 and not apic.pending
    apic.write(0xF0, 4, 0xFF)  # software disable
    assert not apic.raise_interrupt(0x60)
    assert apic.stats["dropped"] == 1
    assert apic.read(0x320, 4) & (1 << 16)  # LVT masked
    apic.write(0x290, 4, 1)  # no register there
    apic.write(0x280, 4, 0)
    assert apic.read(0x280, 4) == 1 << 7  # illegal register address


def test_icr_destinations() -> None:
    queue = EventQueue()
    bus = ApicBus()
    apics = [enabled_apic(queue, apic_id) for apic_id in range(3)]
    for apic in apics:
        bus.add(apic)
    source = apics[0]
    assert bus.destinations(source, 0x0040, 2) == [apics[2]]  # physical
    assert bus.destinations(source, 0x0040, 0xFF) == apics  # broadcast
    assert bus.destinations(source, 1 << 18, 0) == [source]  # self
    assert bus.destinations(source, 3 << 18, 0) == apics[1:]  # all but self
    apics[1].write(0xD0, 4, 0x02 << 24)  # flat logical id bit 1
    apics[2].write(0xD0, 4, 0x04 << 24)
    assert bus.destinations(source, 1 << 11, 0x06) == apics[1:]
    source.write(0x310, 4, 2 << 24)
    source.write(0x300, 4, 0x4000 | 0x400)  # NMI to APIC 2
    assert apics[2].nmi_pending and not apics[1].nmi_pending
    apics[1].write(0x300, 4, 0x500 | 0x4000 | 1 << 18)  # INIT to self
    apics[1].write(0x300, 4, 0x620 | 0x4000 | 1 << 18)  # STARTUP 0x20
    assert apics[1].init_pending and apics[1].startup_vector == 0x20
    apics[1].take_init()
    assert apics[1].take_startup() == 0x20
    apics[1].raise_startup(0x30)  # not waiting any more: ignored
    assert apics[1].stats["startups_ignored"] == 1
