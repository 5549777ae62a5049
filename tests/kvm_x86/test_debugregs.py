"""Debug registers between the thread context, KVM and a real guest.

debugregs.S runs at CPL0, where KVM's instruction emulator executes
``mov`` to and from DR0-DR7 (checked on this project's PVM host).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from x86_machines import machine_config, machine_from, require_binutils

from kvm_x86.guests import assemble
from kvmbase import Machine
from kvmbase.sim.thread_context import ThreadStatus

pytestmark = pytest.mark.kvm

GUESTS = Path(__file__).parent / "guests"
BASE = 0x100000
SEEN1, SEEN2 = BASE + 0x300, BASE + 0x340
NAMES = ("dr0", "dr1", "dr2", "dr3", "dr6", "dr7")

#: what the host sets: L2 execute breakpoint at DR2, L3 at DR3, B0 in DR6
HOST = {
    "db": [0x12340000, 0x7FFF00000000, 0xFFFF800000000100, 0xCAFE0],
    "dr6": 0xFFFF0FF1,
    "dr7": 0x450,
    "flags": 0,
}
#: debugregs.S's new_values (DR6 is left as the host set it)
GUEST = {
    "dr0": 0xDEAD00,
    "dr1": 0x7FFFFFFF0000,
    "dr2": 0xFFFF800000000008,
    "dr3": 0xBEEF10,
    "dr6": HOST["dr6"],
    "dr7": 0xD0040A,
}


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_binutils(("as", "ld"))
    return assemble(GUESTS / "debugregs.S", tmp_path_factory.mktemp("dr") / "debugregs.bin")


def build(guest: Path, machines: list[Machine]) -> Machine:
    machine = machine_from(machines, machine_config(guest, entry=BASE))
    if not machine.vm.kvm.cap_debug_regs:
        pytest.skip("host lacks: KVM_CAP_DEBUGREGS")
    return machine


def seen(machine: Machine, address: int) -> dict[str, str]:
    values = struct.unpack("<6Q", machine.system.read_memory(address, 48))
    return {name: hex(value) for name, value in zip(NAMES, values, strict=True)}


def hexed(values: dict[str, int]) -> dict[str, str]:
    return {name: hex(value) for name, value in values.items()}


def host_view() -> dict[str, int]:
    return {
        **{f"dr{i}": v for i, v in enumerate(HOST["db"])},
        "dr6": HOST["dr6"],
        "dr7": HOST["dr7"],
    }


def set_host_values(machine: Machine) -> None:
    tc = machine.cpu.get_context()
    tc.parts["debugregs"] = {key: list(v) if isinstance(v, list) else v for key, v in HOST.items()}
    tc.mark_dirty()


def test_guest_reads_host_values_and_host_reads_guest_values(guest, machines):
    machine = build(guest, machines)
    set_host_values(machine)

    assert machine.run().cause == "all CPUs halted"

    assert seen(machine, SEEN1) == hexed(host_view())
    state = machine.cpu.get_context().parts["debugregs"]
    assert [hex(v) for v in state["db"]] == [hex(GUEST[f"dr{i}"]) for i in range(4)]
    assert (hex(state["dr6"]), hex(state["dr7"]), state["flags"]) == (
        hex(GUEST["dr6"]),
        hex(GUEST["dr7"]),
        0,
    )
    assert machine.cpu.dump("debugregs")["debugregs"] == {**GUEST, "flags": 0}


def test_debug_registers_survive_checkpoint_and_restore(guest, machines, tmp_path):
    machine = build(guest, machines)
    set_host_values(machine)
    assert machine.run().cause == "all CPUs halted"
    checkpoint = machine.checkpoint(tmp_path / "ckpt")
    machine.close()

    restored = Machine.restore(checkpoint)
    machines.append(restored)
    assert restored.cpu.thread.status is ThreadStatus.SUSPENDED
    restored.cpu.thread.activate()  # phase 2: store them all again
    assert restored.run().cause == "all CPUs halted"
    assert seen(restored, SEEN2) == hexed(GUEST)


def test_debug_registers_move_to_the_cpu_that_takes_over(guest, machines):
    machine = build(guest, machines)
    set_host_values(machine)
    spare = machine.new_cpu("cpu1")
    assert machine.run().cause == "all CPUs halted"
    machine.switch_cpus(machine.cpu, spare)
    # take_over_from wrote the vCPU: KVM itself holds the guest's values.
    assert spare.dump("debugregs")["debugregs"] == {**GUEST, "flags": 0}
    spare.thread.activate()
    assert machine.run().cause == "all CPUs halted"
    assert seen(machine, SEEN2) == hexed(GUEST)
