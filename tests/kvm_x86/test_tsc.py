"""The guest TSC: monotonic across exits, checkpoints and CPU switches; its
frequency reported and checked; host-side estimates without ioctls.

tsc.S reads rdtsc at CPL3 in an endless loop and writes each value to MMIO
(one exit per value); it also counts, itself, the times a value fell.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from x86_machines import build_guest, machine_config, machine_from, require_binutils

from kvm_x86 import tsc
from kvm_x86.thread_context import X86ThreadContext
from kvmbase import Machine
from kvmbase.config import ConfigError
from kvmbase.sim.bus import Device

pytestmark = pytest.mark.kvm

BASE = 0x100000
TSC_MMIO = 0xD0000000


def assert_continues(before: int, before_ns: int, after: int, after_ns: int, khz: int) -> None:
    """The TSC did not fall, and gained no more than the wall time between
    (plus 1 ms for the timestamps, each taken at an exit, not at rdtsc)."""
    assert after >= before
    assert after - before <= (after_ns - before_ns) * khz // 1_000_000 + khz


class TscRecorder(Device):
    """Records each TSC value the guest writes; stops the run after N."""

    def __init__(self, machine: Machine, stop_after: int | None = None) -> None:
        super().__init__("tsc")
        self.machine = machine
        self.values: list[int] = []
        self.host_ns: list[int] = []
        self.stop_after = stop_after
        #: optional hook called at each write with the value (in the exit)
        self.on_value: Callable[[int], None] | None = None

    def write(self, offset: int, size: int, value: int) -> None:
        self.host_ns.append(tsc.host_clock_ns())
        self.values.append(value)
        if self.on_value is not None:
            self.on_value(value)
        if self.stop_after is not None and len(self.values) >= self.stop_after:
            # Not machine.stop(): that also kicks the vCPU, and from the
            # vCPU's own thread the kick stays pending past the machine.
            self.machine.system.exit_simulation("enough TSC values")

    def read(self, offset: int, size: int) -> int:
        raise AssertionError("tsc.S never reads")

    def serialize(self) -> dict[str, Any]:
        return {"values": list(self.values)}

    def unserialize(self, state: dict[str, Any]) -> None:
        self.values = list(state["values"])


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_binutils(("as", "ld"))
    return build_guest("tsc.S", tmp_path_factory.mktemp("tsc") / "tsc3.bin", {"RING": 3})


def build(guest: Path, machines: list[Machine], stop_after: int) -> tuple[Machine, TscRecorder]:
    machine = machine_from(machines, machine_config(guest, entry=BASE))
    if not machine.vm.kvm.check_extension(61):  # KVM_CAP_GET_TSC_KHZ
        pytest.skip("host lacks: KVM_CAP_GET_TSC_KHZ")
    recorder = TscRecorder(machine, stop_after)
    machine.add_device(recorder, TSC_MMIO, 8)
    return machine, recorder


def tsc_part(machine: Machine) -> tsc.TscPart:
    part = machine.cpu.part("tsc")
    assert isinstance(part, tsc.TscPart)
    return part


def assert_non_decreasing(values: list[int]) -> None:
    falls = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(values)) if b < a]
    assert not falls, f"the guest TSC fell: {falls[:3]}"


def test_tsc_never_decreases_across_many_exits(guest, machines):
    machine, recorder = build(guest, machines, stop_after=2000)
    assert machine.run().cause == "enough TSC values"
    assert len(recorder.values) == 2000
    assert_non_decreasing(recorder.values)
    assert machine.cpu.read_register("r14") == 0  # the guest saw no fall either
    assert machine.statistics()["cpu0"]["num_mmio"] == 2000


def test_a_register_write_does_not_write_the_tsc(guest, machines):
    """Only a TSC this vCPU did not read goes back into KVM: a context
    written for another register leaves the running TSC alone."""
    machine, _ = build(guest, machines, stop_after=50)
    machine.run()
    part = tsc_part(machine)
    machine.cpu.write_register("r13", 7)
    machine.cpu.sync_kvm_state()
    assert part.last_write_gap is None
    tc = machine.cpu.get_context()
    tc.parts["msrs"]["0x10"] += 1000  # an edit: written, then checked
    tc.mark_dirty()
    machine.cpu.sync_kvm_state()
    assert part.last_write_gap is not None


def test_frequency_is_reported_and_is_the_rate_the_guest_sees(guest, machines):
    machine, recorder = build(guest, machines, stop_after=1500)
    machine.run()
    khz = tsc_part(machine).frequency_khz
    assert khz == machine.vm.ioctl(tsc.KVM_GET_TSC_KHZ)
    dump = machine.cpu.dump("tsc")["tsc"]
    assert dump["frequency_khz"] == khz
    assert dump["frequency_settable"] == tsc.can_set_frequency(machine.vm.kvm)
    assert dump["tsc"] >= recorder.values[-1]
    # The thread context records it, so a checkpoint says at what rate it ran.
    assert machine.cpu.get_context().parts["tsc"] == {"frequency_khz": khz, "requested": False}
    # Guest cycles over host time between the first and last value (~50 ms;
    # each timestamp is off by one exit at most, tens of microseconds).
    cycles = recorder.values[-1] - recorder.values[0]
    nanoseconds = recorder.host_ns[-1] - recorder.host_ns[0]
    assert cycles * 1_000_000 / nanoseconds == pytest.approx(khz, rel=0.02)


def test_host_estimates_follow_the_guest_tsc_without_ioctls(guest, machines):
    machine, recorder = build(guest, machines, stop_after=500)
    part = tsc_part(machine)
    gaps: list[int] = []
    recorder.on_value = lambda value: gaps.append(part.estimate() - value)
    machine.run()
    # One read to anchor the first estimate; none after, while it ran.
    assert part.anchor_reads == 1
    assert len(gaps) == 500
    # Each estimate comes after the guest's rdtsc: ahead of it by about one
    # exit, never behind, never more than 10 ms ahead.
    assert min(gaps) >= 0
    assert max(gaps) < part.frequency_khz * 10
    # A sync re-anchors: the estimate then is the MSR the context holds, advanced.
    state = machine.cpu.get_context().parts["msrs"]
    assert part.estimate() >= state["0x10"] >= recorder.values[-1]
    assert part.anchor_reads == 1


def test_tsc_continues_across_checkpoint_and_restore(guest, machines, tmp_path):
    machine, recorder = build(guest, machines, stop_after=300)
    assert machine.run().cause == "enough TSC values"
    checkpoint = machine.checkpoint(tmp_path / "ckpt")
    saved = machine.cpu.get_context().parts["msrs"]["0x10"]
    last_before, last_ns = recorder.values[-1], recorder.host_ns[-1]
    khz = tsc_part(machine).frequency_khz
    machine.close()

    holder: dict[str, TscRecorder] = {}

    def add_recorder(restored: Machine) -> None:
        holder["recorder"] = TscRecorder(restored, stop_after=600)
        restored.add_device(holder["recorder"], TSC_MMIO, 8)

    restored = Machine.restore(checkpoint, before_load=add_recorder)
    machines.append(restored)
    assert restored.run().cause == "enough TSC values"
    after = holder["recorder"].values[300:]
    assert holder["recorder"].values[:300] == recorder.values  # the checkpointed ones
    assert saved >= last_before
    assert_continues(last_before, last_ns, after[0], holder["recorder"].host_ns[0], khz)
    assert_non_decreasing(holder["recorder"].values)
    assert restored.cpu.read_register("r14") == 0
    # The restore wrote the saved TSC and read it back: KVM's value is at
    # least the saved one (exactly it where KVM honours TSC writes).
    gap = tsc_part(restored).last_write_gap
    assert gap is not None and gap >= 0


def test_tsc_continues_across_a_cpu_switch(guest, machines):
    machine, recorder = build(guest, machines, stop_after=300)
    spare = machine.new_cpu("cpu1")
    assert machine.run().cause == "enough TSC values"
    last_before, last_ns = recorder.values[-1], recorder.host_ns[-1]
    old = machine.cpu
    machine.switch_cpus(old, spare)
    recorder.stop_after = 600
    assert machine.run().cause == "enough TSC values"
    khz = tsc_part(machine).frequency_khz
    assert machine.cpu is spare
    assert_continues(last_before, last_ns, recorder.values[300], recorder.host_ns[300], khz)
    assert_non_decreasing(recorder.values)
    assert spare.read_register("r14") == 0
    assert machine.statistics()["cpu1"]["num_mmio"] == 300


def test_a_frequency_the_host_cannot_give_is_a_config_error(guest, machines):
    machine, _ = build(guest, machines, stop_after=10)
    tc = machine.cpu.thread
    assert isinstance(tc, X86ThreadContext)
    host_khz = tsc.vm_tsc_khz(machine.vm)
    if host_khz is None:
        pytest.skip("host lacks: KVM_GET_TSC_KHZ on the VM (Linux 5.19+)")
    wanted = host_khz // 2 * 1000
    if tsc.can_set_frequency(machine.vm.kvm):
        tsc.setup_tsc(machine.vm, tc, wanted)
        machine.run()
        assert tsc_part(machine).frequency_khz == host_khz // 2
        return
    with pytest.raises(ConfigError) as caught:
        tsc.setup_tsc(machine.vm, tc, wanted)
    assert str(caught.value) == (
        "x86.tsc_frequency: this host's KVM cannot set the guest TSC frequency (no "
        f"KVM_CAP_TSC_CONTROL); its TSC runs at {host_khz} kHz: leave the field unset "
        f"or give that (within 250 ppm) (got '{host_khz // 2} kHz')"
    )
    assert "tsc" not in tc.parts


def test_the_hosts_own_frequency_is_accepted(guest, machines):
    machine, _ = build(guest, machines, stop_after=10)
    host_khz = tsc.vm_tsc_khz(machine.vm)
    if host_khz is None:
        pytest.skip("host lacks: KVM_GET_TSC_KHZ on the VM (Linux 5.19+)")
    tc = machine.cpu.thread
    assert isinstance(tc, X86ThreadContext)
    # 100 ppm off: within KVM's own tolerance.
    tsc.setup_tsc(machine.vm, tc, host_khz * 1000 + host_khz // 10)
    assert machine.run().cause == "enough TSC values"
    assert tc.parts["tsc"]["requested"] is True
    assert tsc_part(machine).frequency_khz == host_khz


def test_a_requested_frequency_is_checked_again_on_the_vcpu(guest, machines):
    """A context that asks for another rate (a config, or a restored thread
    that was configured) is set where KVM can, and fails at the first write
    where it cannot."""
    machine, _ = build(guest, machines, stop_after=10)
    tc = machine.cpu.thread
    assert isinstance(tc, X86ThreadContext)
    tc.parts["tsc"] = {"frequency_khz": 1_000_000, "requested": True}
    if tsc.can_set_frequency(machine.vm.kvm):
        assert machine.run().cause == "enough TSC values"
        assert tsc_part(machine).frequency_khz == 1_000_000
        return
    with pytest.raises(ConfigError, match=r"^x86\.tsc_frequency: this host's KVM cannot set"):
        machine.run()


def test_a_recorded_frequency_from_another_host_is_a_warning_once(guest, machines, caplog):
    """A thread recorded at another rate (a checkpoint from another host)
    gets that rate where KVM can set it, else runs on with one warning."""
    machine, _ = build(guest, machines, stop_after=20)
    tc = machine.cpu.thread
    assert isinstance(tc, X86ThreadContext)
    tc.parts["tsc"] = {"frequency_khz": 1_000_000, "requested": False}
    assert machine.run().cause == "enough TSC values"
    for _ in range(3):
        machine.cpu.get_context()
        machine.cpu.thread.mark_dirty()
        machine.cpu.sync_kvm_state()
        machine.cpu.kvm_state_dirty = True
    warnings = [r.getMessage() for r in caplog.records if r.name == tsc.__name__]
    if tsc.can_set_frequency(machine.vm.kvm):
        assert warnings == []
        assert tsc_part(machine).frequency_khz == 1_000_000
        return
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "cpu0: the thread's TSC ran at 1000000 kHz; this host's KVM runs it at "
        f"{tsc_part(machine).frequency_khz} kHz and cannot change that"
    )


def test_ticks_and_cycles_convert_at_the_tsc_frequency(guest, machines):
    machine, _ = build(guest, machines, stop_after=1)
    machine.run()
    part = tsc_part(machine)
    khz = part.frequency_khz
    assert part.ticks_to_cycles(10**12) == khz * 1000  # one second
    assert part.cycles_to_ticks(khz * 1000) == 10**12
