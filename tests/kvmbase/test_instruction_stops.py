"""Stopping after a number of guest instructions (``schedule_instruction_stop``).

The scheduling logic runs against a fake counter, first alone and then
inside real runs of a real guest; the real counter is tested where the host
has one, and its refusal where it has none (this project's hosts).
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import skip_host_lacks
from x86_machines import build_guest, machine_config, require_binutils

from kvmbase import BaseKvmCPU, Machine
from kvmbase.errors import KvmCapabilityError
from kvmbase.perf import (
    InstructionEvent,
    InstructionEvents,
    probe_guest_counters,
)
from kvmbase.sim.bus import Device

TSC_MMIO = 0xD0000000


class FakeCounter:
    """Counts ``step`` instructions per guest run.

    Alone, each read but the opening one stands for a run.  Given a CPU,
    a run is what moved the CPU's time in the guest since the last read.
    """

    def __init__(self, step: int, cpu: BaseKvmCPU | None = None) -> None:
        self.step = step
        self.cpu = cpu
        self.value = 0
        self.reads = 0
        self.periods: list[int] = []
        self.closed = False
        self._seen_ns = cpu.stats.host_ns_in_guest if cpu is not None else 0

    def read(self) -> int:
        if self.cpu is None:
            ran = self.reads > 0
        else:
            ran = self.cpu.stats.host_ns_in_guest != self._seen_ns
            self._seen_ns = self.cpu.stats.host_ns_in_guest
        if ran:
            self.value += self.step
        self.reads += 1
        return self.value

    def arm(self, period: int) -> None:
        self.periods.append(period)

    def close(self) -> None:
        self.closed = True


def run_once(events: InstructionEvents) -> int:
    """One guest run as the CPU does it: arm, (run), count and fire."""
    events.before_entry()
    return events.after_exit()


# -- the logic, with no KVM ---------------------------------------------------
def test_the_counter_is_armed_with_the_distance_to_the_next_event() -> None:
    counter = FakeCounter(step=300)
    events = InstructionEvents(lambda: counter)
    fired: list[int] = []
    events.schedule(1000, lambda: fired.append(events.count))

    assert events.next_period() == 1000
    for _ in range(3):
        assert run_once(events) == 300
    assert counter.periods == [1000, 700, 400]
    assert fired == []
    run_once(events)  # armed with 100, runs 300 (the skid of a real counter)
    assert counter.periods[-1] == 100
    assert fired == [1200]
    assert not events.pending
    assert events.next_period() == 0


def test_an_event_fires_within_its_tolerance_before_the_count() -> None:
    counter = FakeCounter(step=100)
    events = InstructionEvents(lambda: counter)
    early = events.schedule(1050, lambda: None, tolerance=60)
    exact = events.schedule(1050, lambda: None)
    assert events.next_period() == 990  # 1050 - 60
    while early.fired_at is None:
        run_once(events)
    assert early.fired_at == 1000  # 1000 >= 1050 - 60
    assert exact.fired_at is None
    assert events.next_period() == 50
    run_once(events)
    assert exact.fired_at == 1100


def test_events_fire_in_count_order_and_a_cancelled_one_never() -> None:
    counter = FakeCounter(step=500)
    events = InstructionEvents(lambda: counter)
    order: list[str] = []
    events.schedule(900, lambda: order.append("c"))
    dropped = events.schedule(100, lambda: order.append("dropped"))
    events.schedule(400, lambda: order.append("a"))
    events.schedule(400, lambda: order.append("b"))  # same count: scheduled order
    events.cancel(dropped)
    assert events.next_period() == 400
    run_once(events)
    assert order == ["a", "b"]
    run_once(events)
    assert order == ["a", "b", "c"]


def test_a_run_that_counts_nothing_keeps_the_armed_period() -> None:
    counter = FakeCounter(step=0)
    events = InstructionEvents(lambda: counter)
    events.schedule(800, lambda: None)
    run_once(events)
    run_once(events)
    assert counter.periods == [800]
    events.disarm()
    assert counter.periods == [800, 0]
    events.disarm()
    assert counter.periods == [800, 0]


def test_the_counter_reopens_on_the_thread_that_runs() -> None:
    opened: list[int] = []

    def opener() -> FakeCounter:
        opened.append(threading.get_ident())
        return FakeCounter(step=10)

    events = InstructionEvents(opener)
    events.schedule(100, lambda: None)
    worker = threading.Thread(target=run_once, args=(events,))
    worker.start()
    worker.join()
    assert len(opened) == 2 and opened[0] != opened[1]
    assert events.count == 10


def test_bad_counts_are_refused() -> None:
    events = InstructionEvents(lambda: FakeCounter(step=1))
    with pytest.raises(ValueError, match="count above 0, got 0"):
        events.schedule(0, lambda: None)
    with pytest.raises(ValueError, match="tolerance cannot be negative, got -1"):
        events.schedule(10, lambda: None, tolerance=-1)


# -- inside real runs -----------------------------------------------------------
class Writes(Device):
    """Counts the guest's writes (tsc.S writes once per loop, one exit each)."""

    def __init__(self) -> None:
        super().__init__("writes")
        self.count = 0

    def write(self, offset: int, size: int, value: int) -> None:
        self.count += 1


