"""Register sync of the AArch32 vCPU on a real arm64 KVM (in the arm64 guest).

Every AArch32 register group round-trips exactly through KVM; an A32 guest
changes every group in a known way and the host reads the changes back; the
whole state survives a checkpoint into a fresh VM.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kvm_arm.cpu import ArmKvmCPU
from kvm_arm.thread_context import CP15, GP_NAMES
from kvm_armv8.arm import regs
from kvmbase import Machine

RECORDER = 0x0A000000
STACK = 0x40F00000


def started(machine: Machine) -> ArmKvmCPU:
    machine.system.startup()
    cpu = machine.cpu
    assert isinstance(cpu, ArmKvmCPU)
    return cpu


def host_values() -> dict[str, Any]:
    """A value for every register group (valid for the regs guest to run on)."""
    values = {name: 0x01010101 * (n + 1) & 0xFFFFFFFF for n, name in enumerate(GP_NAMES)}
    values.update({"sp_svc": STACK, "sp_usr": RECORDER + 0x100, "pc": 0x40008000,
                   "cpsr": 0x1D3})
    values.update({"spsr_svc": 0x1D3, "spsr_abt": 0x1D7, "spsr_und": 0x1DB,
                   "spsr_irq": 0x1D2, "spsr_fiq": 0x1D1})
    values.update({f"d{n}": 0x0123456789AB0000 | n << 8 for n in range(32)})
    values.update({
        "fpscr": 0x03000000,  # DN, FZ
        "tpidrurw": 0x11112222, "tpidruro": 0x33334444, "tpidrprw": 0x55556666,
        "contextidr": 0x42, "dacr": 0x55555555, "vbar": 0x40001000,
        "prrr": 0xFF0A81A8, "nmrr": 0x40E040E0, "dfar": 0xDEAD0000, "ifar": 0xBEEF0000,
        "dfsr": 0x805, "ifsr": 0x5, "ttbcr": 0,
        "ttbr0": 0x40004000, "ttbr1": 0x1_40008000,
    })
    return values


def guest_changed(values: dict[str, Any]) -> dict[str, Any]:
    """What the regs guest makes of ``values``."""
    out = dict(values)
    for name in (*(f"r{n}" for n in range(13)), *(f"r{n}_fiq" for n in range(8, 13)),
                 "lr_usr", "lr_svc", "lr_abt", "lr_und", "lr_irq", "lr_fiq"):
        out[name] = values[name] + 1
    for name in ("sp_usr", "sp_svc", "sp_abt", "sp_und", "sp_irq", "sp_fiq"):
        out[name] = values[name] + 4
    for name in ("spsr_svc", "spsr_abt", "spsr_und", "spsr_irq", "spsr_fiq"):
        out[name] = values[name] ^ 0xF0000000
    for n in range(32):
        out[f"d{n}"] = values[f"d{n}"] + 1
    out["fpscr"] = values["fpscr"] ^ 0xF0000000
    for name in ("tpidrurw", "tpidruro", "tpidrprw", "contextidr", "dacr", "prrr", "nmrr",
                 "dfar", "ifar", "dfsr", "ifsr", "ttbcr"):
        out[name] = values[name] + 1
    out["vbar"] = values["vbar"] + 0x20
    out["ttbr0"] = values["ttbr0"] + 0x100
    out["ttbr1"] = values["ttbr1"] + 0x100
    del out["pc"]
    out["cpsr"] = 0x1DF  # SYS mode, A, I, F masked
    return out


def every_value() -> dict[str, int]:
    values = host_values()
    values["sp_hyp"] = 0x12345678
    values.update({"fpexc": 0x40000000, "par": 0x1234_5678_0000_0800, "cpacr": 0xF00000,
                   "adfsr": 0, "aifsr": 0, "amair0": 0, "amair1": 0})
    return values


@pytest.mark.kvm
def test_reset_state_is_svc_mode_a32(arm) -> None:
    machine, _ = arm("psci_off")
    cpu = started(machine)
    assert cpu.features.el1_32bit
    tc = cpu.get_context()
    assert tc.complete
    assert tc.regs["pc"] == 0x40008000
    assert tc.regs["cpsr"] == 0x1D3
    assert tc.regs["sp_svc"] == 0x41000000
    assert tc.regs["mpidr"] == 0x80000000
    assert tc.regs["sctlr"] != 0
    assert regs.core_id("v16") in tc.raw  # not visible to A32, carried raw


@pytest.mark.kvm
def test_every_group_round_trips_exactly_through_kvm(arm) -> None:
    machine, _ = arm("psci_off")
    cpu = started(machine)
    tc = cpu.get_context()
    values = every_value()
    names = {entry[0] for entry in CP15}
    listed = {name for name in names if name in tc.regs}
    assert {"sctlr", "ttbr0", "dacr", "ifsr", "vbar", "prrr", "nmrr"} <= listed
    tc.write_regs(values)
    cpu.sync_kvm_state()
    cpu.kvm_state_dirty = True  # as after a run: read everything back
    cpu.sync_thread_context()
    got = {name: tc.regs[name] for name in values}
    assert {k: hex(v) for k, v in got.items() if v != values[k]} == {}
    # the architectural mapping, seen on the AArch64 side
    assert cpu.read_reg_id(regs.core_id("x19")) == values["sp_svc"]
    assert cpu.read_reg_id(regs.core_id("x15")) == values["sp_hyp"]
    assert cpu.read_reg_id(regs.core_id("x24")) == values["r8_fiq"]
    v5 = cpu.read_reg_id(regs.core_id("v5"))
    assert v5 == values["d11"] << 64 | values["d10"]
    far = cpu.read_reg_id(regs.sysreg_by_name("FAR_EL1"))
    assert far == values["ifar"] << 32 | values["dfar"]


@pytest.mark.kvm
def test_guest_changes_every_group_in_a_known_way(arm) -> None:
    machine, recorder = arm("regs")
    cpu = started(machine)
    values = host_values()
    cpu.get_context().write_regs(values)
    recorder.on_write = lambda offset, value: machine.stop("registers changed")
    assert machine.run().cause == "registers changed"
    expected = guest_changed(values)
    assert recorder.writes == [(0x104, 4, expected["r0"])]
    tc = machine.cpu.get_context()
    # SPSR_svc: see test_guest_sees_spsr_svc_set_by_the_host; the guest's write of
    # it (NZCV set) does reach the host
    assert tc.regs["spsr_svc"] & 0xF0000000 == 0xF0000000
    del expected["spsr_svc"]
    got = {name: tc.regs[name] for name in expected}
    assert {k: (hex(v), hex(expected[k])) for k, v in got.items() if v != expected[k]} == {}


@pytest.mark.kvm
@pytest.mark.xfail(
    reason="QEMU TCG (the harness's emulated arm64 host) does not load SPSR_svc "
    "(= SPSR_EL1) into the AArch32 view on an exception return to SVC mode: the guest "
    "reads 0. KVM itself keeps the value exactly "
    "(test_every_group_round_trips_exactly_through_kvm).",
    strict=False,
)
def test_guest_sees_spsr_svc_set_by_the_host(arm) -> None:
    machine, recorder = arm("regs")
    cpu = started(machine)
    values = host_values()
    cpu.get_context().write_regs(values)
    recorder.on_write = lambda offset, value: machine.stop("registers changed")
    assert machine.run().cause == "registers changed"
    assert machine.cpu.get_context().regs["spsr_svc"] == values["spsr_svc"] ^ 0xF0000000


def all_registers(cpu: ArmKvmCPU) -> dict[int, Any]:
    return {reg_id: cpu.read_reg_id(reg_id) for reg_id in cpu.reg_list}


MOVING = {regs.KVM_REG_ARM_TIMER_CNT, regs.sysreg_by_name("PMCCNTR_EL0")}


@pytest.mark.kvm
def test_every_register_survives_a_checkpoint_into_a_fresh_vm(arm) -> None:
    machine, recorder = arm("regs")
    cpu = started(machine)
    cpu.get_context().write_regs(host_values())
    recorder.on_write = lambda offset, value: machine.stop("registers changed")
    assert machine.run().cause == "registers changed"
    machine.drain()
    before = all_registers(cpu)
    state = json.loads(json.dumps(cpu.serialize_thread()))
    a32 = dict(cpu.get_context().regs)
    machine.drain_resume()

    fresh, _ = arm("psci_off")
    fresh_cpu = started(fresh)
    fresh.drain()
    fresh_cpu.unserialize_thread(state)
    fresh_cpu.sync_kvm_state()
    after = all_registers(fresh_cpu)
    assert set(before) == set(after)
    differ = {regs.register_name(i): (before[i], after[i]) for i in before
              if i not in MOVING and before[i] != after[i]}
    assert differ == {}
    assert fresh_cpu.get_context().regs == a32
