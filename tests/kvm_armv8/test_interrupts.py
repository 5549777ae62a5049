"""Interrupts through the in-kernel GICv3 on a real arm64 KVM (in the arm64 guest)."""

from __future__ import annotations

import pytest

from kvm_armv8.arm.gic import InKernelGic
from kvm_armv8.arm.irq import IrqType
from kvm_armv8.arm.machine import spi_line
from kvm_armv8.arm.vcpu import BaseArmKvmCPU
from kvmbase import Machine

COUNT_OFFSET = 0x200


@pytest.mark.kvm
def test_virtual_timer_ppi_is_taken(armv8) -> None:
    machine, recorder = armv8("timer_irq")
    result = machine.run()
    assert result.cause == "guest powered off"
    assert [value for _, _, value in recorder.writes] == [1, 2, 3, 4, 5]
    assert isinstance(machine.gic, InKernelGic)  # type: ignore[attr-defined]


@pytest.mark.kvm
def test_spi_raised_with_kvm_irq_line(armv8) -> None:
    machine, recorder = armv8("spi_irq")
    drive = spi_line(machine.vm, 40)

    def on_write(offset: int, value: int) -> None:
        if offset == 0x0:
            drive(True)
        elif offset == 0x100:
            drive(False)

    recorder.on_write = on_write
    assert machine.run().cause == "guest powered off"
    taken = [value for offset, _, value in recorder.writes if offset == 0x100]
    assert taken == [40, 40, 40]
    assert recorder.writes[-1] == (COUNT_OFFSET, 8, 3)


@pytest.mark.kvm
def test_ppi_to_the_second_vcpu(armv8) -> None:
    machine, recorder = armv8("ppi_irq_cpu1", cpus=2)
    cpu1 = machine.cpus[1]
    assert isinstance(cpu1, BaseArmKvmCPU)

    def on_write(offset: int, value: int) -> None:
        if offset == 0x8:  # vCPU 1 asks
            cpu1.set_irq_line(IrqType.PPI, 20, True)
        elif offset == 0x100:
            cpu1.set_irq_line(IrqType.PPI, 20, False)
        elif offset == 0x300:
            # vCPU 0 only waits now: stop scheduling it.  Two vCPUs time-sliced
            # by the 50 us run timer livelock on the TCG-emulated arm64 host
            # (an entry takes longer than that; see docs/arm.md).
            machine.cpus[0].thread.suspend()

    recorder.on_write = on_write
    assert machine.run(max_ticks=20 * 10**12).cause == "guest powered off"
    assert [value for offset, _, value in recorder.writes if offset == 0x100] == [20, 20, 20]
    assert recorder.writes[-1] == (COUNT_OFFSET, 8, 3)


@pytest.mark.kvm
def test_drain_checkpoint_and_restore_finish_the_same(armv8, add_recorder, tmp_path) -> None:
    """Stop after 4 of 12 timer interrupts, checkpoint (GIC state included),
    restore into a fresh VM: the guest finishes with the same reports."""
    reference, reference_log = armv8("timer_irq_long")
    assert reference.run().cause == "guest powered off"
    expected = [value for _, _, value in reference_log.writes]
    assert expected == list(range(1, 13))

    machine, recorder = armv8("timer_irq_long")
    recorder.on_write = lambda offset, value: (
        machine.stop("paused") if value == 4 else None
    )
    assert machine.run().cause == "paused"
    path = machine.checkpoint(tmp_path / "ckpt")
    restored = Machine.restore(path, before_load=add_recorder, uart_output="none")
    try:
        assert restored.run(max_ticks=restored.system.cur_tick + 20 * 10**12).cause == (
            "guest powered off"
        )
        log = restored.devices["recorder"]
        assert [value for _, _, value in log.writes] == expected  # type: ignore[attr-defined]
    finally:
        restored.close()
