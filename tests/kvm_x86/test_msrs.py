"""MSRs between the thread context, KVM and a real guest (msr_rw.S at CPL0)."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest
from x86_machines import machine_config, machine_from, require_binutils

from kvm_x86.guests import assemble
from kvm_x86.parts import msrs
from kvm_x86.parts.msrs import MsrAccessError, msr_index_list
from kvmbase import Machine
from kvmbase.sim.thread_context import ThreadStatus

pytestmark = pytest.mark.kvm

GUESTS = Path(__file__).parent / "guests"
BASE = 0x100000
SEEN1, SEEN2 = BASE + 0x400, BASE + 0x500

#: msr_rw.S's read_indices, in order
READ = (
    0x174, 0x175, 0x176, 0xC0000081, 0xC0000082, 0xC0000083,
    0xC0000084, 0xC0000102, 0x277, 0x2FF, 0x200, 0x201, 0x1A0,
)  # fmt: skip
#: what the host puts into the thread context before the guest runs
HOST_VALUES = {
    0x174: 0x10,
    0x175: 0xFFFF800000001000,
    0x176: 0xFFFF800000002000,
    0xC0000081: 0x0023001000000000,
    0xC0000082: 0xFFFF800000003000,
    0xC0000083: 0xFFFF800000004000,
    0xC0000084: 0x47700,
    0xC0000102: 0xFFFF888000000000,
    0x277: 0x0007010600070106,
    0x2FF: 0xC06,
    0x200: 0x80000006,
    0x201: 0xFC0000800,
    0x1A0: 0x1801,
}
#: msr_rw.S's write_values (MISC_ENABLE, the last read, is not written)
GUEST_VALUES = {
    0x174: 0x8,
    0x175: 0x00007FFF12345670,
    0x176: 0x00007FFF87654320,
    0xC0000081: 0x001B000800000000,
    0xC0000082: 0x00007FFF00001000,
    0xC0000083: 0x00007FFF00002000,
    0xC0000084: 0x4700,
    0xC0000102: 0xFFFF888012345000,
    0x277: 0x0606060606060606,
    0x2FF: 0x806,
    0x200: 0x40000006,
    0x201: 0xFC0000800,
}


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_binutils(("as", "ld"))
    return assemble(GUESTS / "msr_rw.S", tmp_path_factory.mktemp("msr") / "msr_rw.bin")


def build(guest: Path, machines: list[Machine]) -> Machine:
    return machine_from(machines, machine_config(guest, entry=BASE))


def require_msrs(machine: Machine) -> None:
    """Skip where the host's KVM does not offer an MSR the guest touches."""
    machine.system.startup()
    part = machine.cpu.part("msrs")
    assert isinstance(part, msrs.Msrs)
    absent = [msrs.msr_name(i) for i in READ if i not in part.resolve()]
    if absent:
        pytest.skip(f"host lacks: MSRs {', '.join(absent)}")


def seen(machine: Machine, address: int) -> dict[int, int]:
    raw = machine.system.read_memory(address, 8 * len(READ))
    return dict(zip(READ, struct.unpack(f"<{len(READ)}Q", raw), strict=True))


def hexed(values: dict[int, int]) -> dict[str, str]:
    return {msrs.msr_name(index): hex(value) for index, value in values.items()}


def set_host_values(machine: Machine) -> None:
    tc = machine.cpu.get_context()
    tc.parts["msrs"] = {f"{index:#x}": value for index, value in HOST_VALUES.items()}
    tc.mark_dirty()


def test_the_index_list_is_cached_per_kvm_and_names_the_basic_msrs(guest, machines):
    machine = build(guest, machines)
    kvm = machine.vm.kvm
    listed = msr_index_list(kvm)
    assert msr_index_list(kvm) is listed
    # Every KVM since 2.6 saves the SYSENTER and SYSCALL MSRs and the TSC.
    assert {0x174, 0x175, 0x176, 0xC0000081, 0xC0000082, 0x10} <= listed


def test_guest_reads_host_values_and_host_reads_guest_values(guest, machines):
    machine = build(guest, machines)
    require_msrs(machine)
    set_host_values(machine)

    assert machine.run().cause == "all CPUs halted"

    assert hexed(seen(machine, SEEN1)) == hexed(HOST_VALUES)
    state = machine.cpu.get_context().parts["msrs"]
    got = {index: state[f"{index:#x}"] for index in GUEST_VALUES}
    assert hexed(got) == hexed(GUEST_VALUES)
    assert state["0x1a0"] == HOST_VALUES[0x1A0]
    # The dump names them and reads KVM itself.
    dump = machine.cpu.dump("msrs")["msrs"]
    assert dump["LSTAR"] == {"index": 0xC0000082, "value": GUEST_VALUES[0xC0000082]}
    assert dump["MTRR_PHYS_MASK0"]["value"] == GUEST_VALUES[0x201]
    assert dump["TSC"]["value"] > 0
    assert dump["MTRR_CAP"]["value"] & 0xFF >= 1


