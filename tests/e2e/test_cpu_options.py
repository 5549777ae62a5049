"""The CPU's config options change what the CPU does: each one observed."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import PORT_VALUES, attach_recorders, patched_image
from test_checkpoint import expected_values
from x86_machines import machine_config, machine_from

from kvmbase import Machine

pytestmark = pytest.mark.kvm


def test_without_coalesced_mmio_every_write_exits(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    iterations = 200
    image = patched_image(guest_dir, "counter", tmp_path, iterations)
    config = machine_config(
        image,
        cpu={"use_coalesced_mmio": False},
        vm={"coalesced_pio": [{"start": PORT_VALUES, "size": 4}]},
    )
    machine = machine_from(machines, config)
    values, _ = attach_recorders(machine)
    machine.run()
    assert machine.vm.coalesced_zones == []
    assert values.values == expected_values(iterations)[0]
    stats = machine.statistics()["cpu0"]
    assert stats["num_coalesced_mmio"] == 0
    assert stats["num_io"] == iterations + 2


def test_always_sync_tc_keeps_the_context_current(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    image = patched_image(guest_dir, "counter", tmp_path, 50)
    machine = machine_from(machines, machine_config(image, cpu={"always_sync_tc": True}))
    values, _ = attach_recorders(machine, stop_after=20)
    machine.run()
    cpu = machine.cpu
    # Synced on the exit itself: the context already holds the guest's state.
    assert not cpu.kvm_state_dirty
    assert cpu.thread.regs["rbx"] == 20  # the loop counter of the 20th write
    assert cpu.thread.regs["rip"] == cpu.dump("regs")["regs"]["rip"]
    values.stop_after = None
    assert machine.run().cause == "all CPUs halted"
    assert values.values == expected_values(50)[0]


@pytest.mark.parametrize("host_factor", [1.0, 4.0])
def test_guest_time_is_host_time_in_kvm_times_host_factor(
    guest_dir: Path, machines: list[Machine], host_factor: float
) -> None:
    machine = Machine.from_data(
        machine_config(
            guest_dir / "spin.bin", cpu={"host_factor": host_factor, "host_freq": "3GHz"}
        )
    )
    machines.append(machine)
    limit = 20 * 10**9  # 20 ms of guest time
    result = machine.run(max_ticks=limit)
    assert result.cause == "tick limit reached"
    stats = machine.statistics()["cpu0"]
    guest_ticks = machine.cpu.tick_event.when  # where the CPU's time has got to
    host_ns = stats["host_ns_in_guest"]
    assert guest_ticks >= limit
    # Ticks run at 1000 per host ns times host_factor, up to clock rounding.
    assert abs(guest_ticks - host_ns * 1000 * host_factor) <= stats["num_vm_exits"] * 2000
    assert stats["num_cycles"] == int(host_ns * 3e9 / 1e9 * host_factor)
