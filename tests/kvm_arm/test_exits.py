"""Exits of A32 guests on arm64 KVM (EL1 32-bit): the demo, PSCI, MMIO, and a
drain + checkpoint + restore into a fresh VM.  Marked ``kvm``: these run
inside the arm64 guest of the ARM harness."""

from __future__ import annotations

import pytest

from kvm_arm.cpu import ArmKvmCPU
from kvm_arm.plugin import demo_config
from kvm_armv8.arm.pl011 import Pl011
from kvmbase import Machine

PATTERN = 0xF0E0D0C0B0A09080


@pytest.mark.kvm
def test_psci_system_off_ends_the_run(arm) -> None:
    machine, _ = arm("psci_off")
    result = machine.run()
    assert (result.cause, result.code) == ("guest powered off", 0)


@pytest.mark.kvm
def test_mmio_reads_and_writes_of_each_size(arm) -> None:
    machine, recorder = arm("mmio")
    assert machine.run().cause == "guest powered off"
    assert recorder.writes[:3] == [(0x0, 1, 0x11), (0x8, 2, 0x2233), (0x10, 4, 0x44556677)]
    assert recorder.reads == [(0x20, 1), (0x28, 2), (0x30, 4)]
    assert recorder.writes[3:] == [
        (0x120, 4, (PATTERN + 0x20) & 0xFF),
        (0x128, 4, (PATTERN + 0x28) & 0xFFFF),
        (0x130, 4, (PATTERN + 0x30) & 0xFFFFFFFF),
    ]
    stats = machine.statistics()["cpu0"]
    assert stats["num_mmio"] == 9


@pytest.mark.kvm
def test_drain_checkpoint_and_restore_finish_the_same(arm, add_recorder, tmp_path) -> None:
    reference, reference_log = arm("count")
    assert reference.run().cause == "guest powered off"
    expected = reference_log.writes
    assert [v for o, _, v in expected if o == 0] == [n * (n + 1) // 2 for n in range(1, 21)]
    assert expected[-1] == (8, 4, 20)

    machine, recorder = arm("count")
    recorder.on_write = lambda offset, value: machine.stop("paused") if value == 15 else None
    assert machine.run().cause == "paused"
    machine.drain()
    machine.drain_resume()
    path = machine.checkpoint(tmp_path / "ckpt")
    restored = Machine.restore(path, before_load=add_recorder, uart_output="none")
    try:
        assert restored.run().cause == "guest powered off"
        log = restored.devices["recorder"]
        assert log.writes == expected  # type: ignore[attr-defined]
        cpu = restored.cpu
        assert isinstance(cpu, ArmKvmCPU)
        assert cpu.read_register("r6") == 20 and cpu.read_register("r5") == 210
    finally:
        restored.close()


@pytest.mark.kvm
def test_demo_prints_through_the_pl011_and_powers_off(machines: list[Machine]) -> None:
    machine = Machine.from_data(demo_config(), uart_output="none")
    machines.append(machine)
    result = machine.run()
    assert result.cause == "guest powered off"
    assert result.code == 0
    uart = machine.devices["uart0"]
    assert isinstance(uart, Pl011)
    assert uart.transmitted.decode() == (
        "Hello from AArch32 under kvmbase! I am CPU 0; 1 + ... + 100 = 5050\n"
    )
    cpu = machine.cpu
    assert isinstance(cpu, ArmKvmCPU) and cpu.features.el1_32bit
    # still in SVC mode, A32 (the T bit clear)
    assert cpu.read_register("cpsr") & 0x3F == 0x13


@pytest.mark.kvm
def test_each_new_vm_runs_its_own_code(arm) -> None:
    """Guests that share their entry point, one VM after the other, each run their own code.

    In the harness this holds only because closed machines' RAM stays mapped
    (tests/conftest.py says why); a new VM on the old VM's host pages ran
    the old guest's stale translations.
    """
    for _ in range(3):
        first, first_log = arm("mmio")
        assert first.run().cause == "guest powered off"
        assert first_log.writes[:3] == [(0x0, 1, 0x11), (0x8, 2, 0x2233), (0x10, 4, 0x44556677)]
        first.close()
        second, second_log = arm("count")
        assert second.run().cause == "guest powered off"
        assert second_log.writes[-1] == (8, 4, 20)
        second.close()
