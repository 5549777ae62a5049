"""vCPU events (KVM_GET/SET_VCPU_EVENTS): read, written, and carried by checkpoints.

Guests: ``guests/nmi_nesting.S`` (an NMI handler that reports its nesting
depth) and ``guests/irq_injected.S`` (reports which injected event arrives).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from x86_machines import APIC_INCLUDES, build_guest, machine_config, machine_from, require_binutils

from kvm_x86.apic import find_apic_bus, setup_apics
from kvm_x86.parts.events import KVM_X86_SHADOW_INT_STI, VcpuEvents
from kvmbase import Machine
from kvmbase.sim.bus import Device

pytestmark = pytest.mark.kvm

REPORT_PORT = 0xE0
HALTED = "all CPUs halted"


class Reports(Device):
    """Values the guest writes to ports 0xE0..0xE7, as (offset, value);
    can stop the run after the N-th."""

    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__("reports")
        self.log: list[tuple[int, int]] = []
        self.stop_after = stop_after
        self.on_stop: Callable[[], None] | None = None

    def write(self, offset: int, size: int, value: int) -> None:
        self.log.append((offset, value))
        if self.stop_after is not None and len(self.log) == self.stop_after and self.on_stop:
            self.on_stop()

    def read(self, offset: int, size: int) -> int:
        return 0

    def serialize(self) -> dict[str, Any]:
        return {"log": [list(entry) for entry in self.log]}

    def unserialize(self, state: dict[str, Any]) -> None:
        self.log = [(offset, value) for offset, value in state["log"]]


def build(out: Path, source: str, **symbols: int) -> Path:
    output = out / f"{source}.bin"
    return build_guest(source, output, {"RING": 0, **symbols}, includes=APIC_INCLUDES)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_binutils()
    out = tmp_path_factory.mktemp("events-guests")
    return {
        "nmi": build(out, "nmi_nesting.S", N_NMIS=2),
        "injected": build(out, "irq_injected.S"),
    }


def equip(machine: Machine, stop_after: int | None = None) -> Reports:
    """APICs and the report device (the same in a restored machine)."""
    setup_apics(machine)
    reports = Reports(stop_after)
    reports.on_stop = lambda: machine.stop("report limit")
    machine.add_device(reports, machine.port_address(REPORT_PORT), 8)
    return reports


def re_equip(machine: Machine) -> None:
    """``equip`` for ``Machine.restore(before_load=...)``."""
    equip(machine)


def require_events(machine: Machine) -> None:
    if not machine.vm.kvm.cap_vcpu_events:
        pytest.skip("host lacks: KVM_CAP_VCPU_EVENTS")


def test_events_section_and_round_trip(images: dict[str, Path], machines: list[Machine]) -> None:
    machine = machine_from(machines, machine_config(images["injected"]))
    require_events(machine)
    equip(machine, stop_after=1)
    assert machine.run().cause == "report limit"
    machine.drain()
    cpu = machine.cpu
    assert "events" in cpu.dump_sections()
    dumped = cpu.dump("events")["events"]
    assert dumped["interrupt"] == {"injected": 0, "nr": 0, "soft": 0, "shadow": 0}
    assert dumped["nmi"] == {"injected": 0, "pending": 0, "masked": 0}
    assert dumped["exception"]["injected"] == 0
    # Write a state with NMIs blocked and an STI shadow, read it back.
    part = next(p for p in cpu.parts if isinstance(p, VcpuEvents))  # type: ignore[attr-defined]
    tc: Any = cpu.get_context()
    state = copy.deepcopy(tc.parts["events"])
    state["nmi"]["masked"] = 1
    state["interrupt"]["shadow"] = KVM_X86_SHADOW_INT_STI
    tc.parts["events"] = state
    part.write_from(tc)
    back = cpu.dump("events")["events"]
    assert back["nmi"]["masked"] == 1
    assert back["interrupt"]["shadow"] == KVM_X86_SHADOW_INT_STI
    assert back == state


@pytest.mark.parametrize(
    ("group", "fields", "expected"),
    [
        ("interrupt", {"injected": 1, "nr": 0x30}, [0x10, 0x30, 0x11]),
        ("exception", {"injected": 1, "nr": 6}, [0x10, 6]),
    ],
)
def test_a_checkpoint_carries_an_injected_event(
    images: dict[str, Path],
    machines: list[Machine],
    tmp_path: Path,
    group: str,
    fields: dict[str, int],
    expected: list[int],
) -> None:
    first = machine_from(machines, machine_config(images["injected"]))
    require_events(first)
    equip(first, stop_after=1)
    assert first.run().cause == "report limit"
    first.drain()
    tc = first.cpu.get_context()
    tc.parts["events"][group].update(fields)  # type: ignore[attr-defined]
    tc.mark_dirty()
    first.drain_resume()
    checkpoint = first.checkpoint(tmp_path / "ckpt")
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    saved = manifest["cpus"][0]["thread"]["parts"]["events"][group]
    assert {name: saved[name] for name in fields} == fields
    first.close()

    second = Machine.restore(checkpoint, before_load=re_equip)
    machines.append(second)
    assert second.run().cause == HALTED
    reports = second.devices["reports"]
    assert [value for _, value in reports.log] == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize("keep_events", [True, False])
def test_nmi_blocking_survives_a_checkpoint_in_the_nmi_handler(
    images: dict[str, Path], machines: list[Machine], tmp_path: Path, keep_events: bool
) -> None:
    """Checkpointed inside the NMI handler, a restored guest still has NMIs
    blocked: a second NMI waits for the handler's iretq (depth 1).  Without
    the events in the checkpoint it would nest (depth 2): the control case."""
    first = machine_from(machines, machine_config(images["nmi"]))
    require_events(first)
    reports = equip(first, stop_after=1)
    assert first.run().cause == "report limit"  # the guest is ready
    bus = find_apic_bus(first)
    assert bus is not None
    bus.apics[0].raise_nmi()
    reports.stop_after = 2
    assert first.run().cause == "report limit"  # in the handler
    assert reports.log == [(6, 0), (0, 1)]
    checkpoint = first.checkpoint(tmp_path / "ckpt")
    manifest_path = checkpoint / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    thread = manifest["cpus"][0]["thread"]
    assert thread["parts"]["events"]["nmi"] == {"injected": 0, "pending": 0, "masked": 1}
    if not keep_events:
        del thread["parts"]["events"]
        manifest_path.write_text(json.dumps(manifest))
    first.close()

    second = Machine.restore(checkpoint, before_load=re_equip)
    machines.append(second)
    bus = find_apic_bus(second)
    assert bus is not None
    apic = bus.apics[0]
    apic.raise_nmi()
    assert second.run().cause == HALTED
    log = second.devices["reports"].log  # type: ignore[attr-defined]
    depths = [value for offset, value in log if offset == 0]
    assert depths == ([1, 1] if keep_events else [1, 2])
    assert log[-1] == (4, 2)  # two NMIs handled
    # the APIC's counts go through the checkpoint; the CPU's start afresh
    assert (apic.stats["nmis_received"], apic.stats["nmis_delivered"]) == (2, 2)
    assert second.cpu.stats.num_interrupts == 1
