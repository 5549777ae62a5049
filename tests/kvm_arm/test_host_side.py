"""Host-side checks of the arm plugin (no KVM needed)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

from kvm_arm.cpu import NAMED_IDS
from kvm_arm.plugin import DESCRIPTION, demo_config
from kvm_arm.thread_context import (
    A64_NAMES,
    FIELDS,
    GP_NAMES,
    REGISTER_NAMES,
    ArmThreadContext32,
    to_a32,
    to_a64,
)
from kvm_armv8.arm import regs
from kvmbase.config import validate_machine_config
from kvmbase.plugins import config_models

M32 = 0xFFFF_FFFF


def test_plugin_description() -> None:
    assert DESCRIPTION.name == "arm"
    assert DESCRIPTION.host_machines == ("aarch64",)
    assert DESCRIPTION.thread_context_class is ArmThreadContext32


def test_plugins_command_lists_arm_and_says_where_it_runs() -> None:
    command = [sys.executable, "-c", "from kvmbase.cli import main; main()", "plugins", "--json"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    listing = {arch["name"]: arch for arch in json.loads(out)["architectures"]}
    arm = listing["arm"]
    assert arm["distribution"] == "kvm-arm" and arm["hosts"] == ["aarch64"]
    runs, _why = DESCRIPTION.runs_on_host()
    assert arm["runs here"] is runs == (platform.machine() == "aarch64")
    if not runs:
        assert f"host is {platform.machine()}; arm runs on aarch64" in arm["why"]


def test_gp_mapping_is_the_architectural_one() -> None:
    expected = {
        "r0": "x0", "r12": "x12", "sp_usr": "x13", "lr_usr": "x14", "sp_hyp": "x15",
        "lr_irq": "x16", "sp_irq": "x17", "lr_svc": "x18", "sp_svc": "x19",
        "lr_abt": "x20", "sp_abt": "x21", "lr_und": "x22", "sp_und": "x23",
        "r8_fiq": "x24", "r12_fiq": "x28", "sp_fiq": "x29", "lr_fiq": "x30",
        "pc": "pc", "cpsr": "pstate", "spsr_svc": "spsr_el1", "spsr_fiq": "spsr_fiq",
    }
    by_a32 = {f.a32: f.a64 for f in FIELDS}
    for a32, a64 in expected.items():
        assert by_a32[a32] == a64
    assert len(GP_NAMES) == 31


def test_d_registers_are_halves_of_v() -> None:
    a64 = {"v3": 0x1111_2222_3333_4444_5555_6666_7777_8888}
    a32 = to_a32(a64)
    assert a32["d6"] == 0x5555_6666_7777_8888
    assert a32["d7"] == 0x1111_2222_3333_4444
    back = to_a64({"d6": 1, "d7": 2}, {})
    assert back["v3"] == 2 << 64 | 1


def test_split_and_partial_registers_keep_the_other_bits() -> None:
    base = {"far_el1": 0xAAAA_BBBB_CCCC_DDDD, "mair_el1": 0, "fpcr": 1 << 3,
            "fpsr": 0, "x5": 0xFFFF_0000_0000_0000, "sctlr_el1": 0x1_0000_0000}
    a32 = to_a32(base)
    assert (a32["dfar"], a32["ifar"]) == (0xCCCC_DDDD, 0xAAAA_BBBB)
    out = to_a64({"dfar": 1, "ifar": 2, "prrr": 3, "nmrr": 4, "fpscr": 0xF300_0001,
                  "r5": 7, "sctlr": 0xC5_0078}, base)
    assert out["far_el1"] == 2 << 32 | 1
    assert out["mair_el1"] == 4 << 32 | 3
    assert out["fpsr"] == 0xF000_0001
    assert out["fpcr"] == 0x0300_0000 | 1 << 3  # bit 3 is no FPSCR bit: kept
    assert out["x5"] == 0xFFFF_0000_0000_0007
    assert out["sctlr_el1"] == 0x1_00C5_0078
    assert to_a32(out)["fpscr"] == 0xF300_0001


def test_every_a64_name_has_an_id() -> None:
    assert set(NAMED_IDS.values()) == set(A64_NAMES)
    assert regs.core_id("x13") in NAMED_IDS
    assert regs.sysreg_by_name("DACR32_EL2") in NAMED_IDS
    assert "d31" in REGISTER_NAMES and "fpscr" in REGISTER_NAMES


def test_context_round_trips_through_save_state() -> None:
    tc = ArmThreadContext32()
    assert tc.regs["cpsr"] == 0x1D3
    tc.write_regs({"r3": 3, "d17": 17})
    tc.a64 = {"x3": 3, "v8": 17 << 64}
    state = tc.save_state()
    other = ArmThreadContext32()
    other.load_state(state)
    assert other.regs == tc.regs and other.a64 == tc.a64


def test_demo_config_is_valid() -> None:
    config = validate_machine_config(demo_config(), config_models())
    assert config.arch == "arm"