@pytest.fixture(scope="module")
def loop_guest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if platform.machine() != "x86_64":
        skip_host_lacks("an x86-64 CPU (the test guest is x86 code)")
    require_binutils(("as", "ld"), what="the test guest")
    out = tmp_path_factory.mktemp("instruction-stops")
    return build_guest("tsc.S", out / "loop.bin", {"RING": 3})


@pytest.fixture
def machine(loop_guest: Path) -> Iterator[tuple[Machine, Writes]]:
    made = Machine.from_data(machine_config(loop_guest))
    writes = Writes()
    made.add_device(writes, TSC_MMIO, 8)
    yield made, writes
    made.close()


@pytest.mark.kvm
def test_a_run_stops_when_the_count_is_reached(machine: tuple[Machine, Writes]) -> None:
    vm, writes = machine
    cpu = vm.cpu
    counter = FakeCounter(step=100, cpu=cpu)
    cpu.instruction_counter_opener = lambda: counter
    stop = cpu.schedule_instruction_stop(1050, cause="1050 instructions")

    result = vm.run()

    assert result.cause == "1050 instructions"
    assert stop.fired_at == 1100
    assert cpu.instructions_counted == 1100
    # Eleven runs, each armed with what was left; the eleventh exit is
    # served when the machine runs on.
    assert counter.periods == [1050 - 100 * n for n in range(11)] + [0]
    assert writes.count == 10
    assert cpu.statistics()["committed_insts"] == 1100

    # Carry on to a second stop, asked for with a tolerance.
    cpu.cancel_instruction_event(stop)  # fired already: nothing happens
    second = cpu.schedule_instruction_stop(250, tolerance=50, cause="second stop")
    assert second.target == 1350
    assert vm.run().cause == "second stop"
    assert second.fired_at == 1300  # within 50 of 1350
    assert counter.periods[12:] == [1300 - 1100, 100, 0]
    assert writes.count == 11 + 1


@pytest.mark.kvm
def test_a_cancelled_stop_lets_the_guest_run_on(machine: tuple[Machine, Writes]) -> None:
    vm, writes = machine
    cpu = vm.cpu
    cpu.instruction_counter_opener = lambda: FakeCounter(step=100, cpu=cpu)
    stop = cpu.schedule_instruction_stop(300, cause="should not stop")
    assert isinstance(stop, InstructionEvent)
    cpu.cancel_instruction_event(stop)
    later = cpu.schedule_instruction_stop(1000, cause="the later stop")
    assert vm.run().cause == "the later stop"
    assert stop.fired_at is None
    assert later.fired_at == 1000
    assert writes.count == 9


@pytest.mark.kvm
def test_without_a_guest_instruction_counter_a_stop_is_refused_plainly(
    machine: tuple[Machine, Writes],
) -> None:
    _, instructions, why = probe_guest_counters()
    vm, _ = machine
    cpu = vm.cpu
    if instructions:
        event = cpu.schedule_instruction_stop(10**6)
        assert event.target == cpu.instructions_counted + 10**6
        return
    with pytest.raises(KvmCapabilityError) as caught:
        cpu.schedule_instruction_stop(10**6)
    message = str(caught.value)
    assert message.startswith(
        "the host's KVM lacks a guest instruction counter (perf_event_open of hardware "
        "instructions with the host excluded failed: "
    )
    assert message.endswith("needed for stopping after a number of guest instructions")
    assert "no guest instruction counter" in why  # what `kvmbase caps` shows
    # The refusal leaves the CPU as it was: it still runs, uncounted.
    assert cpu.instructions_counted == 0


@pytest.mark.kvm
def test_a_real_counter_stops_within_the_tolerance(machine: tuple[Machine, Writes]) -> None:
    _, instructions, why = probe_guest_counters()
    if not instructions:
        skip_host_lacks(f"guest instruction counters ({why})")
    vm, _ = machine
    cpu = vm.cpu
    # tsc.S runs 9 instructions a loop; a loop per exit.
    stop = cpu.schedule_instruction_stop(200_000, tolerance=1000, cause="counted")
    assert vm.run().cause == "counted"
    assert stop.fired_at is not None
    assert stop.target - 1000 <= stop.fired_at
