"""Both ARM plugins (``armv8``, ``arm``) against the vCPU contract, on a real arm64 KVM.

Each runs its own bundled demo (prints through the PL011, powers off through
PSCI) and is stopped part-way, at a fixed byte of the output, so every check
below starts from a vCPU that really ran and holds state the thread context
does not have yet.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kvmbase import Machine
from kvmbase.cpu import BaseKvmCPU
from kvmbase.plugins import get_arch

PLUGINS = ("armv8", "arm")
#: the demo is stopped once it has printed this many bytes
STOP_AFTER = 10
CONTRACT = ("update_kvm_state", "update_thread_context", "dump")
#: the virtual counter's name in each plugin's context
COUNTERS = ("cntvct_el0", "cntvct")


def demo_machine(plugin: str) -> Machine:
    description = get_arch(plugin)
    assert description.demo_config is not None
    return Machine.from_data(dict(description.demo_config()), uart_output="none")


def uart_text(machine: Machine) -> bytes:
    return bytes(machine.devices["uart0"].transmitted)  # type: ignore[attr-defined]


def stop_after_bytes(machine: Machine, count: int) -> None:
    """Stop ``machine`` once its PL011 has sent ``count`` bytes (from the exit handler)."""
    uart = machine.devices["uart0"]
    transmit: Callable[[int], None] = uart._transmit  # type: ignore[attr-defined]

    def counting(byte: int) -> None:
        transmit(byte)
        if len(uart.transmitted) == count:  # type: ignore[attr-defined]
            machine.stop("stop for the test")

    uart._transmit = counting  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def reference() -> dict[str, bytes]:
    """Each plugin's whole demo output, from one uninterrupted run."""
    outputs = {}
    for plugin in PLUGINS:
        machine = demo_machine(plugin)
        try:
            result = machine.run()
            assert (result.cause, result.code) == ("guest powered off", 0)
            outputs[plugin] = uart_text(machine)
        finally:
            machine.close()
    assert all(len(text) > STOP_AFTER for text in outputs.values())
    return outputs


@pytest.fixture(params=PLUGINS)
def stopped(request: pytest.FixtureRequest, machines: list[Machine]) -> tuple[str, Machine]:
    """(plugin, its demo machine stopped after STOP_AFTER bytes of output)."""
    plugin: str = request.param
    machine = demo_machine(plugin)
    machines.append(machine)
    stop_after_bytes(machine, STOP_AFTER)
    assert machine.run().cause == "stop for the test"
    assert len(uart_text(machine)) == STOP_AFTER
    return plugin, machine


def test_cpu_class_implements_the_contract() -> None:
    for plugin in PLUGINS:
        cpu_class = get_arch(plugin).cpu_class
        assert issubclass(cpu_class, BaseKvmCPU)
        assert not inspect.isabstract(cpu_class), plugin
        for name in (*CONTRACT, "dump_sections"):
            assert getattr(cpu_class, name) is not getattr(BaseKvmCPU, name), (plugin, name)


@pytest.mark.kvm
def test_state_is_synced_lazily(stopped: tuple[str, Machine]) -> None:
    _, machine = stopped
    cpu = machine.cpu
    # after a run the vCPU is ahead; reading brings the context up to date
    assert cpu.kvm_state_dirty and not cpu.thread_context_dirty
    pc = cpu.read_register("pc")
    assert not cpu.kvm_state_dirty
    image = machine.config.image
    assert image is not None
    assert image.load_address <= pc < image.load_address + Path(image.path).stat().st_size
    # a write makes the context ahead until the next entry writes it back
    name = "x28" if "x28" in cpu.thread.regs else "r11"
    cpu.write_register(name, 0x5A5A5A5A)
    assert cpu.thread_context_dirty
    cpu.sync_kvm_state()
    assert not cpu.thread_context_dirty
    cpu.kvm_state_dirty = True  # as after a run: the next read comes from KVM
    assert cpu.read_register(name) == 0x5A5A5A5A


def pop_counter(state: dict[str, Any]) -> int:
    """Take the virtual counter out of a saved context (and kvm_arm's raw A64 copy)."""
    state.get("a64", {}).pop("cntvct_el0", None)
    (value,) = [state["regs"].pop(name) for name in COUNTERS if name in state["regs"]]
    return int(value)


@pytest.mark.kvm
def test_whole_context_round_trips_through_the_vcpu(stopped: tuple[str, Machine]) -> None:
    _, machine = stopped
    cpu = machine.cpu
    cpu.sync_thread_context()
    before = cpu.thread.save_state()
    cpu.update_kvm_state()
    cpu.update_thread_context()
    after = cpu.thread.save_state()
    # The virtual counter runs on: it reads back a little later than written
    # (under a second of its frequency, 62.5 MHz or less here).
    written, read = pop_counter(before), pop_counter(after)
    assert 0 <= read - written < 62_500_000
    assert after == before


@pytest.mark.kvm
def test_drain_leaves_nothing_in_the_vcpu(stopped: tuple[str, Machine]) -> None:
    _, machine = stopped
    machine.drain()
    cpu = machine.cpu
    assert cpu.drained and cpu.arch_is_drained()
    assert not cpu.kvm_state_dirty
    machine.drain_resume()


@pytest.mark.kvm
def test_every_dump_section_is_plain_data(stopped: tuple[str, Machine]) -> None:
    _, machine = stopped
    cpu = machine.cpu
    dump = cpu.dump()
    assert tuple(dump) == cpu.dump_sections()
    json.dumps(dump)  # plain data: the CLI renders it and writes it as JSON
    first = cpu.dump_sections()[0]
    assert list(cpu.dump(first)) == [first]
    with pytest.raises(KeyError, match="no dump section"):
        cpu.dump("no-such-section")


@pytest.mark.kvm
def test_switch_to_a_new_cpu_finishes_the_same(
    stopped: tuple[str, Machine], reference: dict[str, bytes]
) -> None:
    plugin, machine = stopped
    old = machine.cpu
    new = machine.new_cpu("cpu0_next")
    machine.switch_cpus(old, new)
    assert old.switched_out and machine.cpu is new
    result = machine.run()
    assert (result.cause, result.code) == ("guest powered off", 0)
    assert uart_text(machine) == reference[plugin]
    assert new.stats.num_mmio > 0  # the new CPU ran the rest


@pytest.mark.kvm
def test_checkpoint_restores_into_a_fresh_vm_and_finishes_the_same(
    stopped: tuple[str, Machine], reference: dict[str, bytes], tmp_path: Path
) -> None:
    plugin, machine = stopped
    path = machine.checkpoint(tmp_path / "checkpoint")
    restored = Machine.restore(path, uart_output="none")
    try:
        assert uart_text(restored) == reference[plugin][:STOP_AFTER]
        result = restored.run()
        assert (result.cause, result.code) == ("guest powered off", 0)
        assert uart_text(restored) == reference[plugin]
    finally:
        restored.close()
    # the original carries on too
    assert machine.run().cause == "guest powered off"
    assert uart_text(machine) == reference[plugin]
