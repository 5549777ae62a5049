"""A vCPU stuck in guest code comes back on a kick or when its run timer fires."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from x86_machines import machine_config, machine_from

from kvmbase import Machine
from kvmbase.sim.eventq import Event

pytestmark = pytest.mark.kvm


@pytest.mark.parametrize("method", ["immediate_exit", "signal"])
def test_kick_from_another_thread_ends_a_spinning_guest(
    guest_dir: Path, machines: list[Machine], method: str
) -> None:
    machine = machine_from(machines, machine_config(guest_dir / "spin.bin"))
    machine.cpu.prefer_immediate_exit = method == "immediate_exit"
    machine.system.startup()
    if method == "immediate_exit" and machine.cpu.kick_method != "immediate_exit":
        pytest.skip("host lacks: KVM_CAP_IMMEDIATE_EXIT")
    assert machine.cpu.kick_method == method

    stopper = threading.Timer(0.3, machine.stop, kwargs={"cause": "kicked"})
    started = time.monotonic()
    stopper.start()
    result = machine.run()
    elapsed = time.monotonic() - started
    stopper.join()

    assert result.cause == "kicked"
    assert 0.3 <= elapsed < 5
    # The result's tick is the guest time when the run ended, not when the
    # stop was asked for: about 0.3 s of guest time had run by then.
    assert result.tick >= 0.2 * 10**12
    stats = machine.statistics()["cpu0"]
    assert stats["num_exit_signal"] >= 1
    # The guest was really running its ring-3 loop when it was kicked.
    assert machine.cpu.read_register("rax") > 1000
    assert machine.cpu.get_context().segments["cs"].dpl == 3


def test_kick_before_the_first_run_is_not_lost(guest_dir: Path, machines: list[Machine]) -> None:
    machine = machine_from(machines, machine_config(guest_dir / "spin.bin"))
    machine.system.startup()
    machine.stop("stopped before it ran")
    result = machine.run()
    assert result.cause == "stopped before it ran"


def test_run_timer_returns_control_for_a_due_event(
    guest_dir: Path, machines: list[Machine]
) -> None:
    """The spinning guest never exits by itself; only the run timer lets the
    event at 20 ms of simulated time run."""
    machine = machine_from(machines, machine_config(guest_dir / "spin.bin"))
    due = 20 * 10**9  # ticks: 20 ms
    fired: list[int] = []
    queue = machine.system.event_queue

    def at_deadline() -> None:
        fired.append(queue.cur_tick)
        machine.system.exit_simulation("deadline event ran")

    queue.schedule(Event(at_deadline, "deadline"), due)
    started = time.monotonic()
    result = machine.run()
    elapsed = time.monotonic() - started

    assert result.cause == "deadline event ran"
    assert fired == [due]
    assert machine.statistics()["cpu0"]["num_exit_signal"] >= 1
    # 20 ms of guest time at host_factor 1 is about 20 ms of host time.
    assert 0.015 < elapsed < 2


def test_max_ticks_stops_a_spinning_guest(guest_dir: Path, machines: list[Machine]) -> None:
    machine = machine_from(machines, machine_config(guest_dir / "spin.bin"))
    result = machine.run(max_ticks=5 * 10**9)
    assert result.cause == "tick limit reached"
    assert result.tick == 5 * 10**9
