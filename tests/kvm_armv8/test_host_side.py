"""kvm_armv8 on any host: encodings, names, the thread context, the PL011,
config checks, the plugin listing and the guests' build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import skip_host_lacks

from kvm_armv8.arm import regs
from kvm_armv8.arm.irq import IrqType, decode_irq_line, irq_line
from kvm_armv8.arm.pl011 import FR, FR_RXFE, FR_TXFE, FR_TXFF, ID_BASE, IMSC, INT_RX, MIS, Pl011
from kvm_armv8.arm.vcpu import default_mpidr
from kvm_armv8.guests import assemble, guest_path, toolchain
from kvm_armv8.plugin import DESCRIPTION, demo_config
from kvm_armv8.thread_context import ArmV8ThreadContext
from kvmbase.config import ConfigError, validate_machine_config
from kvmbase.plugins import check_machine_config, config_models


def test_irq_line_encoding() -> None:
    assert irq_line(IrqType.SPI, 40) == 1 << 24 | 40
    assert irq_line(IrqType.PPI, 27, 3) == 2 << 24 | 3 << 16 | 27
    assert irq_line(IrqType.CPU, 1, 2) == 2 << 16 | 1
    # the second vCPU field (KVM_CAP_ARM_IRQ_LINE_LAYOUT_2)
    assert irq_line(IrqType.PPI, 20, 0x123, layout_2=True) == 1 << 28 | 2 << 24 | 0x23 << 16 | 20
    assert decode_irq_line(irq_line(IrqType.PPI, 20, 0x123, layout_2=True)) == (
        IrqType.PPI, 20, 0x123)
    with pytest.raises(ValueError, match="LAYOUT_2"):
        irq_line(IrqType.PPI, 20, 256)
    with pytest.raises(ValueError, match="PPI 40"):
        irq_line(IrqType.PPI, 40)
    with pytest.raises(ValueError, match="SPI 31"):
        irq_line(IrqType.SPI, 31)


def test_register_names_and_decoding() -> None:
    assert regs.register_name(regs.core_id("x7")) == "x7"
    assert regs.register_name(regs.sysreg_id(3, 0, 1, 0, 0)) == "SCTLR_EL1"
    assert regs.register_name(regs.sysreg_id(3, 0, 0, 7, 3)) == "S3_0_C0_C7_3"
    assert regs.register_name(regs.ccsidr_id(2)) == "CCSIDR[2]"
    assert regs.register_name(regs.KVM_REG_ARM_PSCI_VERSION) == "PSCI_VERSION"
    # the timer is named by meaning: KVM's CNT id carries CNTV_CVAL's encoding
    assert regs.register_name(regs.KVM_REG_ARM_TIMER_CNT) == "CNTVCT_EL0"
    assert regs.register_name(regs.KVM_REG_ARM_TIMER_CVAL) == "CNTV_CVAL_EL0"
    decoded = regs.decode(regs.core_id("v3"))
    assert (decoded.group, decoded.size, decoded.fields) == (regs.RegGroup.CORE, 16,
                                                             (regs.OFFSET_VREGS + 48,))
    assert regs.decode(regs.sysreg_by_name("S3_3_C13_C0_2")).name == "TPIDR_EL0"
    assert regs.is_invariant(regs.sysreg_by_name("ID_AA64PFR0_EL1"))
    assert regs.is_invariant(regs.sysreg_by_name("MIDR_EL1"))
    assert not regs.is_invariant(regs.sysreg_by_name("MPIDR_EL1"))
    assert not regs.is_invariant(regs.sysreg_by_name("SCTLR_EL1"))
    with pytest.raises(KeyError):
        regs.core_id("x31")


def test_default_mpidr_follows_kvm() -> None:
    assert default_mpidr(0) == 0x80000000
    assert default_mpidr(17) == 0x80000101


def test_thread_context_round_trips_through_json() -> None:
    tc = ArmV8ThreadContext()
    tc.write_regs({"x0": 1, "v31": (1 << 128) - 1, "pc": 0x40080000})
    assert tc.assigned == {"x0", "v31", "pc"}
    tc.raw = {regs.KVM_REG_ARM_PSCI_VERSION: 0x10001, regs.sve_zreg_id(0): bytes(range(256))}
    tc.invariant = {regs.ccsidr_id(0): 0x700FE01A}
    tc.complete = True
    state = json.loads(json.dumps(tc.save_state()))
    again = ArmV8ThreadContext()
    again.load_state(state)
    assert again.regs == tc.regs and again.raw == tc.raw and again.invariant == tc.invariant
    assert again.complete and again.pc == 0x40080000


def test_pl011_flags_ids_and_interrupt() -> None:
    levels: list[bool] = []
    uart = Pl011("uart0", "none", levels.append)
    assert uart.read(FR, 4) & (FR_TXFF | FR_RXFE | FR_TXFE) == FR_RXFE | FR_TXFE
    assert [uart.read(ID_BASE + 4 * n, 4) for n in range(8)] == [
        0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1]
    for byte in b"hi\n":
        uart.write(0, 4, byte)
    assert uart.transmitted == b"hi\n"
    uart.write(IMSC, 4, INT_RX)
    uart.feed(b"k")
    assert levels == [True] and uart.read(MIS, 4) == INT_RX
    assert not uart.read(FR, 4) & FR_RXFE
    assert uart.read(0, 4) == ord("k")
    assert levels == [True, False]
    again = Pl011("uart0", "none")
    again.unserialize(json.loads(json.dumps(uart.serialize())))
    assert again.transmitted == b"hi\n" and again.imsc == INT_RX


def test_config_checks() -> None:
    config = validate_machine_config(demo_config(), config_models())
    check_machine_config(config)
    bad = dict(demo_config())
    bad["armv8"] = {"gic": "v2", "cpus": 9, "uart": {"address": 0x40001000},
                    "stack_top": 0x40000008}
    bad["devices"] = [{"type": "uart16550", "port": 0x3F8}]
    with pytest.raises(ConfigError) as error:
        check_machine_config(validate_machine_config(bad, config_models()))
    text = str(error.value)
    for expected in ("armv8.cpus", "armv8.uart.address", "armv8.stack_top", "devices.0.port"):
        assert expected in text


def test_plugin_is_listed_and_says_where_it_runs() -> None:
    command = [sys.executable, "-c", "from kvmbase.cli import main; main()", "plugins", "--json"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    listing = {arch["name"]: arch for arch in json.loads(out)["architectures"]}
    runs, _why = DESCRIPTION.runs_on_host()
    assert listing["armv8"]["runs here"] is False or runs
    assert listing["armv8"]["distribution"] == "kvm-armv8"
    assert "aarch64" in listing["armv8"]["hosts"]
    if not runs:
        assert "armv8 runs on aarch64" in listing["armv8"]["why"]


def test_shipped_demo_is_built_from_its_source(tmp_path: Path) -> None:
    if toolchain() is None:
        skip_host_lacks("aarch64 binutils (binutils-aarch64-linux-gnu)")
    built = assemble(guest_path("demo.S"), tmp_path / "demo.bin")
    assert built.read_bytes() == guest_path("demo.bin").read_bytes()


def test_every_test_guest_builds(arm_guest) -> None:
    for name in ("mmio", "spin", "regs", "timer_irq", "spi_irq", "ppi_irq_cpu1"):
        assert arm_guest(name).stat().st_size > 0
