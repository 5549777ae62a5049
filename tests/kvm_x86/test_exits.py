"""Every exit kind an x86 guest can cause, on the real KVM.

Guests are in ``guests/`` (built once per session by the conftest); the IO,
MMIO and coalesced-MMIO guests run both at CPL0 (KVM's instruction emulator
on PVM) and at CPL3 (native; port IO allowed by the TSS I/O bitmap).
"""

from __future__ import annotations

import re
import shutil
import struct

import pytest

from kvmbase import abi
from kvmbase.errors import BusError, EmulationFailureError, GuestShutdownError

pytestmark = pytest.mark.kvm

PROBE_PORT = 0xE0
PROBE_PORTS = 16  # 0xE0..0xEF
ZONE = 0xD0001000  # coalesced
PLAIN = 0xD0002000
STACK_TOP = 0x80000  # TSS.RSP0: where a CPL3 -> CPL0 fault pushes its frame
HALTED = "all CPUs halted"


def stats(machine):
    return machine.statistics()["cpu0"]


def add_probe(machine, recording_device, answers=None, log=None):
    probe = recording_device("probe", log, answers)
    machine.add_device(probe, machine.port_address(PROBE_PORT), PROBE_PORTS)
    return probe


def assert_came_back_from_ring3(machine):
    """The run ended in the #GP handler at CPL0, entered from a hlt at CPL3."""
    err, rip, cs, _rflags, rsp, ss = struct.unpack(
        "<6Q", machine.system.read_memory(STACK_TOP - 48, 48)
    )
    assert (err, cs, rsp, ss) == (0, 0x2B, 0x70000, 0x23)
    assert machine.system.read_memory(rip, 1) == b"\xf4"  # the faulting hlt
    assert machine.cpu.thread.segments["cs"].selector == 0x08


def finish(machine, ring, result):
    assert result.cause == HALTED
    assert result.code == 0
    machine.cpu.get_context()
    if ring == 3:
        assert_came_back_from_ring3(machine)


# -- port IO -------------------------------------------------------------------
@pytest.mark.parametrize("ring", [0, 3])
def test_port_out_and_in_of_each_size(guests, make_machine, recording_device, access, ring):
    machine = make_machine(guests[f"io-ring{ring}"])
    probe = add_probe(
        machine,
        recording_device,
        {(0, 1): [0xA7], (2, 2): [0x9A3C], (4, 4): [0x8BADF00D]},
    )
    result = machine.run()
    finish(machine, ring, result)

    def a(kind, port, size, value):
        return access("probe", kind, port - PROBE_PORT, size, value)

    assert probe.log == [
        a("w", 0xE0, 1, 0x5A),
        a("w", 0xE2, 2, 0xBEEF),
        a("w", 0xE4, 4, 0xCAFEF00D),
        a("w", 0xE1, 1, 0xC3),
        a("r", 0xE0, 1, 0xA7),
        a("r", 0xE2, 2, 0x9A3C),
        a("r", 0xE4, 4, 0x8BADF00D),
        # the guest reports what it read as dwords on port 0xE8
        a("w", 0xE8, 4, 0xFFFFFFA7),
        a("w", 0xE8, 4, 0xFFFF9A3C),
        a("w", 0xE8, 4, 0x8BADF00D),
    ]
    cpu = machine.cpu
    # in %al / %ax keep RAX's upper bits (-1 before); in %eax zero-extends
    assert cpu.read_register("r8") == 0xFFFFFFFF_FFFFFFA7
    assert cpu.read_register("r9") == 0xFFFFFFFF_FFFF9A3C
    assert cpu.read_register("r10") == 0x00000000_8BADF00D
    s = stats(machine)
    assert (s["num_io"], s["num_mmio"], s["num_coalesced_mmio"], s["num_halt"]) == (10, 0, 0, 1)
    assert s["num_vm_exits"] == 11


@pytest.mark.parametrize("ring", [0, 3])
def test_string_port_io(guests, make_machine, recording_device, access, ring):
    machine = make_machine(guests[f"string_io-ring{ring}"])
    probe = add_probe(machine, recording_device, {(2, 2): [0x1111, 0x2222, 0x3333, 0x4444]})
    result = machine.run()
    finish(machine, ring, result)

    assert probe.log == [access("probe", "w", 1, 1, byte) for byte in b"kvm!?"] + [
        access("probe", "r", 2, 2, value) for value in (0x1111, 0x2222, 0x3333, 0x4444)
    ]
    # rep insw stored exactly 4 words; the 0xCC filler after them is intact
    assert machine.system.read_memory(0x100210, 16) == bytes.fromhex(
        "1111222233334444cccccccccccccccc"
    )
    cpu = machine.cpu
    assert cpu.read_register("r8") == 0x100205  # RSI after rep outsb
    assert cpu.read_register("r9") == 0  # RCX after rep outsb
    assert cpu.read_register("rdi") == 0x100218
    assert cpu.read_register("rcx") == 0
    s = stats(machine)
    # num_io counts exits, not elements: KVM's emulator makes one exit per
    # outsb element (5) and serves the whole rep insw in one exit (count 4),
    # so 9 elements arrive through 6 IO exits.
    assert s["num_io"] == 6
    assert s["num_vm_exits"] == s["num_io"] + s["num_halt"] == 7


