"""MMIO in timing mode: the device answers later, from an event."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import PortRecorder
from x86_machines import machine_config, machine_from

from kvmbase import Machine
from kvmbase.cpu import RunState
from kvmbase.sim.bus import Device
from kvmbase.sim.eventq import Event

pytestmark = pytest.mark.kvm

LATENCY = 3_000_000  # ticks: 3 us


class SlowCounter(Device):
    """Answers the n-th read with 10*n, LATENCY ticks after it was asked."""

    timing = True

    def __init__(self, machine: Machine) -> None:
        super().__init__("slow")
        self.machine = machine
        self.asked: list[int] = []
        self.answered: list[int] = []
        self.cpu_states: list[RunState] = []

    def start_read(self, offset: int, size: int, done: Callable[[int], None]) -> None:
        queue = self.machine.system.event_queue
        self.asked.append(queue.cur_tick)
        self.cpu_states.append(self.machine.cpu.state)
        value = 10 * len(self.asked)

        def answer() -> None:
            self.answered.append(queue.cur_tick)
            done(value)

        queue.schedule(Event(answer, "slow.answer"), queue.cur_tick + LATENCY)


def test_timing_device_reads_complete_later(guest_dir: Path, machines: list[Machine]) -> None:
    machine = machine_from(machines, machine_config(guest_dir / "mmio_sum.bin"))
    device = SlowCounter(machine)
    machine.add_device(device, 0xD0000000, 0x1000)
    result_port = PortRecorder("result")
    machine.add_device(result_port, machine.port_address(0xE1), 1)

    outcome = machine.run()

    assert outcome.cause == "all CPUs halted"
    assert result_port.values == [sum(10 * n for n in range(1, 9))]
    assert len(device.asked) == 8
    assert all(state is RunState.RUNNING_MMIO_PENDING for state in device.cpu_states)
    assert [a - q for q, a in zip(device.asked, device.answered, strict=True)] == [LATENCY] * 8
    # Each read waited for the previous answer.
    assert all(
        nxt >= prev for prev, nxt in zip(device.answered, device.asked[1:], strict=False)
    )
    assert machine.statistics()["cpu0"]["num_mmio"] == 8


def test_drain_waits_for_a_pending_timing_access(
    guest_dir: Path, machines: list[Machine]
) -> None:
    machine = machine_from(machines, machine_config(guest_dir / "mmio_sum.bin"))
    device = SlowCounter(machine)
    machine.add_device(device, 0xD0000000, 0x1000)
    machine.add_device(PortRecorder("result"), machine.port_address(0xE1), 1)
    queue = machine.system.event_queue

    # Stop the run while the third read is in flight.
    def stop_when_pending() -> None:
        if len(device.asked) == 3 and machine.cpu.state is RunState.RUNNING_MMIO_PENDING:
            machine.system.exit_simulation("caught a pending read")
        else:
            queue.schedule(Event(stop_when_pending, "poll"), queue.cur_tick + LATENCY // 3)

    queue.schedule(Event(stop_when_pending, "poll"), 1)
    outcome = machine.run()
    assert outcome.cause == "caught a pending read"
    assert machine.cpu.state is RunState.RUNNING_MMIO_PENDING

    machine.drain()
    assert machine.cpu.state is RunState.IDLE
    assert len(device.answered) == 3  # the read in flight finished, no new one began
    assert len(device.asked) == 3
    machine.drain_resume()
    assert machine.run().cause == "all CPUs halted"
    assert machine.devices["result"].values == [360]  # type: ignore[attr-defined]
