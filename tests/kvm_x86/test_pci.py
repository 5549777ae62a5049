"""PCI configuration mechanism #1 and the scratch PCI device, on the real KVM.

The guest (``guests/pci.S``) enumerates bus 0 through ports 0xCF8/0xCFC,
finds the scratch device, sizes and programs its BARs, uses it through MMIO
and IO ports, and reports every value it saw on port 0xE8; the tests compare
that list with the device's documented behaviour and look at the bus.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from x86_machines import build_guest, machine_config, machine_from, require_binutils

from kvm_x86.cpu import io_address
from kvm_x86.pci import PciHost, config_address
from kvm_x86.pci_config import PciConfig, PciScratchConfig, pci_config_issues
from kvm_x86.pci_devices import ScratchPciDevice
from kvmbase import CheckpointError, Machine
from kvmbase.config import validate_machine_config
from kvmbase.plugins import config_models
from kvmbase.sim.bus import Device

pytestmark = pytest.mark.kvm

REPORT_PORT = 0xE8
MARK_PORT = 0xE4
BAR0_ADDRESS = 0xE0000000
BAR0_MOVED = 0xE0200000
BAR2_ADDRESS = 0xE0100000
IO_BASE = 0xC000
ABSENT_SLOT = 5
SLOT = 1  # the default config's device: 00:01.0
ONES = 0xFFFFFFFF
SCRATCH_ID = 0x7E57 << 16 | 0x1234
SUM = (0x11111111 + 0x22222222 + 0x01020304) & ONES


def expected_reports() -> list[int]:
    """What the guest reports for the default PCI config, in order."""
    enumeration = [SCRATCH_ID if slot == SLOT else ONES for slot in range(32)]
    header = [
        SCRATCH_ID,  # 0x00 vendor, device
        0,  # 0x04 command, status
        0xFF000001,  # 0x08 class 0xFF0000, revision 1
        0,  # 0x0C header type 0, single function
        0,  # 0x10 BAR0: 32-bit memory
        0,  # 0x14 BAR1: unused
        0x0000000C,  # 0x18 BAR2: 64-bit, prefetchable
        0,  # 0x1C BAR2's upper half
        0x00000001,  # 0x20 BAR4: IO
        0,  # 0x24 BAR5: unused
        0x0001_1234,  # 0x2C subsystem 0x0001, subsystem vendor 0x1234
        0,  # 0x34 no capabilities
        0,  # 0x3C interrupt line 0, pin 0 (none)
    ]
    sizing = [
        0xFFFFF000,
        0x1000,  # BAR0: 4 KiB
        0xFFFF000C,
        0xFFFFFFFF,
        0x10000,
        0,  # BAR2: 64 KiB
        0xFFFFFFF1,
        16,  # BAR4: 16 ports
    ]
    programmed = [0x00000003]  # command: IO and memory decoding on
    device_use = [
        SCRATCH_ID,
        0x10000,
        0x22222222,
        SUM,  # BAR0 registers
        0x89ABCDEF,
        0x01234567,
        0xFEDCBA98,  # BAR2 memory, 64-bit and 32-bit
        SCRATCH_ID,
        SUM,  # BAR4 ports
    ]
    narrow = [0x7E57, 0x00, 0x00, SCRATCH_ID, 0xFF000001, 0x0000000B, 0x00004010]
    absent = [ONES, 0xFFFF, 0xFF, ONES]
    address_register = [0x80FFFF3F, 0x80FFFF3F, 0xFF, 0xFFFF]
    moved = [SCRATCH_ID, 0x22222222, 0x00000002]
    return [
        *enumeration,
        SLOT,
        *header,
        *sizing,
        *programmed,
        *device_use,
        *narrow,
        *absent,
        *address_register,
        *moved,
    ]


class Recorder(Device):
    """Keeps every value written; may stop the run at the first write."""

    def __init__(self, name: str, stop: Callable[[], None] | None = None) -> None:
        super().__init__(name)
        self.values: list[int] = []
        self.stop = stop

    def write(self, offset: int, size: int, value: int) -> None:
        self.values.append(value)
        if self.stop is not None:
            self.stop()

    def serialize(self) -> dict[str, Any]:
        return {"values": self.values}

    def unserialize(self, state: dict[str, Any]) -> None:
        self.values = list(state["values"])


@pytest.fixture(scope="session")
def pci_guests(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """``pci.S`` built for CPL0 and CPL3."""
    require_binutils()
    out = tmp_path_factory.mktemp("pci-guests")
    symbols = {
        "BAR0_ADDRESS": BAR0_ADDRESS,
        "BAR0_MOVED": BAR0_MOVED,
        "BAR2_ADDRESS": BAR2_ADDRESS,
        "IO_BASE": IO_BASE,
        "ABSENT_SLOT": ABSENT_SLOT,
    }
    return {
        ring: build_guest("pci.S", out / f"pci-ring{ring}.bin", {"RING": ring, **symbols})
        for ring in (0, 3)
    }


def pci_host(machine: Machine) -> PciHost:
    """The PCI host the x86 set-up attached."""
    host = machine.devices["pci"]
    assert isinstance(host, PciHost)
    return host


def add_recorders(machine: Machine, *, stop_at_mark: bool = False) -> tuple[Recorder, Recorder]:
    stop = (lambda: machine.stop("BARs programmed")) if stop_at_mark else None
    reports = Recorder("reports")
    mark = Recorder("mark", stop)
    machine.add_device(reports, machine.port_address(REPORT_PORT), 4)
    machine.add_device(mark, machine.port_address(MARK_PORT), 1)
    return reports, mark


def machine_data(image: Path, pci: PciConfig | None = None) -> dict[str, Any]:
    if pci is None:
        return machine_config(image)
    return machine_config(image, x86={"pci": pci.model_dump(mode="json")})


def scratch(host: PciHost) -> ScratchPciDevice:
    device = host.functions[(SLOT, 0)]
    assert isinstance(device, ScratchPciDevice)
    return device


def mapped_device(machine: Machine, address: int) -> str | None:
    mapping = machine.system.bus.find(address)
    return None if mapping is None else mapping.device.name


# -- the guest ---------------------------------------------------------------------
@pytest.mark.parametrize("ring", [0, 3])
def test_guest_enumerates_sizes_programs_and_uses_the_device(
    pci_guests: dict[int, Path], machines: list[Machine], ring: int
) -> None:
    machine = machine_from(machines, machine_data(pci_guests[ring]))
    host = pci_host(machine)
    reports, mark = add_recorders(machine)
    assert [mapped_device(machine, a) for a in (BAR0_ADDRESS, BAR2_ADDRESS)] == [None, None]

    result = machine.run()

    assert result.cause == "all CPUs halted"
    assert reports.values == expected_reports()
    assert mark.values == [1]
    device = scratch(host)
    # BAR0 moved, BAR2 stayed, BAR4 left the bus with IO decoding off.
    assert mapped_device(machine, BAR0_MOVED) == "pci-scratch0.bar0"
    assert mapped_device(machine, BAR0_MOVED + 0xFFF) == "pci-scratch0.bar0"
    assert mapped_device(machine, BAR0_ADDRESS) is None
    assert mapped_device(machine, BAR2_ADDRESS + 0xFFFF) == "pci-scratch0.bar2"
    assert mapped_device(machine, io_address(IO_BASE)) is None
    assert [bar.mapped_at for bar in device.bars] == [BAR0_MOVED, BAR2_ADDRESS, None]
    # What the guest wrote landed in the device.
    assert device.memory.data[0x10:0x18] == (0x0123456789ABCDEF).to_bytes(8, "little")
    assert device.registers.scratch[0:8] == bytes.fromhex("1111111122222222")
    assert device.config[0x3C] == 0x0B
    assert host.address == 0x80000000 | SLOT << 11 | 0x04  # the last SELECT
    # 32 probes write CONFIG_ADDRESS and read CONFIG_DATA: every one exited.
    assert machine.statistics()["cpu0"]["num_io"] >= 3 * 32


def test_checkpoint_after_bar_programming_restores_the_mapping(
    pci_guests: dict[int, Path], machines: list[Machine], tmp_path: Path
) -> None:
    first = machine_from(machines, machine_data(pci_guests[3]))
    pci_host(first)
    reports, _ = add_recorders(first, stop_at_mark=True)
    assert first.run().cause == "BARs programmed"
    done_before = len(reports.values)
    checkpoint = first.checkpoint(tmp_path / "ckpt")
    first.close()

    manifest = json.loads((checkpoint / "manifest.json").read_text())
    saved = manifest["devices"]["pci"]["functions"]["00:01.0"]
    assert saved["name"] == "pci-scratch0"
    assert {index: bar["mapped_at"] for index, bar in saved["bars"].items()} == {
        "0": BAR0_ADDRESS,
        "2": BAR2_ADDRESS,
        "4": IO_BASE,
    }

    def before_load(machine: Machine) -> None:
        host = pci_host(machine)
        add_recorders(machine)
        # Until the core's checkpoints skip BAR windows (whose state their
        # function saves), the windows must be on the bus before the restore
        # compares device names: load the PCI state first.
        host.unserialize(manifest["devices"]["pci"])

    second = Machine.restore(checkpoint, before_load=before_load)
    machines.append(second)
    assert mapped_device(second, BAR0_ADDRESS) == "pci-scratch0.bar0"
    assert mapped_device(second, BAR2_ADDRESS) == "pci-scratch0.bar2"
    assert mapped_device(second, io_address(IO_BASE)) == "pci-scratch0.bar4"

    assert second.run().cause == "all CPUs halted"
    restored = second.devices["reports"]
    assert isinstance(restored, Recorder)
    assert restored.values == expected_reports()
    # The guest's MMIO after the restore went through the restored windows.
    assert second.statistics()["cpu0"]["num_mmio"] >= 11
    assert done_before == expected_reports().index(0x00000003) + 1


def test_restore_into_a_different_device_is_refused(
    pci_guests: dict[int, Path], machines: list[Machine], tmp_path: Path
) -> None:
    first = machine_from(machines, machine_data(pci_guests[3]))
    pci_host(first)
    add_recorders(first, stop_at_mark=True)
    first.run()
    state = first.devices["pci"].serialize()

    config = PciConfig(devices=[PciScratchConfig(name="pci-scratch0", slot=SLOT, device_id=1)])
    other = machine_from(machines, machine_data(pci_guests[3], config))
    with pytest.raises(CheckpointError, match="different PCI device"):
        pci_host(other).unserialize(state)

    config = PciConfig(devices=[PciScratchConfig(name="pci-scratch0", slot=2)])
    moved = machine_from(machines, machine_data(pci_guests[3], config))
    with pytest.raises(CheckpointError, match="PCI devices differ"):
        pci_host(moved).unserialize(state)


# -- the host side, without running a guest ----------------------------------------
def config_write(host: PciHost, slot: int, register: int, value: int, size: int = 4) -> None:
    host.write(0, 4, config_address(slot, 0, register))
    host.write(4 + (register & 3), size, value)


def config_read(host: PciHost, slot: int, register: int, size: int = 4) -> int:
    host.write(0, 4, config_address(slot, 0, register))
    return host.read(4 + (register & 3), size)


def test_a_bar_over_ram_is_not_decoded(
    pci_guests: dict[int, Path], machines: list[Machine], caplog: pytest.LogCaptureFixture
) -> None:
    machine = machine_from(machines, machine_data(pci_guests[0]))
    host = pci_host(machine)
    config_write(host, SLOT, 0x10, 0x00200000)  # inside the 16 MiB of RAM
    with caplog.at_level(logging.WARNING, logger="kvm_x86.pci_devices"):
        config_write(host, SLOT, 0x04, 0x0002, size=2)
    assert "BAR0 not decoded" in caplog.text
    assert scratch(host).bars[0].mapped_at is None
    # Moved out of RAM, it decodes.
    config_write(host, SLOT, 0x10, BAR0_ADDRESS)
    assert mapped_device(machine, BAR0_ADDRESS) == "pci-scratch0.bar0"


def test_64_bit_bar_above_4_gib_and_multi_function_header(
    pci_guests: dict[int, Path], machines: list[Machine]
) -> None:
    config = PciConfig(
        devices=[
            PciScratchConfig(name="f0", slot=3, io_bar=False),
            PciScratchConfig(name="f1", slot=3, function=1, memory_size=4096),
        ]
    )
    machine = machine_from(machines, machine_data(pci_guests[0], config))
    host = pci_host(machine)
    assert config_read(host, 3, 0x0E, size=1) == 0x80  # function 0 says: more follow
    host.write(0, 4, config_address(3, 1, 0x0C))
    assert host.read(6, 1) == 0x00
    config_write(host, 3, 0x18, 0x40000000)
    config_write(host, 3, 0x1C, 0x1)  # BAR2 at 0x1_4000_0000
    config_write(host, 3, 0x04, 0x0003, size=2)
    assert config_read(host, 3, 0x04, size=2) == 0x0002  # no IO BAR, so IO enable is fixed 0
    assert mapped_device(machine, 0x1_4000_FFFF) == "f0.bar2"
    config_write(host, 3, 0x1C, 0x0)  # the upper half moves it below 4 GiB
    assert mapped_device(machine, 0x1_4000_0000) is None
    assert mapped_device(machine, 0x4000_0000) == "f0.bar2"
    config_write(host, 3, 0x04, 0x0000, size=2)
    assert mapped_device(machine, 0x4000_0000) is None


# -- the config ----------------------------------------------------------------------
def test_config_defaults_and_errors_point_at_the_entry() -> None:
    (device,) = PciConfig().devices
    assert (device.name, device.location, device.vendor_id, device.device_id) == (
        "pci-scratch0",
        "00:01.0",
        0x1234,
        0x7E57,
    )
    assert (device.class_code, device.memory_size, device.io_bar) == (0xFF0000, 0x10000, True)
    with pytest.raises(ValidationError) as error:
        PciConfig.model_validate(
            {"devices": [{"name": "a", "slot": 3}, {"name": "b", "slot": 3, "vendor_id": "0x8086"}]}
        )
    assert "00:03.0 is already taken by device 0" in str(error.value)
    with pytest.raises(ValidationError, match="3 KiB is not a power of two"):
        PciScratchConfig(name="a", slot=0, memory_size="3KiB")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="less than or equal to 65534"):
        PciScratchConfig(name="a", slot=0, vendor_id=0xFFFF)
    with pytest.raises(ValidationError, match="no function 0"):
        PciConfig.model_validate({"devices": [{"name": "a", "slot": 3, "function": 2}]})


def test_config_issues_name_devices_in_the_way_of_the_host() -> None:
    config = validate_machine_config(
        {
            "arch": "x86",
            "devices": [
                {"type": "uart16550", "name": "pci", "port": 0xCF4, "output": "none"},
                {"type": "uart16550", "name": "com1", "port": 0x3F8, "output": "none"},
            ],
        },
        config_models(),
    )
    issues = pci_config_issues(config, PciConfig())
    assert [(issue.loc, issue.input) for issue in issues] == [
        (("devices", 0, "name"), "pci"),
        (("devices", 0, "port"), 0xCF4),
    ]
    assert pci_config_issues(config, PciConfig(enabled=False)) == []
