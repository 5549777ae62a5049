"""Interrupts of A32 guests through the in-kernel GICv3 on a real arm64 KVM
(in the arm64 guest): the virtual timer's PPI and an SPI the host drives.

The guests (guests/timer_irq.S, guests/spi_irq.S, guests/gic.inc) open the
GICv3 CPU interface through its AArch32 CP15 encodings and take the
interrupts through a VBAR vector table in IRQ mode.
"""

from __future__ import annotations

import pytest

from kvm_arm.cpu import ArmKvmCPU
from kvm_armv8.arm.gic import InKernelGic
from kvm_armv8.arm.machine import spi_line
from kvmbase import Machine

COUNT_OFFSET = 0x200
#: where gic.inc reports an unexpected exception (vector offset, LR, DFSR, IFSR)
UNEXPECTED = range(0xF00, 0xF20)


def _unexpected(writes: list[tuple[int, int, int]]) -> dict[int, int]:
    return {offset: value for offset, _, value in writes if offset in UNEXPECTED}


@pytest.mark.kvm
def test_virtual_timer_ppi_is_taken(arm) -> None:
    machine, recorder = arm("timer_irq")
    result = machine.run()
    assert _unexpected(recorder.writes) == {}
    assert result.cause == "guest powered off"
    assert [value for _, _, value in recorder.writes] == [1, 2, 3, 4, 5]
    assert isinstance(machine.gic, InKernelGic)  # type: ignore[attr-defined]


@pytest.mark.kvm
def test_spi_raised_with_kvm_irq_line(arm) -> None:
    machine, recorder = arm("spi_irq")
    drive = spi_line(machine.vm, 40)

    def on_write(offset: int, value: int) -> None:
        if offset == 0x0:
            drive(True)
        elif offset == 0x100:
            drive(False)

    recorder.on_write = on_write
    result = machine.run()
    assert _unexpected(recorder.writes) == {}
    assert result.cause == "guest powered off"
    assert [value for offset, _, value in recorder.writes if offset == 0x0] == [1, 2, 3]
    taken = [value for offset, _, value in recorder.writes if offset == 0x100]
    assert taken == [40, 40, 40]
    assert recorder.writes[-1] == (COUNT_OFFSET, 4, 3)


@pytest.mark.kvm
def test_drain_checkpoint_and_restore_finish_the_same(arm, add_recorder, tmp_path) -> None:
    """Stop after 4 of 12 timer interrupts (in the IRQ handler: IRQ mode, the
    interrupt active), checkpoint (GIC state included), restore into a fresh
    VM: the guest finishes with the same reports."""
    reference, reference_log = arm("timer_irq_long")
    assert reference.run().cause == "guest powered off"
    expected = [value for _, _, value in reference_log.writes]
    assert expected == list(range(1, 13))

    machine, recorder = arm("timer_irq_long")
    recorder.on_write = lambda offset, value: machine.stop("paused") if value == 4 else None
    assert machine.run().cause == "paused"
    cpu = machine.cpu
    assert isinstance(cpu, ArmKvmCPU)
    assert cpu.read_register("cpsr") & 0x1F == 0x12  # stopped in the handler, IRQ mode
    path = machine.checkpoint(tmp_path / "ckpt")
    restored = Machine.restore(path, before_load=add_recorder, uart_output="none")
    try:
        assert restored.run(max_ticks=restored.system.cur_tick + 20 * 10**12).cause == (
            "guest powered off"
        )
        log = restored.devices["recorder"]
        assert _unexpected(log.writes) == {}  # type: ignore[attr-defined]
        assert [value for _, _, value in log.writes] == expected  # type: ignore[attr-defined]
    finally:
        restored.close()