def test_msrs_survive_checkpoint_and_restore_into_a_fresh_vm(guest, machines, tmp_path):
    machine = build(guest, machines)
    require_msrs(machine)
    set_host_values(machine)
    assert machine.run().cause == "all CPUs halted"
    checkpoint = machine.checkpoint(tmp_path / "ckpt")
    machine.close()

    restored = Machine.restore(checkpoint)
    machines.append(restored)
    assert restored.cpu.thread.status is ThreadStatus.SUSPENDED
    restored.cpu.thread.activate()  # on into phase 2: read them all again
    assert restored.run().cause == "all CPUs halted"

    expected = {**GUEST_VALUES, 0x1A0: HOST_VALUES[0x1A0]}
    assert hexed(seen(restored, SEEN2)) == hexed(expected)
    assert restored.vm is not machine.vm


def test_a_refused_write_names_the_msr_and_value(guest, machines):
    machine = build(guest, machines)
    require_msrs(machine)
    tc = machine.cpu.get_context()
    # KVM refuses a non-canonical LSTAR; SYSENTER_CS goes in before it.
    tc.parts["msrs"] = {"0x174": 0x10, "0xc0000082": 0x8000000000000000}
    tc.mark_dirty()
    with pytest.raises(MsrAccessError) as caught:
        machine.run()
    error = caught.value
    assert (error.ioctl, error.index, error.vcpu_id) == ("KVM_SET_MSRS", 0xC0000082, 0)
    assert str(error) == (
        "KVM_SET_MSRS on vCPU 0 stopped at MSR LSTAR (0xc0000082) = 0x8000000000000000: "
        "KVM refused it (1 of 2 MSRs done)"
    )


def test_an_msr_the_host_lacks_is_reported_once(guest, machines, caplog):
    machine = build(guest, machines)
    kvm = machine.vm.kvm
    # Pretend this host's KVM does not list PAT (0x277).
    msrs._index_lists[kvm] = msr_index_list(kvm) - {0x277}
    caplog.set_level(logging.WARNING, logger=msrs.__name__)
    # A second CPU on the same /dev/kvm handle must not report it again.
    spare = machine.new_cpu("cpu1")
    machine.system.startup()
    for cpu in (machine.cpu, spare):
        part = cpu.part("msrs")
        assert isinstance(part, msrs.Msrs)
        assert 0x277 not in part.resolve()
        assert part.missing[0x277] == "PAT"
    for _ in range(5):
        machine.cpu.get_context()
        machine.cpu.thread.mark_dirty()
        machine.cpu.sync_kvm_state()
        machine.cpu.kvm_state_dirty = True
    records = [r.getMessage() for r in caplog.records if "PAT (0x277)" in r.getMessage()]
    assert len(records) == 1
    assert records[0].startswith("MSRs this host's KVM does not offer, not synced: ")
    assert "0x277" not in machine.cpu.get_context().parts["msrs"]


def test_msrs_from_another_host_are_reported_once_not_written(guest, machines, caplog):
    machine = build(guest, machines)
    require_msrs(machine)
    caplog.set_level(logging.WARNING, logger=msrs.__name__)
    tc = machine.cpu.get_context()
    tc.parts["msrs"] = {"0x174": 0x10, "0x12345678": 1}
    tc.mark_dirty()
    assert machine.run().cause == "all CPUs halted"
    assert seen(machine, SEEN1)[0x174] == 0x10
    messages = [r.getMessage() for r in caplog.records if "0x12345678" in r.getMessage()]
    assert messages == [
        "cpu0: MSRs in the thread context that this host's KVM does not offer, "
        "not written: 0x12345678 (0x12345678)"
    ]


def test_a_key_that_is_not_an_msr_index_is_refused(guest, machines):
    machine = build(guest, machines)
    require_msrs(machine)
    tc = machine.cpu.get_context()
    tc.parts["msrs"] = {"0x174": 0x10, "0x0175": 1}
    tc.mark_dirty()
    with pytest.raises(ValueError, match=r"has the key '0x0175': keys are MSR indices"):
        machine.run()