# -- MMIO ----------------------------------------------------------------------
@pytest.mark.parametrize("ring", [0, 3])
def test_mmio_read_and_write_of_each_size(guests, make_machine, recording_device, access, ring):
    machine = make_machine(guests[f"mmio-ring{ring}"])
    device = recording_device(
        "mm",
        answers={
            (0x10, 1): [0xA5],
            (0x12, 2): [0xBEEF],
            (0x14, 4): [0xDEADBEEF],
            (0x18, 8): [0xFEDCBA9876543210],
        },
    )
    machine.add_device(device, PLAIN, 0x1000)
    result = machine.run()
    finish(machine, ring, result)

    def a(kind, offset, size, value):
        return access("mm", kind, offset, size, value)

    assert device.log == [
        a("w", 0x00, 1, 0x11),
        a("w", 0x02, 2, 0x2233),
        a("w", 0x04, 4, 0x44556677),
        a("w", 0x08, 8, 0x8899AABBCCDDEEFF),
        a("r", 0x10, 1, 0xA5),
        a("r", 0x12, 2, 0xBEEF),
        a("r", 0x14, 4, 0xDEADBEEF),
        a("r", 0x18, 8, 0xFEDCBA9876543210),
        a("w", 0x20, 1, 0xA5),
        a("w", 0x22, 2, 0xBEEF),
        a("w", 0x24, 4, 0xDEADBEEF),
        a("w", 0x28, 8, 0xFEDCBA9876543210),
    ]
    cpu = machine.cpu
    assert cpu.read_register("r8") == 0xFFFFFFFF_FFFFFFA5
    assert cpu.read_register("r9") == 0xFFFFFFFF_FFFFBEEF
    assert cpu.read_register("r10") == 0x00000000_DEADBEEF
    assert cpu.read_register("r11") == 0xFEDCBA98_76543210
    s = stats(machine)
    assert (s["num_mmio"], s["num_io"], s["num_coalesced_mmio"], s["num_halt"]) == (12, 0, 0, 1)


# -- coalesced MMIO ------------------------------------------------------------
def coalesced_expectation(access, loops):
    """The accesses coalesced.S makes, in program order (zone and plain share a log)."""
    return [
        access("zone", "w", 0x00, 1, 0x01),
        access("zone", "w", 0x02, 2, 0x0202),
        access("zone", "w", 0x04, 4, 0x03030303),
        access("zone", "w", 0x08, 8, 0x0404040404040404),
        access("plain", "w", 0x00, 4, 0xB0B0B0B0),
        access("zone", "w", 0x10, 1, 0x05),
        access("zone", "w", 0x12, 2, 0x0606),
        access("zone", "r", 0x20, 4, 0x600DF00D),
        *(access("zone", "w", 0x100, 4, index) for index in range(loops)),
    ]


def run_coalesced(guest, make_machine, recording_device, ring):
    machine = make_machine(guest, coalesced=[(ZONE, 0x1000)])
    log = []
    machine.add_device(recording_device("zone", log, {(0x20, 4): [0x600DF00D]}), ZONE, 0x1000)
    machine.add_device(recording_device("plain", log), PLAIN, 0x1000)
    result = machine.run()
    finish(machine, ring, result)
    assert machine.cpu.read_register("r8") == 0x600DF00D
    return machine, log


@pytest.mark.parametrize("ring", [0, 3])
def test_coalesced_mmio_arrives_in_order(guests, make_machine, recording_device, access, ring):
    machine, log = run_coalesced(
        guests[f"coalesced-ring{ring}"], make_machine, recording_device, ring
    )
    assert log == coalesced_expectation(access, 8)
    s = stats(machine)
    # 4 + 2 + 8 zone writes are coalesced; only the plain write and the
    # zone read exit as MMIO
    assert s["num_coalesced_mmio"] == 14
    assert s["num_mmio"] == 2
    assert s["num_io"] == 0
    assert s["num_vm_exits"] == 3  # plain write, zone read, hlt


