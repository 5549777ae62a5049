"""Drain, checkpoint, restore into a fresh VM, and finish with the same result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from e2e_support import attach_recorders, patched_image
from x86_machines import machine_config, machine_from

from kvmbase import CheckpointError, Machine
from kvmbase.cpu import RunState

pytestmark = pytest.mark.kvm

ITERATIONS = 300
MULTIPLIER = 6364136223846793005


def expected_values(iterations: int) -> tuple[list[int], int]:
    """What counter.S writes to port 0xE0, and its final accumulator."""
    acc, values = 0, []
    for i in range(1, iterations + 1):
        acc = (acc * MULTIPLIER + i) % 2**64
        values.append(acc & 0xFFFFFFFF)
    return values, acc


def run_to_end(machine: Machine) -> tuple[list[int], int]:
    values, result = attach_recorders(machine)
    outcome = machine.run()
    assert outcome.cause == "all CPUs halted"
    low, high = result.values
    return values.values, low | high << 32


def test_uninterrupted_run_matches_the_model(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    image = patched_image(guest_dir, "counter", tmp_path, ITERATIONS)
    machine = machine_from(machines, machine_config(image))
    values, final = run_to_end(machine)
    assert (values, final) == expected_values(ITERATIONS)
    assert machine.statistics()["cpu0"]["num_io"] == ITERATIONS + 2


@pytest.mark.parametrize("stop_at", [1, 57, ITERATIONS])
def test_checkpoint_mid_run_restores_into_a_fresh_vm(
    guest_dir: Path, tmp_path: Path, machines: list[Machine], stop_at: int
) -> None:
    image = patched_image(guest_dir, "counter", tmp_path, ITERATIONS)
    first = machine_from(machines, machine_config(image))
    attach_recorders(first, stop_after=stop_at)
    outcome = first.run()
    assert outcome.cause == "recorder asked to stop"
    # Stopped while serving the port write: KVM still has to complete it.
    assert first.cpu.state is RunState.RUNNING_SERVICE_COMPLETION

    checkpoint = first.checkpoint(tmp_path / "ckpt")
    assert first.cpu.stats.num_vm_half_entries == 1
    rip_at_checkpoint = first.cpu.read_register("rip")
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    assert manifest["cpus"][0]["name"] == "cpu0"
    assert manifest["cpus"][0]["thread"]["regs"]["rip"] == rip_at_checkpoint
    first.close()

    second = Machine.restore(checkpoint, before_load=lambda m: attach_recorders(m))
    machines.append(second)
    assert second.cpu.thread.regs["rip"] == rip_at_checkpoint
    recorder = second.devices["values"]
    outcome = second.run()
    assert outcome.cause == "all CPUs halted"
    assert outcome.tick >= manifest["tick"]
    expected, final = expected_values(ITERATIONS)
    assert recorder.values == expected  # type: ignore[attr-defined]
    low, high = second.devices["result"].values  # type: ignore[attr-defined]
    assert low | high << 32 == final
    # The restored run did only the rest of the work.
    assert second.statistics()["cpu0"]["num_io"] == ITERATIONS - stop_at + 2


def test_checkpoint_and_carry_on_in_the_same_machine(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    image = patched_image(guest_dir, "counter", tmp_path, ITERATIONS)
    machine = machine_from(machines, machine_config(image))
    values, result = attach_recorders(machine, stop_after=100)
    machine.run()
    machine.checkpoint(tmp_path / "ckpt")
    machine.run()
    expected, final = expected_values(ITERATIONS)
    assert values.values == expected
    assert result.values[0] | result.values[1] << 32 == final


def _checkpoint(guest_dir: Path, tmp_path: Path, machines: list[Machine]) -> Path:
    image = patched_image(guest_dir, "counter", tmp_path, ITERATIONS)
    machine = machine_from(machines, machine_config(image))
    attach_recorders(machine, stop_after=10)
    machine.run()
    return machine.checkpoint(tmp_path / "ckpt")


def test_damaged_ram_file_is_refused(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    checkpoint = _checkpoint(guest_dir, tmp_path, machines)
    ram = checkpoint / "memory-0.bin"
    data = bytearray(ram.read_bytes())
    data[0x100000] ^= 0xFF
    ram.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged"):
        Machine.restore(checkpoint, before_load=lambda m: attach_recorders(m))


def test_other_version_is_refused(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    checkpoint = _checkpoint(guest_dir, tmp_path, machines)
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["version"] = 99
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="version 99"):
        Machine.restore(checkpoint)


def test_missing_devices_are_refused(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    checkpoint = _checkpoint(guest_dir, tmp_path, machines)
    with pytest.raises(CheckpointError, match="devices differ"):
        Machine.restore(checkpoint)


def test_other_ram_size_is_refused(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    checkpoint = _checkpoint(guest_dir, tmp_path, machines)
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["config"]["vm"]["ram_size"] = 32 << 20
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="RAM layout differs"):
        Machine.restore(checkpoint, before_load=lambda m: attach_recorders(m))


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no manifest\.json"):
        Machine.restore(tmp_path)


def test_rewriting_a_checkpoint_replaces_it_whole(
    guest_dir: Path, tmp_path: Path, machines: list[Machine]
) -> None:
    checkpoint = _checkpoint(guest_dir, tmp_path, machines)
    machine = machines[-1]
    before = json.loads((checkpoint / "manifest.json").read_text())["tick"]
    machine.devices["values"].stop_after = 20  # type: ignore[attr-defined]
    machine.run()
    machine.checkpoint(checkpoint)
    after = json.loads((checkpoint / "manifest.json").read_text())["tick"]
    assert after > before
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".ckpt")]
    assert leftovers == []
    shutil.rmtree(checkpoint)
