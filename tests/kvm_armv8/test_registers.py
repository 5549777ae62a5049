"""Register sync of the AArch64 vCPU on a real arm64 KVM (in the arm64 guest).

Every register group round-trips exactly: named registers written through
the thread context reach KVM and come back; raw registers survive a JSON
checkpoint into a fresh VM; invariant registers are never written.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kvm_armv8.arm import regs
from kvm_armv8.cpu import ArmV8KvmCPU
from kvm_armv8.thread_context import ArmV8ThreadContext
from kvmbase import Machine

MASK64 = (1 << 64) - 1


def started(machine: Machine) -> ArmV8KvmCPU:
    machine.system.startup()
    cpu = machine.cpu
    assert isinstance(cpu, ArmV8KvmCPU)
    return cpu


def values_for_round_trip() -> dict[str, int]:
    values = {f"x{n}": (0x0101010101010101 * (n + 1)) & MASK64 for n in range(31)}
    values.update({f"v{n}": (0x0123456789ABCDEF << 64 | 0xFEDCBA98 << 32 | n) for n in range(32)})
    values.update({
        "sp_el0": 0x40001000, "sp_el1": 0x40FFF000, "elr_el1": 0x40080400,
        "pc": 0x40080100, "pstate": 0x3C5 | 0xF0000000,  # EL1h, DAIF masked, NZCV set
        "spsr_el1": 0x3C5, "spsr_abt": 0x1D7, "spsr_und": 0x1DB, "spsr_irq": 0x1D2,
        "spsr_fiq": 0x1D1, "fpsr": 0x08000000, "fpcr": 0x00C00000,
        "tpidr_el0": 0x1111222233334444, "tpidrro_el0": 0x5555666677778888,
        "tpidr_el1": 0x9999AAAABBBBCCCC, "far_el1": 0xDEADBEEF000, "mair_el1": 0x44FF0400,
        "contextidr_el1": 0x42, "vbar_el1": 0x40081000, "par_el1": 0x800,
        "esr_el1": 0x96000045, "afsr0_el1": 0, "afsr1_el1": 0,
    })
    return values


@pytest.mark.kvm
def test_reset_state_and_discovery(armv8) -> None:
    machine, _ = armv8("spin")
    cpu = started(machine)
    assert cpu.target >= 0
    assert len(cpu.reg_list) >= 200  # 242 on Debian's 6.1
    assert regs.core_id("x0") in cpu.reg_list and regs.KVM_REG_ARM_TIMER_CNT in cpu.reg_list
    tc = cpu.get_context()
    assert tc.regs["pc"] == 0x40080000
    assert tc.regs["pstate"] == 0x3C5
    assert tc.regs["sp_el1"] == 0x41000000
    assert tc.regs["mpidr_el1"] == 0x80000000
    assert tc.complete
    # the reset values fill what the boot state did not set
    assert tc.regs["sctlr_el1"] != 0
    assert tc.invariant[regs.sysreg_by_name("MIDR_EL1")] != 0
    assert regs.ccsidr_id(0) in tc.invariant
    assert regs.KVM_REG_ARM_PSCI_VERSION in tc.raw


@pytest.mark.kvm
def test_named_registers_round_trip_exactly(armv8) -> None:
    machine, _ = armv8("spin")
    cpu = started(machine)
    tc = cpu.get_context()
    values = values_for_round_trip()
    tc.write_regs(values)
    cpu.sync_kvm_state()
    for name, value in values.items():
        got = cpu.read_reg_id(cpu_ids(cpu)[name])
        assert got == value, f"{name}: KVM has {got:#x}, wrote {value:#x}"
    cpu.kvm_state_dirty = True  # as after a run: read everything back
    cpu.sync_thread_context()
    assert {name: tc.regs[name] for name in values} == values


def cpu_ids(cpu: ArmV8KvmCPU) -> dict[str, int]:
    return {name: reg_id for reg_id, name in cpu.named_registers().items()}


@pytest.mark.kvm
def test_guest_written_registers_reach_the_context(armv8) -> None:
    machine, recorder = armv8("regs")
    recorder.on_write = lambda offset, value: machine.stop("registers set")
    assert machine.run().cause == "registers set"
    tc = machine.cpu.get_context()
    assert tc.regs["tpidr_el0"] == 0x1234567890
    assert tc.regs["sp_el0"] == 0x1234567890
    assert tc.regs["fpsr"] & 0x08000000
    assert tc.regs["fpcr"] == 0x00C00000
    for n in range(2, 30):
        assert tc.regs[f"x{n}"] == n * 0x101
    assert tc.regs["x30"] == 0x7777
    for n in range(32):
        # ADD .16B doubles each byte on its own (no carries between bytes)
        half = int.from_bytes(bytes(b * 2 & 0xFF for b in (0xABCD << 48 | n).to_bytes(8, "little")),
                              "little")
        assert tc.regs[f"v{n}"] == half << 64 | half


def all_registers(cpu: ArmV8KvmCPU) -> dict[int, Any]:
    return {reg_id: cpu.read_reg_id(reg_id) for reg_id in cpu.reg_list}


#: registers that change by themselves between two reads
MOVING = {regs.KVM_REG_ARM_TIMER_CNT, regs.sysreg_by_name("PMCCNTR_EL0")}


@pytest.mark.kvm
def test_every_register_survives_a_checkpoint_into_a_fresh_vm(armv8, tmp_path) -> None:
    machine, _ = armv8("spin")
    machine.run(max_ticks=2_000_000_000)  # 2 ms of guest time
    cpu = machine.cpu
    assert isinstance(cpu, ArmV8KvmCPU)
    machine.drain()
    before = all_registers(cpu)
    state = json.loads(json.dumps(cpu.serialize_thread()))
    machine.drain_resume()

    fresh, _ = armv8("spin")
    fresh_cpu = started(fresh)
    fresh.drain()
    assert isinstance(fresh_cpu, ArmV8KvmCPU)
    fresh_cpu.unserialize_thread(state)
    fresh_cpu.sync_kvm_state()
    after = all_registers(fresh_cpu)
    assert set(before) == set(after)
    differ = {regs.register_name(i): (before[i], after[i]) for i in before
              if i not in MOVING and before[i] != after[i]}
    assert differ == {}
    # guest time goes on from the checkpoint, not from the fresh VM's zero
    assert after[regs.KVM_REG_ARM_TIMER_CNT] >= state["regs"]["cntvct_el0"]


@pytest.mark.kvm
def test_raw_registers_are_written_back(armv8) -> None:
    machine, _ = armv8("spin")
    cpu = started(machine)
    tc = cpu.get_context()
    psci = regs.KVM_REG_ARM_PSCI_VERSION
    assert psci in tc.raw
    tc.set_raw(psci, 0x10000)  # PSCI 1.0
    cpu.sync_kvm_state()
    assert cpu.read_reg_id(psci) == 0x10000


@pytest.mark.kvm
def test_invariant_registers_are_never_written(armv8, caplog) -> None:
    machine, _ = armv8("spin")
    cpu = started(machine)
    tc = cpu.get_context()
    midr = regs.sysreg_by_name("MIDR_EL1")
    real = tc.invariant[midr]
    tc.invariant[midr] = real ^ 0xF0
    tc.write_reg("x5", 5)
    cpu.sync_kvm_state()  # no EINVAL: MIDR is not written
    assert cpu.read_reg_id(midr) == real
    assert "MIDR_EL1" in caplog.text


@pytest.mark.kvm
def test_every_dump_section_is_plain_data(armv8) -> None:
    machine, _ = armv8("timer_irq")
    machine.run()
    cpu = machine.cpu
    sections = cpu.dump_sections()
    assert sections[:8] == ("core", "fpsimd", "sysregs", "timer", "firmware", "invariant",
                            "vcpu", "gic")
    dump = cpu.dump()
    json.dumps(dump)
    assert dump["core"]["pc"] > 0x40080000
    assert "SCTLR_EL1" in dump["sysregs"] and "MIDR_EL1" in dump["invariant"]
    assert set(dump["timer"]) == {"CNTVCT_EL0", "CNTV_CVAL_EL0", "CNTV_CTL_EL0"}
    assert "PSCI_VERSION" in dump["firmware"]
    assert dump["gic"]["initialized"] and dump["gic"]["version"] == "v3"
    with pytest.raises(KeyError, match="no dump section"):
        cpu.dump("nope")


def test_context_is_armv8() -> None:
    assert ArmV8ThreadContext.arch == "armv8"