@pytest.mark.parametrize("ring", [0, 3])
def test_coalesced_mmio_ring_full(guests, make_machine, recording_device, access, ring):
    """400 back-to-back zone writes overflow KVM's ring: order still holds."""
    machine, log = run_coalesced(
        guests[f"coalesced_many-ring{ring}"], make_machine, recording_device, ring
    )
    assert log == coalesced_expectation(access, 400)
    s = stats(machine)
    # The ring holds KVM_COALESCED_MMIO_MAX - 1 entries; the write that finds
    # it full exits as ordinary MMIO (after which userspace empties it).
    full_exits = 400 // abi.KVM_COALESCED_MMIO_MAX
    assert full_exits == 2
    assert s["num_mmio"] == 2 + full_exits
    assert s["num_coalesced_mmio"] == 6 + 400 - full_exits


def test_coalesced_write_without_device(guests, make_machine):
    machine = make_machine(guests["bad_coalesced"], coalesced=[(ZONE, 0x1000)])
    with pytest.raises(BusError) as info:
        machine.run()
    assert "coalesced 4-byte write to address 0xd0001010: no device there" in str(info.value)
    assert info.value.vcpu_id == 0


# -- HLT, shutdown ---------------------------------------------------------------
def test_hlt(guests, make_machine):
    machine = make_machine(guests["halt"])
    result = machine.run()
    assert result.cause == HALTED
    assert result.code == 0
    s = stats(machine)
    assert s["num_halt"] == 1
    assert s["num_vm_exits"] == 1
    assert (s["num_io"], s["num_mmio"]) == (0, 0)
    assert machine.cpu.read_register("rip") == 0x100001


def test_triple_fault_is_guest_shutdown(guests, make_machine):
    machine = make_machine(guests["triple_fault"])
    with pytest.raises(GuestShutdownError) as info:
        machine.run()
    error = info.value
    assert error.vcpu_id == 0
    assert "KVM_EXIT_SHUTDOWN" in str(error)
    assert set(error.state) >= {"regs", "sregs", "fpu"}
    assert stats(machine)["num_halt"] == 0


# -- accesses where no device is ---------------------------------------------------
@pytest.mark.parametrize(
    ("guest", "text", "al"),
    [
        ("bad_out", "write to 1-byte port 0xf0", 0x42),  # one past the probe
        ("bad_out_below", "write to 1-byte port 0xdf", 0x42),  # one below it
        ("bad_in", "read from 2-byte port 0x80", 0xFE),
    ],
)
def test_unmapped_port_is_bus_error(guests, make_machine, recording_device, guest, text, al):
    machine = make_machine(guests[guest])
    probe = add_probe(machine, recording_device)
    with pytest.raises(BusError) as info:
        machine.run()
    error = info.value
    assert re.search(rf"\b{text}: no device there$", str(error)), str(error)
    assert error.vcpu_id == 0
    assert error.state["regs"]["rax"] & 0xFF == al
    assert probe.log == []
    assert stats(machine)["num_io"] == 1


@pytest.mark.parametrize(
    ("guest", "text"),
    [
        ("bad_mmio_write", "write to 4-byte address 0xd0008000"),
        ("bad_mmio_read", "read from 8-byte address 0xd0003000"),  # one past "mm"
    ],
)
def test_unmapped_mmio_is_bus_error(guests, make_machine, recording_device, guest, text):
    machine = make_machine(guests[guest])
    device = recording_device("mm")
    machine.add_device(device, PLAIN, 0x1000)
    with pytest.raises(BusError) as info:
        machine.run()
    assert re.search(rf"\b{text}: no device there$", str(info.value)), str(info.value)
    assert info.value.vcpu_id == 0
    assert device.log == []
    assert stats(machine)["num_mmio"] == 1


# -- emulation failure ---------------------------------------------------------------
def test_emulation_failure_names_rip_and_bytes(guests, make_machine):
    machine = make_machine(guests["emulation_failure"])
    with pytest.raises(EmulationFailureError) as info:
        machine.run()
    error = info.value
    assert error.vcpu_id == 0
    assert error.pc == 0x100040
    assert error.insn_bytes[:5] == bytes.fromhex("f0480fc70f")  # lock cmpxchg16b (%rdi)
    assert "RIP 0x100040" in str(error)
    assert "f0 48 0f c7 0f" in str(error)
    if shutil.which("objdump"):
        assert "cmpxchg16b" in str(error)
    assert error.state["regs"]["rip"] == 0x100040
