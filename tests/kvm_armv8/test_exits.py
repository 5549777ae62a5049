"""Exits of AArch64 guests on arm64 KVM: MMIO of each size, PSCI, the PL011 demo.

These run inside the arm64 guest of the ARM harness (marked ``kvm``).
"""

from __future__ import annotations

import pytest

from kvm_armv8.arm.pl011 import Pl011
from kvm_armv8.plugin import demo_config
from kvmbase import Machine

PATTERN = 0xF0E0D0C0B0A09080


@pytest.mark.kvm
def test_mmio_reads_and_writes_of_each_size(armv8) -> None:
    machine, recorder = armv8("mmio")
    result = machine.run()
    assert result.cause == "guest powered off"
    assert recorder.writes[:4] == [
        (0x0, 1, 0x11), (0x8, 2, 0x2233), (0x10, 4, 0x44556677), (0x18, 8, 0x8899AABBCCDDEEFF),
    ]
    assert recorder.reads == [(0x20, 1), (0x28, 2), (0x30, 4), (0x38, 8)]
    expected = [
        (0x120, 8, (PATTERN + 0x20) & 0xFF),
        (0x128, 8, (PATTERN + 0x28) & 0xFFFF),
        (0x130, 8, (PATTERN + 0x30) & 0xFFFFFFFF),
        (0x138, 8, PATTERN + 0x38),
    ]
    assert recorder.writes[4:] == expected
    stats = machine.statistics()["cpu0"]
    assert stats["num_mmio"] == 12  # 8 writes, 4 reads
    assert stats["num_io"] == 0


@pytest.mark.kvm
@pytest.mark.parametrize(("guest", "cause"), [
    ("psci_off", "guest powered off"),
    ("psci_reset", "guest requested a reset"),
])
def test_psci_system_events_end_the_run(armv8, guest: str, cause: str) -> None:
    machine, _ = armv8(guest)
    result = machine.run()
    assert result.cause == cause
    assert result.code == 0


@pytest.mark.kvm
def test_demo_prints_through_the_pl011_and_powers_off(machines: list[Machine]) -> None:
    machine = Machine.from_data(demo_config(), uart_output="none")
    machines.append(machine)
    result = machine.run()
    assert result.cause == "guest powered off"
    uart = machine.devices["uart0"]
    assert isinstance(uart, Pl011)
    assert uart.transmitted.decode() == (
        "Hello from AArch64 under kvmbase! I am CPU 0; 1 + ... + 100 = 5050\n"
    )
    # the vector sum left 5050 in v0's low half
    assert machine.cpu.read_register("v0") & ((1 << 64) - 1) == 5050
