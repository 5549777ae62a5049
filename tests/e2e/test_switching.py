"""Handing a running thread from one KVM CPU to another, mid-run."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import attach_recorders, patched_image
from test_checkpoint import ITERATIONS, expected_values
from x86_machines import machine_config, machine_from

from kvmbase import Machine
from kvmbase.sim.thread_context import ThreadStatus

pytestmark = pytest.mark.kvm


def test_switch_mid_run_finishes_with_the_same_result(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    image = patched_image(guest_dir, "counter", tmp_path, ITERATIONS)
    machine = machine_from(machines, machine_config(image))
    values, result = attach_recorders(machine, stop_after=120)
    old = machine.cpu
    new = machine.new_cpu("cpu1")
    assert machine.active_cpus == [old]

    assert machine.run().cause == "recorder asked to stop"
    rip = old.read_register("rip")
    machine.switch_cpus(old, new)

    assert old.switched_out and not new.switched_out
    assert machine.cpu is new
    assert old.thread.status is ThreadStatus.HALTED
    assert new.thread.status is ThreadStatus.ACTIVE
    # take_over_from writes the vCPU at once: KVM already holds the state.
    assert new.dump("regs")["regs"]["rip"] == rip
    assert new.vcpu_id != old.vcpu_id

    outcome = machine.run()
    assert outcome.cause == "all CPUs halted"
    expected, final = expected_values(ITERATIONS)
    assert values.values == expected
    assert result.values[0] | result.values[1] << 32 == final
    stats = machine.statistics()
    assert stats["cpu0"]["num_io"] == 120
    assert stats["cpu0"]["num_vm_half_entries"] == 1
    assert stats["cpu1"]["num_io"] == ITERATIONS - 120 + 2
    assert stats["cpu1"]["num_halt"] == 1


def test_checkpoint_after_a_switch_restores_the_running_cpu(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    image = patched_image(guest_dir, "counter", tmp_path, ITERATIONS)
    machine = machine_from(machines, machine_config(image))
    recorder, _ = attach_recorders(machine, stop_after=50)
    new = machine.new_cpu("cpu1")
    machine.run()
    machine.switch_cpus(machine.cpu, new)
    recorder.stop_after = 90
    machine.run()
    checkpoint = machine.checkpoint(tmp_path / "ckpt")

    restored = Machine.restore(checkpoint, before_load=lambda m: attach_recorders(m))
    machines.append(restored)
    assert restored.run().cause == "all CPUs halted"
    expected, final = expected_values(ITERATIONS)
    assert restored.devices["values"].values == expected  # type: ignore[attr-defined]
    low, high = restored.devices["result"].values  # type: ignore[attr-defined]
    assert low | high << 32 == final
