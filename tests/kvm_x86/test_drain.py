"""Draining an interrupt-heavy guest at random moments loses and duplicates nothing.

``guests/irq_storm.S`` takes exactly N_TICKS one-shot APIC timer interrupts
(re-armed by its handler, so none can merge) into a CPL3 loop, plus the
extra vector 0x41 the test raises.  The test stops the run at seeded random
ticks; at some stops it also raises 0x41 and has the CPU inject it at once
(``KVM_INTERRUPT``), so that the drain finds an interrupt injected but not
yet taken; then it either checkpoints and restores into a fresh VM, or
drains and resumes.  At every drain the APIC's counts and the guest's (in
its RAM) must agree; at the end, the guest's counts, the APIC's counts and
the expected totals must agree exactly.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from e2e_support import PortRecorder
from x86_machines import APIC_INCLUDES, build_guest, machine_config, machine_from, require_binutils

from kvm_x86.apic import ApicBus, find_apic_bus, setup_apics
from kvmbase import Machine

pytestmark = pytest.mark.kvm

REPORT_PORT = 0xE0
HALTED = "all CPUs halted"
N_TICKS = 300
INITIAL = 50_000  # counts at 1 GHz, divide by 1: 50 us
EXTRA_VECTOR = 0x41
US = 1_000_000  # ticks
COUNTS_AT = 0x90000  # the guest's timer and extra counts


@pytest.fixture(scope="module")
def storm_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_binutils()
    out = tmp_path_factory.mktemp("storm-guest")
    symbols = {"RING": 3, "N_TICKS": N_TICKS, "INITIAL": INITIAL}
    return build_guest("irq_storm.S", out / "irq_storm.bin", symbols, includes=APIC_INCLUDES)


def equip(machine: Machine) -> None:
    setup_apics(machine)
    # the guest's final counts; kept through checkpoints
    machine.add_device(PortRecorder("reports"), machine.port_address(REPORT_PORT), 4)


def apic_bus(machine: Machine) -> ApicBus:
    bus = find_apic_bus(machine)
    assert bus is not None
    return bus


def assert_consistent(machine: Machine) -> None:
    """At a drain: every interrupt the APIC delivered has been taken (none
    is left injected in KVM): retired by EOI, or in its handler now."""
    apic = apic_bus(machine).apics[0]
    memory = machine.system.read_memory(COUNTS_AT, 16)
    taken = int.from_bytes(memory[:8], "little") + int.from_bytes(memory[8:], "little")
    in_service = bin(apic.isr).count("1")
    eois = apic.stats["eois"]
    assert apic.stats["delivered"] == eois + in_service
    # a handler counts before its EOI
    assert eois <= taken <= eois + in_service


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_drains_never_lose_or_duplicate_an_interrupt(
    storm_image: Path, machines: list[Machine], tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    machine = machine_from(machines, machine_config(storm_image, vm={"ram_size": "4MiB"}))
    if not machine.vm.kvm.cap_vcpu_events:
        pytest.skip("host lacks: KVM_CAP_VCPU_EVENTS")
    equip(machine)
    extra_raised = 0
    seen: Counter[str] = Counter()
    while True:
        until = machine.system.cur_tick + rng.randrange(100 * US, 2000 * US)
        result = machine.run(max_ticks=until)
        if result.cause == HALTED:
            break
        assert result.cause == "tick limit reached"
        cpu: Any = machine.cpu
        apic = apic_bus(machine).apics[0]
        seen[f"stopped {cpu.state.value}"] += 1
        if not cpu.arch_is_drained():
            seen["found an event in flight"] += 1
        if rng.random() < 0.5:
            apic.raise_interrupt(EXTRA_VECTOR)
            extra_raised += 1
            delivered = apic.stats["delivered"]
            cpu.deliver_interrupts()  # KVM_INTERRUPT now, if KVM is ready for one
            if apic.stats["delivered"] > delivered:
                assert not cpu.arch_is_drained()
                seen["injected before the drain"] += 1
        if rng.random() < 0.5:
            checkpoint = machine.checkpoint(tmp_path / f"ckpt-{seen.total()}")
            assert cpu.arch_is_drained()
            assert_consistent(machine)
            machine.close()
            machines.remove(machine)
            machine = Machine.restore(checkpoint, before_load=equip)
            machines.append(machine)
            seen["checkpoint and restore"] += 1
        else:
            machine.drain()
            assert cpu.arch_is_drained()
            assert_consistent(machine)
            machine.drain_resume()
            seen["drain and resume"] += 1

    apic = apic_bus(machine).apics[0]
    stats = apic.stats
    ticks, extra = machine.devices["reports"].values  # type: ignore[attr-defined]
    still_pending = bin(apic.irr).count("1")
    print(f"seed {seed}: {dict(seen)}; extra raised {extra_raised}; APIC {stats}")
    # exactly N_TICKS timer interrupts, each delivered once and taken once
    assert ticks == N_TICKS
    assert stats["timer_fires"] == N_TICKS
    assert stats["raised"] == N_TICKS + extra_raised
    # whatever the guest took the APIC delivered, and saw retired, once
    assert stats["delivered"] == stats["eois"] == ticks + extra
    # nothing raised went missing: delivered, merged, or still waiting
    assert stats["raised"] == stats["delivered"] + stats["coalesced"] + still_pending
    assert apic.isr == 0
    assert seen["injected before the drain"] > 0
    assert seen["checkpoint and restore"] > 0
